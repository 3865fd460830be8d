// Client metadata rules, applied to every client however it is registered (admin API, CLI, and
// later Dynamic Client Registration). A violation names the field and carries the RFC 7591 §3.2.2
// error code: `invalid_redirect_uri` or `invalid_client_metadata`.

export const AUTH_METHODS = ["none", "client_secret_basic", "client_secret_post", "private_key_jwt"] as const;
export type AuthMethod = (typeof AUTH_METHODS)[number];
export const TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange";
export const GRANT_TYPES = ["authorization_code", "refresh_token", "client_credentials", TOKEN_EXCHANGE] as const;

/** Client metadata in RFC 7591 JSON names, with defaults applied: what the store keeps. */
export interface ClientMetadata {
  client_name: string;
  redirect_uris: string[];
  token_endpoint_auth_method: AuthMethod;
  grant_types: string[];
  response_types: string[];
  scope: string;
  jwks?: { keys: Array<Record<string, unknown>> } | undefined;
  jwks_uri?: string | undefined;
  client_uri?: string | undefined;
  require_pushed_authorization_requests: boolean;
  dpop_bound_access_tokens: boolean;
  /** Access-token lifetime in seconds; absent: the deployment default. */
  access_token_lifetime?: number | undefined;
}

export interface MetadataViolation {
  field: string;
  description: string;
  /** RFC 7591 §3.2.2 error code. */
  error: "invalid_redirect_uri" | "invalid_client_metadata";
}

export class InvalidClientMetadata extends Error {
  readonly violations: MetadataViolation[];
  constructor(violations: MetadataViolation[]) {
    super(violations.map((v) => `${v.field}: ${v.description}`).join("; "));
    this.name = "InvalidClientMetadata";
    this.violations = violations;
  }
}

export type ClientMetadataInput = Partial<Omit<ClientMetadata, "token_endpoint_auth_method">> & {
  token_endpoint_auth_method?: string | undefined;
};

/** RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ). */
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;
const LOOPBACK_HOSTS = new Set(["127.0.0.1", "[::1]"]);

/** Applies the RFC 7591 §2 defaults and every rule; throws InvalidClientMetadata listing all violations. */
export function normalizeClientMetadata(input: ClientMetadataInput): ClientMetadata {
  const violations: MetadataViolation[] = [];
  const bad = (field: string, description: string, error: MetadataViolation["error"] = "invalid_client_metadata") =>
    violations.push({ field, description, error });

  const method = (input.token_endpoint_auth_method || "client_secret_basic") as AuthMethod; // RFC 7591 §2 default
  if (!AUTH_METHODS.includes(method)) bad("token_endpoint_auth_method", `must be one of ${AUTH_METHODS.join(", ")}`);
  const isPublic = method === "none";
  const grants = dedupe(input.grant_types?.length ? input.grant_types : ["authorization_code"]);
  for (const grant of grants) {
    if (!(GRANT_TYPES as readonly string[]).includes(grant)) bad("grant_types", `unsupported grant type "${grant}"`);
  }
  // RFC 7591 §2 defaults to "code"; a client without the code grant gets none, so the §2.1 pairing holds.
  const responses = dedupe(
    input.response_types?.length ? input.response_types : grants.includes("authorization_code") ? ["code"] : [],
  );
  for (const type of responses) {
    // OAuth 2.1 §4: the implicit grant and hybrid response types are gone.
    if (type !== "code") bad("response_types", `unsupported response type "${type}" (only "code")`);
  }
  // RFC 7591 §2.1: authorization_code goes with the "code" response type, and back.
  if (grants.includes("authorization_code") !== responses.includes("code")) {
    bad("grant_types", 'grant type "authorization_code" and response type "code" go together (RFC 7591 §2.1)');
  }
  if (grants.includes("client_credentials") && isPublic) {
    bad("grant_types", "client_credentials needs a client that authenticates (not token_endpoint_auth_method none)");
  }

  const redirects = dedupe(input.redirect_uris ?? []);
  if (grants.includes("authorization_code") && redirects.length === 0) {
    bad(
      "redirect_uris",
      "at least one redirect URI is required for the authorization_code grant",
      "invalid_redirect_uri",
    );
  }
  redirects.forEach((uri, i) => {
    const problem = redirectUriProblem(uri, isPublic);
    if (problem) bad(`redirect_uris[${i}]`, problem, "invalid_redirect_uri");
  });

  const scope = (input.scope ?? "").trim().split(/ +/).filter(Boolean);
  if (scope.some((s) => !SCOPE_TOKEN.test(s))) bad("scope", "scope values are space-separated tokens (RFC 6749 §3.3)");

  if (input.jwks && input.jwks_uri) bad("jwks", "give jwks or jwks_uri, not both (RFC 7591 §2)");
  if (input.jwks) {
    const keys = Array.isArray(input.jwks.keys) ? input.jwks.keys : undefined;
    if (!keys || keys.length === 0) bad("jwks", 'must be a JWK Set: {"keys": [...]} with at least one key');
    else if (keys.some((key) => typeof key !== "object" || key === null || !("kty" in key)))
      bad("jwks", "every key needs a kty");
    // A private key here would be a leak, and it would be trusted as the client's public key.
    else if (keys.some((key) => ["d", "p", "q", "dp", "dq", "qi", "k"].some((member) => member in key))) {
      bad("jwks", "must hold public keys only");
    }
  }
  if (input.jwks_uri && !isHttps(input.jwks_uri)) bad("jwks_uri", "must be an https URL");
  if (input.client_uri && !isHttps(input.client_uri)) bad("client_uri", "must be an https URL");
  if (method === "private_key_jwt" && !input.jwks && !input.jwks_uri) {
    bad("jwks", "private_key_jwt needs the client's public keys: jwks or jwks_uri");
  }
  const lifetime = input.access_token_lifetime;
  if (lifetime !== undefined && (!Number.isInteger(lifetime) || lifetime < 10 || lifetime > 3600)) {
    bad("access_token_lifetime", "must be a whole number of seconds from 10 to 3600");
  }
  if (violations.length > 0) throw new InvalidClientMetadata(violations);
  return {
    client_name: (input.client_name ?? "").trim(),
    redirect_uris: redirects,
    token_endpoint_auth_method: method,
    grant_types: grants,
    response_types: responses,
    scope: scope.join(" "),
    jwks: input.jwks,
    jwks_uri: input.jwks_uri || undefined,
    client_uri: input.client_uri || undefined,
    require_pushed_authorization_requests: input.require_pushed_authorization_requests ?? false,
    dpop_bound_access_tokens: input.dpop_bound_access_tokens ?? false,
    ...(lifetime !== undefined ? { access_token_lifetime: lifetime } : {}),
  };
}

/** Why a redirect URI cannot be registered, or undefined when it can. */
export function redirectUriProblem(uri: string, publicClient: boolean): string | undefined {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return "must be an absolute URI (RFC 6749 §3.1.2)";
  }
  if (uri.includes("#")) return "must not contain a fragment (RFC 6749 §3.1.2)";
  if (url.username || url.password) return "must not carry credentials";
  if (url.protocol === "https:") return undefined;
  if (url.protocol === "http:") {
    // RFC 8252 §7.3 (and §8.3: "localhost" is NOT RECOMMENDED): loopback IP literals only.
    if (LOOPBACK_HOSTS.has(url.hostname)) return undefined;
    // RFC 8252 §8.3 does not recommend "localhost", but the MCP authorization spec requires
    // accepting it from native (public) clients; confidential clients still use IP literals.
    if (url.hostname === "localhost") {
      return publicClient
        ? undefined
        : 'use the loopback IP literal 127.0.0.1 or [::1], not "localhost" (RFC 8252 §8.3)';
    }
    return "http is allowed only for loopback redirects (RFC 8252 §7.3); use https";
  }
  // RFC 8252 §7.1: private-use schemes for native apps, in reverse-domain form, public clients only.
  if (!publicClient) return "confidential clients redirect over https";
  if (!/^[a-z][a-z0-9+.-]*\.[a-z0-9+.-]+:$/.test(url.protocol)) {
    return "a private-use scheme must be a reverse domain name, e.g. com.example.app:/callback (RFC 8252 §7.1)";
  }
  return undefined;
}

function isHttps(value: string): boolean {
  try {
    return new URL(value).protocol === "https:";
  } catch {
    return false;
  }
}

function dedupe(values: readonly string[]): string[] {
  return [...new Set(values)];
}
