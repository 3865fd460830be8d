// Scope syntax (RFC 6749 §3.3) and the OpenID Connect scopes the server itself understands.
import { InvalidScope } from "./errors.ts";

export const OIDC_SCOPES = ["openid", "profile", "email", "offline_access"] as const;
export const SUPPORTED_SCOPES = OIDC_SCOPES;
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;

export function parseScope(value: string | undefined): string[] {
  if (value === undefined) return [];
  const tokens = value.split(" ").filter(Boolean);
  for (const token of tokens) if (!SCOPE_TOKEN.test(token)) throw new InvalidScope(`"${token}" is not a valid scope`);
  return [...new Set(tokens)];
}

/**
 * The scopes a client may obtain: requested ∩ allowed must be all of requested (RFC 6749 §3.3 lets
 * the server narrow, but silently dropping scopes surprises clients; we refuse instead). The OIDC
 * scopes are allowed to every client that may use the code flow.
 */
export function grantableScopes(requested: string[], clientScope: string, oidc: boolean): string[] {
  const allowed = new Set(clientScope.split(" ").filter(Boolean));
  if (oidc) for (const scope of OIDC_SCOPES) allowed.add(scope);
  const refused = requested.filter((s) => !allowed.has(s));
  if (refused.length > 0) throw new InvalidScope(`the client may not request: ${refused.join(" ")}`);
  return requested;
}
