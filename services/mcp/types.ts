// The MCP kit's contract (issue 19): what its parts hand each other. A protected MCP server runs a
// request through three stages, each testable alone:
//   1. resource/   — the request's access token verified for this MCP server (RFC 9728 metadata,
//                    RFC 6750 / RFC 9449 / RFC 8705 / RFC 9470 challenges): a VerifiedCaller, or a 401;
//   2. coaz/       — the JSON-RPC message mapped to AuthZEN evaluation requests (COAZ-MCP binding:
//                    default and declared mappings, CEL, the subject anchored to the token);
//   3. pep/        — the requests decided by a Pdp (Mandate's Authorize, or any AuthZEN PDP), the
//                    mandate's usage counted, a deny turned into a JSON-RPC error or a step-up challenge.
// client/ gives MCP clients (agents) tokens from a mandate; demo/ is `mandate demo mcp`.
import type { JsonObject } from "@bufbuild/protobuf";
import type { VerifiedClaims } from "../shared/oauth/resource-server.ts";

/** Who is calling, as stage 1 proved it: the token's claims and how it was presented. */
export interface VerifiedCaller {
  /** The raw access token (for a PDP that verifies it again, e.g. Authorize in access-token mode). */
  token: string;
  /** The verified claims, with the DPoP key / certificate thumbprint the token is bound to. */
  claims: VerifiedClaims;
  /** The request's DPoP proof and what it was made for, when the token is DPoP-bound. */
  dpop?: { proof: string; httpMethod: string; httpUri: string } | undefined;
  /** DER of the client certificate the request came with (RFC 8705), when there is one. */
  clientCertificate?: Uint8Array | undefined;
}

/** A JSON-RPC 2.0 request as the MCP client sent it (one message of a POST body). */
export interface JsonRpcRequest {
  jsonrpc: "2.0";
  id?: string | number | null;
  method: string;
  params?: JsonObject;
}

/** AuthZEN 1.0 entities (../shared/specs/authzen/authorization-api-1_0.md §5). */
export interface AuthzenSubject {
  type: string;
  id: string;
  properties?: JsonObject;
}
export interface AuthzenResource {
  type: string;
  id: string;
  properties?: JsonObject;
}
export interface AuthzenAction {
  name: string;
  properties?: JsonObject;
}

/** One Access Evaluation request (AuthZEN §6.1). */
export interface AuthzenEvaluation {
  subject: AuthzenSubject;
  action: AuthzenAction;
  resource: AuthzenResource;
  context?: JsonObject;
}

/** An Access Evaluations request (AuthZEN §7): top-level defaults, entries overriding them. */
export interface AuthzenEvaluations {
  subject?: AuthzenSubject;
  action?: AuthzenAction;
  resource?: AuthzenResource;
  context?: JsonObject;
  evaluations: Array<Partial<Omit<AuthzenEvaluation, "subject">>>;
  options?: { evaluations_semantic?: EvaluationsSemantic };
}

/** AuthZEN §7.1.2 evaluation semantics; the COAZ-MCP binding allows a message only if all permit. */
export type EvaluationsSemantic = "execute_all" | "deny_on_first_deny" | "permit_on_first_permit";

/** What stage 2 makes of one message: nothing to ask (pass-through), or the request to send. */
export type MappedMessage =
  | { kind: "pass_through" }
  | { kind: "evaluation"; request: AuthzenEvaluation }
  | { kind: "evaluations"; request: AuthzenEvaluations };

/** A COAZ mapping error (binding §"Mapping Errors"): JSON-RPC -32602, the PDP never called. */
export class CoazMappingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CoazMappingError";
  }
}

/** One decision of a PDP, AuthZEN-shaped, with what Mandate's Authorize adds when it decided. */
export interface PdpDecision {
  decision: boolean;
  /** AuthZEN §6.2 response context (reasons, Mandate's decision_id and obligations). */
  context?: JsonObject;
  /** Mandate's obligations, e.g. {"type": "step_up", "acr_values": "..."} (RFC 9470 challenge). */
  obligations?: JsonObject[];
}

/** A mandate usage to count with an allow (Authorize CheckRequest.consume). */
export interface UsageCharge {
  meter: string;
  amount: number;
  /** Once per key: a retried JSON-RPC request is not counted twice. */
  idempotencyKey: string;
  /**
   * Count only where the mandate says so (some mandate of its chain limits `meter`); otherwise the
   * call is allowed uncounted. False: a mandate without that limit refuses the call.
   */
  onlyIfLimited?: boolean;
}

/** The decision point stage 3 asks; Authorize (gRPC, in-process or remote) or an AuthZEN HTTP PDP. */
export interface Pdp {
  /** One decision per evaluation, in order (an `evaluations` request expanded by its defaults). */
  evaluate(
    caller: VerifiedCaller,
    evaluations: AuthzenEvaluation[],
    options?: { semantic?: EvaluationsSemantic; charge?: UsageCharge },
  ): Promise<PdpDecision[]>;
}

/** PDP unreachable or answering nonsense: JSON-RPC -32603, fail closed. */
export class PdpUnavailable extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "PdpUnavailable";
  }
}

/** JSON-RPC error codes of the COAZ-MCP binding. */
export const JSONRPC_INVALID_PARAMS = -32602;
export const JSONRPC_ACCESS_DENIED = -32001;
export const JSONRPC_INTERNAL_ERROR = -32603;
