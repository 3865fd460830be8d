// What an agent's MCP calls fail with when the mandate, the authorization server or the MCP server
// refuses: typed, so an agent (and the demo) can tell "the human must act" (revoked mandate, step-up)
// from "fix the configuration" (a widening, wrong credentials) — and never retries either forever.

/** Every refusal the mandate client surfaces. */
export class MandateClientError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/**
 * Why Mandate refuses to issue a token under the mandate any more (services/issue/mandates/refusal.ts
 * CONDITIONS, read from the error_description since the token endpoint answers RFC 6749 §5.2 JSON).
 */
export type MandateCondition =
  | "revoked"
  | "expired"
  | "not_yet_valid"
  | "exhausted"
  | "requested"
  | "denied"
  | "unknown_mandate"
  | "other_agent"
  | "inactive";

/**
 * The mandate can no longer be exchanged (RFC 8693 §2.2.2 `invalid_request`, or `invalid_grant` on a
 * refresh, RFC 6749 §5.2): revoked, expired, used up... Only its human can grant a new one.
 */
export class MandateUnusable extends MandateClientError {
  readonly mandateId: string;
  readonly condition: MandateCondition;
  /** The OAuth error (`invalid_request` or `invalid_grant`) and Mandate's error_description. */
  readonly error: string;
  readonly description: string;
  constructor(mandateId: string, condition: MandateCondition, error: string, description: string) {
    super(`mandate ${mandateId} cannot be used (${condition}): ${description}`);
    this.mandateId = mandateId;
    this.condition = condition;
    this.error = error;
    this.description = description;
  }
}

/** Any other refusal of the token endpoint (a widened scope or resource, bad client credentials...). */
export class TokenRequestRefused extends MandateClientError {
  readonly status: number;
  readonly error: string;
  readonly description: string | undefined;
  constructor(status: number, error: string, description?: string) {
    super(`the token endpoint refused (${status} ${error})${description ? `: ${description}` : ""}`);
    this.status = status;
    this.error = error;
    this.description = description;
  }
}

/**
 * RFC 9470 §3: the MCP server wants the human to authenticate more strongly (`acr_values`, `max_age`).
 * A mandate cannot step up by itself: the human must, then grant or renew the mandate.
 */
export class StepUpRequired extends MandateClientError {
  readonly acrValues: string | undefined;
  readonly maxAge: number | undefined;
  readonly description: string | undefined;
  constructor(acrValues: string | undefined, maxAge: number | undefined, description?: string) {
    const wanted = [acrValues && `acr_values "${acrValues}"`, maxAge !== undefined && `max_age ${maxAge}`].filter(
      Boolean,
    );
    super(
      `the MCP server requires a stronger authentication of the human${wanted.length ? ` (${wanted.join(", ")})` : ""}`,
    );
    this.acrValues = acrValues;
    this.maxAge = maxAge;
    this.description = description;
  }
}

/** RFC 6750 §3.1 `insufficient_scope`: the call needs `scope`, which the mandate does not give. */
export class InsufficientScope extends MandateClientError {
  readonly scope: string | undefined;
  readonly description: string | undefined;
  constructor(scope: string | undefined, description?: string) {
    super(
      `the MCP server requires scope ${scope ? `"${scope}"` : "beyond the token's"}${description ? `: ${description}` : ""}`,
    );
    this.scope = scope;
    this.description = description;
  }
}

/** The MCP server refused a fresh token too (RFC 6750 §3.1 / RFC 9449 §7.1 challenge): not retried again. */
export class AccessTokenRefused extends MandateClientError {
  readonly status: number;
  readonly error: string | undefined;
  readonly description: string | undefined;
  constructor(status: number, error: string | undefined, description?: string) {
    super(
      `the MCP server refused the access token (${status}${error ? ` ${error}` : ""})${description ? `: ${description}` : ""}`,
    );
    this.status = status;
    this.error = error;
    this.description = description;
  }
}

/** How Mandate words each condition in its error_description (services/issue/mandates/exchange.ts). */
const CONDITION_WORDING: Array<[RegExp, MandateCondition]> = [
  [/has been revoked/, "revoked"],
  [/is exhausted|usage limit reached/, "exhausted"],
  [/\bexpired?\b|expires within/, "expired"],
  [/is not valid before/, "not_yet_valid"],
  [/(is|has been) requested/, "requested"],
  [/(is|has been) denied/, "denied"],
  [/^no mandate|no longer exists/, "unknown_mandate"],
  [/granted to another agent/, "other_agent"],
  [/(is|has been) inactive/, "inactive"],
];

/** The mandate condition an error_description names, or undefined when it names none. */
export function mandateCondition(description: string | undefined): MandateCondition | undefined {
  if (!description) return undefined;
  return CONDITION_WORDING.find(([wording]) => wording.test(description))?.[1];
}
