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
  | "dpop_invalid";

export interface Failure extends Reason {
  code: FailureCode;
}

export function failure(code: FailureCode, message: string): Failure {
  return { code, message };
}
