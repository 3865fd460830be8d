// How a mandate that cannot issue a token — or a subject or actor token that cannot be used with it —
// is refused, which depends on the path that asked (the checks are shared: exchange.ts,
// issuance-batch.ts):
//   · token exchange: RFC 8693 §2.2.2 — "If the request itself is not valid or if either the
//     subject_token or actor_token are invalid for any reason, or are unacceptable based on policy,
//     the authorization server MUST construct an error response [RFC 6749 §5.2]. The value of the
//     error parameter MUST be the invalid_request error code." (A widening stays invalid_scope,
//     invalid_target or invalid_authorization_details, as §2.2.2 and RFC 9396 §5 allow.)
//   · the refresh_token grant of a mandate's family: RFC 6749 §5.2 — the refresh token is the grant,
//     and a grant that is no longer valid is invalid_grant.
// The error_description is the same on both paths, naming the mandate and the dimension or state.
import { InvalidGrant, InvalidRequest, type OAuthError } from "../oauth/errors.ts";

/**
 * Why a subject token, an actor token or the mandate they name cannot be used, and whether that is
 * what it is (`argument`: no state of the server would make it usable — not a token of this issuer,
 * no such mandate, the wrong kind of token) or its state or the policy now (`precondition`: revoked,
 * expired, not yet valid, used up, another agent's, not named by may_act, no delegation depth left).
 * Issue.ExchangeToken answers the first INVALID_ARGUMENT, the second FAILED_PRECONDITION (rpc-exchange.ts).
 */
export const CONDITIONS = {
  // What the token is.
  invalid_token: "argument",
  wrong_issuer: "argument",
  unknown_mandate: "argument",
  delegated_token: "argument",
  not_client_credentials: "argument",
  own_token: "argument",
  // The state of a token or of a mandate of the chain (MandateState, and the validity window).
  revoked: "precondition",
  expired: "precondition",
  not_yet_valid: "precondition",
  exhausted: "precondition",
  requested: "precondition",
  denied: "precondition",
  /** A state the server does not name more precisely. */
  inactive: "precondition",
  // The policy: whose it is, who may act, how deep.
  other_agent: "precondition",
  other_client: "precondition",
  other_principal: "precondition",
  not_an_agent: "precondition",
  key_mismatch: "precondition",
  may_act: "precondition",
  max_delegation_depth: "precondition",
} as const;

export type Condition = keyof typeof CONDITIONS;

export function isCondition(value: string): value is Condition {
  return Object.hasOwn(CONDITIONS, value);
}

/**
 * RFC 8693 §2.2.2: a token exchange refused because a subject or actor token, or the mandate it
 * names, is invalid or unacceptable — `invalid_request`, with the condition (and what it concerns,
 * e.g. `mandate:mdt_…`, `subject_token`) for Issue.ExchangeToken's status and ErrorInfo.
 */
export class UnacceptableToken extends InvalidRequest {
  readonly condition: Condition;
  readonly subject: string | undefined;
  constructor(condition: Condition, description: string, subject?: string) {
    super(description);
    this.condition = condition;
    this.subject = subject;
  }

  /** Whether the server's state or policy refuses it now (FAILED_PRECONDITION), not what it is. */
  get precondition(): boolean {
    return CONDITIONS[this.condition] === "precondition";
  }
}

/** How a path refuses: the condition, the description (the same on every path), what it concerns. */
export type Refuse = (condition: Condition, description: string, subject?: string) => OAuthError;

/** Token exchange (RFC 8693 §2.2.2): invalid_request. */
export const exchangeRefusal: Refuse = (condition, description, subject) =>
  new UnacceptableToken(condition, description, subject);

/** The refresh_token grant of a mandate's family (RFC 6749 §5.2): invalid_grant. */
export const refreshRefusal: Refuse = (_condition, description) => new InvalidGrant(description);
