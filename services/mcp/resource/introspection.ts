// Token introspection (RFC 7662) against Mandate's introspection endpoint, for an MCP server that
// asks the authorization server whether a locally verified token is still active — on every request,
// or as the revocation feed's stand-in while the feed is down. The MCP server authenticates as its
// own confidential client (client_secret_basic, RFC 6749 §2.3.1). Mandate tells a client about a
// token only if it is the token's client, one of its audiences, or holds `mandate:introspect`
// (services/issue/oauth/endpoints/introspection.ts, RFC 7662 §4): the MCP server's client is an
// administrator-registered client with that scope (the `mandate:` scopes are reserved to those).
import type { AccessTokenClaims } from "../../shared/oauth/access-token.ts";

export interface IntrospectionOptions {
  /** Default: `{issuer}/oauth2/introspect` (Mandate's endpoint). */
  endpoint?: string | undefined;
  clientId: string;
  clientSecret: string;
  /**
   * "always": asked on every request; "fallback": asked only while the revocation feed is down
   * (the default when a feed is configured, "always" otherwise).
   */
  mode?: "always" | "fallback" | undefined;
  /** Give up (and refuse the token) after this long; default 3 s. */
  timeoutMs?: number | undefined;
  fetch?: typeof fetch | undefined;
}

/** Whether the token is active for this server; false on any failure to find out (fail closed). */
export type Introspector = (token: string, claims: AccessTokenClaims) => Promise<boolean>;

export function introspector(issuer: string, options: IntrospectionOptions): Introspector {
  const endpoint = options.endpoint ?? `${issuer}/oauth2/introspect`;
  const encode = (value: string) => encodeURIComponent(value).replace(/%20/g, "+");
  const basic = Buffer.from(`${encode(options.clientId)}:${encode(options.clientSecret)}`).toString("base64");
  const send = options.fetch ?? fetch;
  return async (token, claims) => {
    try {
      const response = await send(endpoint, {
        method: "POST",
        headers: {
          "content-type": "application/x-www-form-urlencoded",
          accept: "application/json",
          authorization: `Basic ${basic}`,
        },
        body: new URLSearchParams({ token, token_type_hint: "access_token" }),
        signal: AbortSignal.timeout(options.timeoutMs ?? 3_000),
      });
      if (response.status !== 200) return false;
      const state = (await response.json()) as { active?: unknown; jti?: unknown; iss?: unknown };
      // RFC 7662 §2.2: `active` is the answer; it must also be about the token verified here.
      return state.active === true && state.jti === claims.jti && state.iss === claims.iss;
    } catch {
      return false;
    }
  };
}
