// WWW-Authenticate challenges of a protected MCP server, from one builder:
// · 401 without a token: `resource_metadata` (RFC 9728 §5.1) and the `scope` to ask for (MCP
//   authorization spec 2025-11-25, "Scope Selection Strategy"), no error code (RFC 6750 §3.1);
// · 401 `invalid_token` (RFC 6750 §3.1), `invalid_dpop_proof` / `use_dpop_nonce` (RFC 9449 §7.1);
// · 403 `insufficient_scope` with the scope needed (RFC 6750 §3.1, MCP "Step-Up Authorization Flow");
// · 401 `insufficient_user_authentication` with `acr_values` / `max_age` (RFC 9470 §3);
// each with both schemes: Bearer, and DPoP with its `algs` (RFC 9449 §7.1), so either kind of client
// learns what to do. The Bearer challenge comes first: MCP clients (the TypeScript SDK) read the
// parameters of a header that starts with it.
import { DPOP_ALGORITHMS } from "../../shared/oauth/dpop.ts";

export type ChallengeError =
  | "invalid_request"
  | "invalid_token"
  | "insufficient_scope"
  | "insufficient_user_authentication"
  | "invalid_dpop_proof"
  | "use_dpop_nonce";

export interface ChallengeOptions {
  /** Absent when the request carried no credentials at all (RFC 6750 §3.1). */
  error?: ChallengeError | undefined;
  description?: string | undefined;
  /** The scopes to ask for (space-separated or a list). */
  scope?: string | readonly string[] | undefined;
  /** The URL of this server's RFC 9728 metadata. */
  resourceMetadata?: string | undefined;
  /** RFC 9470 §3: the authentication context classes that would do, in order of preference. */
  acrValues?: string | readonly string[] | undefined;
  /** RFC 9470 §3: the most seconds since the user's authentication that would do. */
  maxAge?: number | undefined;
  /** Which scheme the error belongs to: DPoP for proof errors and tokens presented as DPoP. */
  scheme?: "Bearer" | "DPoP" | undefined;
  /** Offer the Bearer scheme (false when the server requires DPoP-bound tokens). Default true. */
  bearer?: boolean | undefined;
  /** DPoP algorithms to advertise; empty: no DPoP challenge. Default: those this kit verifies. */
  dpopAlgs?: readonly string[] | undefined;
}

/**
 * RFC 6750 §3: error, error_description and scope values are %x20-21 / %x23-5B / %x5D-7E (no quote,
 * no backslash, no control character); the other quoted values here follow the same rule. The same
 * filter ResourceServerError (services/shared/oauth/resource-server.ts) applies to its descriptions.
 */
export function quotedValue(value: string): string {
  return `"${value.replace(/[^\x20\x21\x23-\x5b\x5d-\x7e]/g, "")}"`;
}

const joined = (value: string | readonly string[]) => (typeof value === "string" ? value : value.join(" "));

/** The WWW-Authenticate field value (RFC 9110 §11.6.1: challenges separated by commas). */
export function wwwAuthenticate(options: ChallengeOptions): string {
  const errorScheme = errorSchemeOf(options);
  const algs = options.dpopAlgs ?? DPOP_ALGORITHMS;
  const errorParams = errorParameters(options);
  // Discovery parameters go on every challenge: a client reading either scheme finds them.
  const discovery: string[] = [];
  const scope = options.scope === undefined ? "" : joined(options.scope);
  if (scope) discovery.push(`scope=${quotedValue(scope)}`);
  if (options.resourceMetadata) discovery.push(`resource_metadata=${quotedValue(options.resourceMetadata)}`);

  const challenges: string[] = [];
  if (options.bearer !== false) {
    const params = [...(errorScheme === "Bearer" ? errorParams : []), ...discovery];
    challenges.push(params.length ? `Bearer ${params.join(", ")}` : "Bearer");
  }
  if (algs.length > 0) {
    const params = [
      ...(errorScheme === "DPoP" ? errorParams : []),
      ...discovery,
      `algs=${quotedValue(algs.join(" "))}`,
    ];
    challenges.push(`DPoP ${params.join(", ")}`);
  }
  return challenges.join(", ");
}

/** error and error_description (RFC 6750 §3), acr_values and max_age (RFC 9470 §3). */
function errorParameters(options: ChallengeOptions): string[] {
  const params: string[] = [];
  if (options.error) {
    params.push(`error=${quotedValue(options.error)}`);
    if (options.description) params.push(`error_description=${quotedValue(options.description)}`);
  }
  if (options.acrValues !== undefined) params.push(`acr_values=${quotedValue(joined(options.acrValues))}`);
  if (options.maxAge !== undefined)
    params.push(`max_age=${quotedValue(String(Math.max(0, Math.floor(options.maxAge))))}`);
  return params;
}

/** Proof errors are the DPoP scheme's (RFC 9449 §7.1); so is everything when Bearer is not offered. */
function errorSchemeOf(options: ChallengeOptions): "Bearer" | "DPoP" {
  if (options.error === "invalid_dpop_proof" || options.error === "use_dpop_nonce") return "DPoP";
  if (options.bearer === false && (options.dpopAlgs ?? DPOP_ALGORITHMS).length > 0) return "DPoP";
  return options.scheme ?? "Bearer";
}

/** The HTTP status of a refusal: 400 malformed, 403 insufficient scope, 401 otherwise (RFC 6750 §3.1, RFC 9470 §3). */
export function challengeStatus(error: ChallengeError | undefined): 400 | 401 | 403 {
  if (error === "invalid_request") return 400;
  if (error === "insufficient_scope") return 403;
  return 401;
}

/**
 * A refusal of a protected MCP request: the status and WWW-Authenticate to answer with, and the
 * RFC 6750 error. `temporarily_unavailable` (503, no challenge) is for what this server could not
 * check (the replay store down): the token is neither accepted nor called invalid.
 */
export class McpAuthError extends Error {
  readonly status: number;
  readonly error: ChallengeError | "temporarily_unavailable" | undefined;
  readonly wwwAuthenticate: string | undefined;

  constructor(options: ChallengeOptions & { message?: string });
  constructor(options: { unavailable: string; cause?: unknown });
  constructor(options: (ChallengeOptions & { message?: string }) | { unavailable: string; cause?: unknown }) {
    if ("unavailable" in options) {
      super(options.unavailable, { cause: options.cause });
      this.status = 503;
      this.error = "temporarily_unavailable";
      this.wwwAuthenticate = undefined;
    } else {
      super(options.description ?? options.message ?? "authentication is required");
      this.status = challengeStatus(options.error);
      this.error = options.error;
      this.wwwAuthenticate = wwwAuthenticate(options);
    }
    this.name = "McpAuthError";
  }

  /** The RFC 6750 §3 JSON body (error, error_description); empty for a request without credentials. */
  body(): Record<string, string> {
    return this.error ? { error: this.error, error_description: this.message } : {};
  }
}
