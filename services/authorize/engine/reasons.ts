// Why a decision is a deny when the policy could not decide (docs/design/authorize.md, "Fail
// closed"): every failure is a deny with one of these codes, never an RPC error.

export interface Reason {
  code: string;
  message: string;
}

export type FailureCode =
  | "policy_missing"
  | "policy_error"
  | "memory_limit"
  | "evaluation_budget"
  | "policy_result_invalid"
  | "token_invalid"
  | "token_expired"
  | "token_wrong_tenant"
  | "dpop_required"
  | "dpop_invalid"
  // RFC 8705 §3: a certificate-bound token without its certificate, or with another.
  | "token_certificate_required"
  | "token_certificate_mismatch"
  // The request's mandate (mandate.ts): refused before the policy runs, or its consumption refused.
  | "mandate_not_found"
  | "mandate_not_yet_valid"
  | "mandate_expired"
  | "mandate_revoked"
  | "mandate_exhausted"
  | "mandate_inactive"
  | "mandate_chain_broken"
  | "mandate_mismatch"
  | "mandate_usage_exhausted"
  | "mandate_meter_unlimited"
  | "consumption_conflict";

export interface Failure extends Reason {
  code: FailureCode;
}

export function failure(code: FailureCode, message: string): Failure {
  return { code, message };
}
