// Client metadata rules, applied to every client however it is registered (admin API, CLI, Dynamic
// Client Registration, Client ID Metadata Documents). A violation names the field and carries the
// RFC 7591 §3.2.2 error code: `invalid_redirect_uri` or `invalid_client_metadata`. Registrations
// nobody vouches for (DCR, metadata documents) are held to tighter bounds and may not claim the
// reserved `mandate:` scopes or administrator settings.

import { createPublicKey, type JsonWebKey } from "node:crypto";
import { isIP } from "node:net";
import { fetchTargetProblem } from "../../shared/net/safe-fetch.ts";
import type { ClientRateLimit } from "../../shared/oauth/client-quota.ts";
import { RESERVED_SCOPE_PREFIX } from "../../shared/oauth/mandate-api.ts";
import { resourceProblem } from "../../shared/oauth/resource-indicator.ts";

export const AUTH_METHODS = [
  "none",
  "client_secret_basic",
  "client_secret_post",
  "private_key_jwt",
  // RFC 8705 §2.1 / §2.2: mutual TLS with a certificate of the tenant's agent CA, or a self-signed one.
  "tls_client_auth",
  "self_signed_tls_client_auth",
] as const;
export type AuthMethod = (typeof AUTH_METHODS)[number];
export const TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange";
/** OpenID CIBA Core §10.1: polling for the tokens of a backchannel request (an agent's asynchronous mandate grant). */
export const CIBA_GRANT_TYPE = "urn:openid:params:grant-type:ciba";
export const GRANT_TYPES = [
  "authorization_code",
  "refresh_token",
  "client_credentials",
  TOKEN_EXCHANGE,
  CIBA_GRANT_TYPE,
] as const;
/** What a client is: an application (the default) or an agent (issue 15: an owner, a key, confidential). */
export const CLIENT_KINDS = ["application", "agent"] as const;
export type ClientKind = (typeof CLIENT_KINDS)[number];
/** The grants of an agent that names none: it acts with no browser, on its own or under a mandate. */
export const AGENT_DEFAULT_GRANTS = ["client_credentials", TOKEN_EXCHANGE] as const;
/** RFC 7638 SHA-256 JWK thumbprint, base64url without padding (RFC 9449 §6.1 `jkt`). */
const JKT = /^[A-Za-z0-9_-]{43}$/;
/** An owner is a `sub` (OIDC Core §2: at most 255 ASCII characters) or an org id: visible ASCII. */
const OWNER = /^[\x21-\x7E]{1,255}$/;

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
  /** Resource indicators (RFC 8707) the client may obtain tokens for; absent: the tenant's default_resources. */
  resources?: string[] | undefined;
  /** Opt-in quota at the client-authenticated endpoints (set by an administrator). */
  rate_limit?: ClientRateLimit | undefined;
  /** What it is; absent: an application (clients registered before kinds existed). */
  kind?: ClientKind | undefined;
  /** Who answers for it: an agent's owner, a human's `sub` or an org id (vouched for by an administrator). */
  owner?: string | undefined;
  /** What it is and does, shown to humans. */
  description?: string | undefined;
  /** The RFC 7638 thumbprint of the one DPoP key its tokens are bound to: every token request proves it. */
  dpop_jkt?: string | undefined;
  /** RFC 8705 §2.1.2: with tls_client_auth, exactly one of these names the certificate (an agent: none, its SPIFFE ID). */
  tls_client_auth_subject_dn?: string | undefined;
  tls_client_auth_san_dns?: string | undefined;
  tls_client_auth_san_uri?: string | undefined;
  tls_client_auth_san_ip?: string | undefined;
  tls_client_auth_san_email?: string | undefined;
  /** RFC 8705 §3.4: its access tokens are always bound to the certificate it presents. */
  tls_client_certificate_bound_access_tokens?: boolean | undefined;
}

/** The members that say who a client is; kept in their own columns (filters), not in the metadata JSON. */
export type ClientIdentity = Pick<ClientMetadata, "kind" | "owner" | "description" | "dpop_jkt">;

/** Bounds on every registration, and tighter ones for registrations nobody vouches for. */
/** A client as the authorization server knows it: its metadata and who vouches for it. */
export interface RegisteredClient {
  tenant: string;
  clientId: string;
  metadata: ClientMetadata;
  hasSecret: boolean;
  createdAt: number;
  /**
   * Who vouches for it: "admin" (admin API, CLI), "dynamic" (RFC 7591 registration, anyone) or
   * "document" (a Client ID Metadata Document, anyone). Only admin clients' redirect URIs are
   * trusted before a user has approved the client (RFC 9700 §4.11.2).
   */
  origin: "admin" | "dynamic" | "document";
}

export const METADATA_LIMITS = {
  clientName: 200,
  uri: 2048,
  scopeChars: 4096,
  resources: 20,
  untrustedRedirectUris: 20,
  untrustedScopes: 20,
  untrustedScopeChars: 100,
  untrustedJwksKeys: 10,
  description: 1024,
} as const;

export interface NormalizeOptions {
  /** Dynamic registration or a metadata document: tighter bounds, no reserved scopes, no rate_limit. */
  untrusted?: boolean | undefined;
  /** Tests only (oauth.allowPrivateMetadataHosts): jwks_uri may name a private or loopback host. */
  allowPrivateHosts?: boolean | undefined;
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

export type ClientMetadataInput = Partial<Omit<ClientMetadata, "token_endpoint_auth_method" | "kind">> & {
  token_endpoint_auth_method?: string | undefined;
  kind?: string | undefined;
};

/** RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ). */
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;
const LOOPBACK_HOSTS = new Set(["127.0.0.1", "[::1]"]);

/** Records one violation; every rule reports into one list, so a refusal names all that is wrong. */
type Report = (field: string, description: string, error?: MetadataViolation["error"]) => void;

/** Applies the RFC 7591 §2 defaults and every rule; throws InvalidClientMetadata listing all violations. */
export function normalizeClientMetadata(input: ClientMetadataInput, options: NormalizeOptions = {}): ClientMetadata {
  const untrusted = options.untrusted === true;
  const violations: MetadataViolation[] = [];
  const bad: Report = (field, description, error = "invalid_client_metadata") => {
    violations.push({ field, description, error });
  };

  const kind = kindOf(input.kind, bad);
  const method = authMethodOf(input.token_endpoint_auth_method, bad, kind === "agent" && hasKeySet(input));
  const isPublic = method === "none";
  const grants = grantTypesOf(input.grant_types, bad, kind === "agent" ? AGENT_DEFAULT_GRANTS : undefined);
  const responses = responseTypesOf(input.response_types, grants, bad);
  requireConsistentGrants(grants, responses, isPublic, bad);
  const name = clientNameOf(input.client_name, bad);
  const redirects = redirectUrisOf(input.redirect_uris, grants, isPublic, untrusted, bad);
  const scope = scopesOf(input.scope, untrusted, bad);
  checkKeySources(input, untrusted, options.allowPrivateHosts, bad);
  checkClientUri(input.client_uri, bad);
  const resources = resourcesOf(input.resources, bad);
  checkRateLimit(input.rate_limit, untrusted, bad);
  if (method === "private_key_jwt" && !input.jwks && !input.jwks_uri) {
    bad("jwks", "private_key_jwt needs the client's public keys: jwks or jwks_uri");
  }
  const mutualTls = mutualTlsOf(input, method, kind, bad);
  checkAccessTokenLifetime(input.access_token_lifetime, bad);
  const identity = identityOf(input, kind, method, bad);
  if (violations.length > 0) throw new InvalidClientMetadata(violations);
  return {
    client_name: name,
    redirect_uris: redirects,
    token_endpoint_auth_method: method,
    grant_types: grants,
    response_types: responses,
    scope: scope.join(" "),
    jwks: input.jwks,
    jwks_uri: input.jwks_uri || undefined,
    client_uri: input.client_uri || undefined,
    require_pushed_authorization_requests: input.require_pushed_authorization_requests ?? false,
    // A client bound to one key always proves it (RFC 9449 §5.2).
    dpop_bound_access_tokens: (input.dpop_bound_access_tokens ?? false) || identity.dpop_jkt !== undefined,
    ...administratorSettings(input, resources),
    ...mutualTls,
    ...identity,
  };
}

function kindOf(requested: string | undefined, bad: Report): ClientKind {
  const kind = (requested || "application") as ClientKind;
  if (!CLIENT_KINDS.includes(kind)) bad("kind", `must be one of ${CLIENT_KINDS.join(", ")}`);
  return kind;
}

/**
 * RFC 7591 §2 defaults to client_secret_basic; an agent that registers its public keys and names no
 * method authenticates with them (private_key_jwt).
 */
function authMethodOf(requested: string | undefined, bad: Report, keysOfAnAgent: boolean): AuthMethod {
  const method = (requested || (keysOfAnAgent ? "private_key_jwt" : "client_secret_basic")) as AuthMethod;
  if (!AUTH_METHODS.includes(method)) bad("token_endpoint_auth_method", `must be one of ${AUTH_METHODS.join(", ")}`);
  return method;
}

function hasKeySet(input: ClientMetadataInput): boolean {
  return Boolean(input.jwks || input.jwks_uri);
}

function grantTypesOf(requested: string[] | undefined, bad: Report, defaults?: readonly string[]): string[] {
  const grants = dedupe(requested?.length ? requested : (defaults ?? ["authorization_code"]));
  for (const grant of grants) {
    if (!(GRANT_TYPES as readonly string[]).includes(grant)) bad("grant_types", `unsupported grant type "${grant}"`);
  }
  return grants;
}

function responseTypesOf(requested: string[] | undefined, grants: readonly string[], bad: Report): string[] {
  // RFC 7591 §2 defaults to "code"; a client without the code grant gets none, so the §2.1 pairing holds.
  const defaults = grants.includes("authorization_code") ? ["code"] : [];
  const responses = dedupe(requested?.length ? requested : defaults);
  for (const type of responses) {
    // OAuth 2.1 §4: the implicit grant and hybrid response types are gone.
    if (type !== "code") bad("response_types", `unsupported response type "${type}" (only "code")`);
  }
  return responses;
}

function requireConsistentGrants(
  grants: readonly string[],
  responses: readonly string[],
  isPublic: boolean,
  bad: Report,
): void {
  // RFC 7591 §2.1: authorization_code goes with the "code" response type, and back.
  if (grants.includes("authorization_code") !== responses.includes("code")) {
    bad("grant_types", 'grant type "authorization_code" and response type "code" go together (RFC 7591 §2.1)');
  }
  if (grants.includes("client_credentials") && isPublic) {
    bad("grant_types", "client_credentials needs a client that authenticates (not token_endpoint_auth_method none)");
  }
  // OpenID CIBA Core §7.1: the client authenticates at the backchannel authentication endpoint.
  if (grants.includes(CIBA_GRANT_TYPE) && isPublic) {
    bad("grant_types", `${CIBA_GRANT_TYPE} needs a client that authenticates (not token_endpoint_auth_method none)`);
  }
}

function clientNameOf(requested: string | undefined, bad: Report): string {
  const name = (requested ?? "").trim();
  if (name.length > METADATA_LIMITS.clientName) {
    bad("client_name", `must be at most ${METADATA_LIMITS.clientName} characters`);
  }
  return name;
}

function redirectUrisOf(
  requested: string[] | undefined,
  grants: readonly string[],
  isPublic: boolean,
  untrusted: boolean,
  bad: Report,
): string[] {
  const redirects = dedupe(requested ?? []);
  if (untrusted && redirects.length > METADATA_LIMITS.untrustedRedirectUris) {
    bad(
      "redirect_uris",
      `at most ${METADATA_LIMITS.untrustedRedirectUris} redirect URIs may be registered`,
      "invalid_redirect_uri",
    );
  }
  if (grants.includes("authorization_code") && redirects.length === 0) {
    bad(
      "redirect_uris",
      "at least one redirect URI is required for the authorization_code grant",
      "invalid_redirect_uri",
    );
  }
  redirects.forEach((uri, i) => {
    const problem =
      uri.length > METADATA_LIMITS.uri
        ? `must be at most ${METADATA_LIMITS.uri} characters`
        : redirectUriProblem(uri, isPublic);
    if (problem) bad(`redirect_uris[${i}]`, problem, "invalid_redirect_uri");
  });
  return redirects;
}

function scopesOf(requested: string | undefined, untrusted: boolean, bad: Report): string[] {
  const scope = (requested ?? "").trim().split(/ +/).filter(Boolean);
  if (scope.some((s) => !SCOPE_TOKEN.test(s))) bad("scope", "scope values are space-separated tokens (RFC 6749 §3.3)");
  if ((requested ?? "").length > METADATA_LIMITS.scopeChars) {
    bad("scope", `must be at most ${METADATA_LIMITS.scopeChars} characters`);
  }
  if (untrusted) checkUntrustedScopes(scope, bad);
  return scope;
}

function checkUntrustedScopes(scope: readonly string[], bad: Report): void {
  if (scope.length > METADATA_LIMITS.untrustedScopes) {
    bad("scope", `at most ${METADATA_LIMITS.untrustedScopes} scopes may be registered`);
  }
  if (scope.some((s) => s.length > METADATA_LIMITS.untrustedScopeChars)) {
    bad("scope", `each scope must be at most ${METADATA_LIMITS.untrustedScopeChars} characters`);
  }
  // RFC 7591 §2 lets the server refuse scopes it will not grant: Mandate's own permissions are
  // assigned by an administrator, never claimed by a registration.
  const reserved = scope.filter((s) => s.toLowerCase().startsWith(RESERVED_SCOPE_PREFIX));
  if (reserved.length > 0) {
    bad(
      "scope",
      `"${RESERVED_SCOPE_PREFIX}" scopes are reserved for clients an administrator registers: ${reserved.join(" ")}`,
    );
  }
}

/** The client's public keys: given inline (jwks) or by URL (jwks_uri), not both. */
function checkKeySources(
  input: ClientMetadataInput,
  untrusted: boolean,
  allowPrivateHosts: boolean | undefined,
  bad: Report,
): void {
  if (input.jwks && input.jwks_uri) bad("jwks", "give jwks or jwks_uri, not both (RFC 7591 §2)");
  if (input.jwks) checkJwks(input.jwks, untrusted, bad);
  if (input.jwks_uri) checkJwksUri(input.jwks_uri, allowPrivateHosts, bad);
}

function checkJwks(jwks: NonNullable<ClientMetadata["jwks"]>, untrusted: boolean, bad: Report): void {
  const problem = jwksProblem(jwks, untrusted);
  if (problem) bad(problem.field, problem.description);
}

/** The first thing wrong with an inline JWK Set, if any. */
function jwksProblem(
  jwks: NonNullable<ClientMetadata["jwks"]>,
  untrusted: boolean,
): Pick<MetadataViolation, "field" | "description"> | undefined {
  const keys = Array.isArray(jwks.keys) ? jwks.keys : undefined;
  if (!keys || keys.length === 0) {
    return { field: "jwks", description: 'must be a JWK Set: {"keys": [...]} with at least one key' };
  }
  if (keys.some((key) => typeof key !== "object" || key === null || !("kty" in key))) {
    return { field: "jwks", description: "every key needs a kty" };
  }
  // A private key here would be a leak, and it would be trusted as the client's public key.
  if (keys.some((key) => ["d", "p", "q", "dp", "dq", "qi", "k"].some((member) => member in key))) {
    return { field: "jwks", description: "must hold public keys only" };
  }
  if (untrusted && keys.length > METADATA_LIMITS.untrustedJwksKeys) {
    return { field: "jwks", description: `at most ${METADATA_LIMITS.untrustedJwksKeys} keys` };
  }
  // A key that cannot be imported could never verify an assertion: refused now, not at the token endpoint.
  const unusable = keys.findIndex((key) => !usablePublicKey(key));
  if (unusable < 0) return undefined;
  return {
    field: `jwks.keys[${unusable}]`,
    description: "is not a usable public key (RFC 7517 §4; an RSA key needs 2048 bits or more)",
  };
}

function checkJwksUri(uri: string, allowPrivateHosts: boolean | undefined, bad: Report): void {
  // The server fetches jwks_uri, so it must be a public https URL (SSRF): refused here already,
  // not only when a client authentication would fetch it.
  const target = fetchTargetProblem(uri, { allowPrivate: allowPrivateHosts });
  if (uri.length > METADATA_LIMITS.uri) bad("jwks_uri", `must be at most ${METADATA_LIMITS.uri} characters`);
  else if (!isHttps(uri)) bad("jwks_uri", "must be an https URL");
  else if (target) bad("jwks_uri", `must be a public https URL (the server fetches it): ${target}`);
}

function checkClientUri(uri: string | undefined, bad: Report): void {
  if (uri && (!isHttps(uri) || uri.length > METADATA_LIMITS.uri)) {
    bad("client_uri", `must be an https URL of at most ${METADATA_LIMITS.uri} characters`);
  }
}

function resourcesOf(requested: string[] | undefined, bad: Report): string[] | undefined {
  if (requested === undefined) return undefined;
  const resources = dedupe(requested);
  if (resources.length > METADATA_LIMITS.resources) bad("resources", `at most ${METADATA_LIMITS.resources} resources`);
  resources.forEach((resource, i) => {
    const problem = resourceProblem(resource);
    if (problem) bad(`resources[${i}]`, problem);
  });
  return resources;
}

function checkRateLimit(rateLimit: ClientRateLimit | undefined, untrusted: boolean, bad: Report): void {
  if (rateLimit === undefined) return;
  if (untrusted) bad("rate_limit", "is set by an administrator");
  else if (!isRateLimit(rateLimit)) {
    bad("rate_limit", "needs requests_per_second above 0 (at most 100000) and a whole burst from 1 to 100000");
  }
}

function isRateLimit(value: unknown): value is ClientRateLimit {
  if (typeof value !== "object" || value === null) return false;
  const { requests_per_second: rate, burst } = value as Partial<ClientRateLimit>;
  return (
    typeof rate === "number" &&
    rate > 0 &&
    rate <= 100_000 &&
    typeof burst === "number" &&
    Number.isInteger(burst) &&
    burst >= 1 &&
    burst <= 100_000
  );
}

function checkAccessTokenLifetime(lifetime: number | undefined, bad: Report): void {
  if (lifetime !== undefined && (!Number.isInteger(lifetime) || lifetime < 10 || lifetime > 3600)) {
    bad("access_token_lifetime", "must be a whole number of seconds from 10 to 3600");
  }
}

/**
 * Who the client is: its kind, owner, description and bound DPoP key, present only when set. An
 * agent needs an owner and a key — dpop_jkt, or jwks / jwks_uri with private_key_jwt — and must
 * authenticate (never `none`): its tokens are always traceable to someone and bound to its key.
 */
function identityOf(input: ClientMetadataInput, kind: ClientKind, method: AuthMethod, bad: Report): ClientIdentity {
  const owner = input.owner?.trim() || undefined;
  const description = input.description?.trim() || undefined;
  const jkt = input.dpop_jkt || undefined;
  if (owner !== undefined && !OWNER.test(owner)) {
    bad("owner", "must be 1 to 255 visible ASCII characters (a subject identifier or an org id)");
  }
  if (description !== undefined && description.length > METADATA_LIMITS.description) {
    bad("description", `must be at most ${METADATA_LIMITS.description} characters`);
  }
  if (jkt !== undefined && !JKT.test(jkt)) {
    bad("dpop_jkt", "must be an RFC 7638 SHA-256 JWK thumbprint: 43 base64url characters");
  }
  if (kind === "agent") checkAgent(input, owner, jkt, method, bad);
  // Applications stay as they were stored before kinds existed: no `kind` member.
  return definedMembers({ kind: kind === "agent" ? kind : undefined, owner, description, dpop_jkt: jkt });
}

/** `members` without the ones that are undefined (absent from the stored JSON, not `null`). */
function definedMembers<T extends Record<string, unknown>>(members: T): Partial<T> {
  return Object.fromEntries(Object.entries(members).filter(([, value]) => value !== undefined)) as Partial<T>;
}

function checkAgent(
  input: ClientMetadataInput,
  owner: string | undefined,
  jkt: string | undefined,
  method: AuthMethod,
  bad: Report,
): void {
  if (owner === undefined)
    bad("owner", "an agent needs an owner: the sub of the human or the id of the org it acts for");
  if (method === "none") {
    bad("token_endpoint_auth_method", "an agent is a confidential client: none is not allowed");
  }
  const keySet = hasKeySet(input);
  const keyMethod = method === "private_key_jwt" || method === "self_signed_tls_client_auth";
  // An agent with tls_client_auth holds the key of its certificate (enrolled with the tenant's CA).
  if (keySet && !keyMethod && jkt === undefined) {
    bad(
      "jwks",
      "an agent's jwks / jwks_uri is its key only with token_endpoint_auth_method private_key_jwt or self_signed_tls_client_auth",
    );
  } else if (!keySet && jkt === undefined && method !== "tls_client_auth") {
    bad(
      "dpop_jkt",
      "an agent needs a key: dpop_jkt (the RFC 7638 thumbprint of its DPoP key), jwks, jwks_uri or a certificate (tls_client_auth)",
    );
  }
}

/** RFC 8705 §2.1.2: the registration members naming the one subject or SAN value a tls_client_auth certificate has. */
export const TLS_CLIENT_AUTH_NAMES = [
  "tls_client_auth_subject_dn",
  "tls_client_auth_san_dns",
  "tls_client_auth_san_uri",
  "tls_client_auth_san_ip",
  "tls_client_auth_san_email",
] as const;
type MutualTlsMetadata = Pick<
  ClientMetadata,
  (typeof TLS_CLIENT_AUTH_NAMES)[number] | "tls_client_certificate_bound_access_tokens"
>;

/**
 * RFC 8705 members, present only when set: §2.1.2 exactly one certificate name with tls_client_auth
 * (an agent may give none: its SPIFFE ID is the URI SAN its certificates carry), none otherwise;
 * §2.2 self_signed_tls_client_auth registers its certificates in jwks (inline: x5c or the key);
 * §3.4 certificate-bound tokens for a client that authenticates (refresh tokens are bound by it, §4).
 */
function mutualTlsOf(input: ClientMetadataInput, method: AuthMethod, kind: ClientKind, bad: Report): MutualTlsMetadata {
  const named = TLS_CLIENT_AUTH_NAMES.filter((member) => input[member]);
  if (method === "tls_client_auth" && named.length > 1) {
    bad(named[1] as string, `give exactly one of ${TLS_CLIENT_AUTH_NAMES.join(", ")} (RFC 8705 §2.1.2)`);
  } else if (method === "tls_client_auth" && named.length === 0 && kind !== "agent") {
    bad(
      "tls_client_auth_subject_dn",
      `tls_client_auth needs one of ${TLS_CLIENT_AUTH_NAMES.join(", ")} (RFC 8705 §2.1.2)`,
    );
  } else if (method !== "tls_client_auth" && named.length > 0) {
    bad(named[0] as string, "is a tls_client_auth setting (RFC 8705 §2.1.2)");
  }
  for (const member of named) {
    const problem = certificateNameProblem(member, input[member] as string);
    if (problem) bad(member, problem);
  }
  if (method === "self_signed_tls_client_auth" && !input.jwks) {
    bad("jwks", "self_signed_tls_client_auth needs the client's certificates or their keys in jwks (RFC 8705 §2.2)");
  }
  const bound = input.tls_client_certificate_bound_access_tokens ?? false;
  if (bound && method === "none") {
    bad(
      "tls_client_certificate_bound_access_tokens",
      "needs a client that authenticates (refresh tokens are bound by it)",
    );
  }
  return definedMembers({
    ...Object.fromEntries(named.map((member) => [member, input[member]])),
    tls_client_certificate_bound_access_tokens: bound || undefined,
  }) as MutualTlsMetadata;
}

/** Why a registered certificate name cannot match a certificate, or undefined. */
function certificateNameProblem(member: (typeof TLS_CLIENT_AUTH_NAMES)[number], value: string): string | undefined {
  if (value.length > METADATA_LIMITS.uri) return `must be at most ${METADATA_LIMITS.uri} characters`;
  if (member === "tls_client_auth_san_uri" && !URL.canParse(value)) return "must be an absolute URI";
  if (member === "tls_client_auth_san_ip" && !isIP(value)) return "must be an IPv4 or IPv6 address";
  if (member === "tls_client_auth_san_email" && !/^[^\s@]+@[^\s@]+$/.test(value)) return "must be an email address";
  if (member === "tls_client_auth_subject_dn" && !/^[A-Za-z][\w.-]*=/.test(value)) {
    return "must be an RFC 4514 distinguished name, e.g. CN=agent,O=Example";
  }
  return undefined;
}

/** The members an administrator sets, present only when set: the lifetime, the resources, the quota. */
function administratorSettings(
  input: ClientMetadataInput,
  resources: string[] | undefined,
): Pick<ClientMetadata, "access_token_lifetime" | "resources" | "rate_limit"> {
  const lifetime = input.access_token_lifetime;
  const rateLimit = input.rate_limit;
  return {
    ...(lifetime !== undefined ? { access_token_lifetime: lifetime } : {}),
    ...(resources?.length ? { resources } : {}),
    ...(rateLimit
      ? { rate_limit: { requests_per_second: rateLimit.requests_per_second, burst: rateLimit.burst } }
      : {}),
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

/** Whether a JWK is a public key Node can import: a point on its curve, an RSA modulus of 2048 bits or more. */
function usablePublicKey(jwk: Record<string, unknown>): boolean {
  try {
    const key = createPublicKey({ key: jwk as JsonWebKey, format: "jwk" });
    return key.asymmetricKeyType !== "rsa" || (key.asymmetricKeyDetails?.modulusLength ?? 0) >= 2048;
  } catch {
    return false;
  }
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

/** Members a registration may send (RFC 7591 §2 and ours); anything else is ignored, as RFC 7591 §2 requires. */
export const REGISTRATION_MEMBERS = [
  "client_name",
  "redirect_uris",
  "token_endpoint_auth_method",
  "grant_types",
  "response_types",
  "scope",
  "jwks",
  "jwks_uri",
  "client_uri",
  "require_pushed_authorization_requests",
  "dpop_bound_access_tokens",
  "resources",
  "rate_limit",
  "kind",
  "owner",
  "description",
  "dpop_jkt",
  "tls_client_auth_subject_dn",
  "tls_client_auth_san_dns",
  "tls_client_auth_san_uri",
  "tls_client_auth_san_ip",
  "tls_client_auth_san_email",
  "tls_client_certificate_bound_access_tokens",
] as const;

/** The JSON type each known member must have, checked in this order (the first mismatch is reported). */
const MEMBER_TYPES: ReadonlyArray<{
  members: readonly (typeof REGISTRATION_MEMBERS)[number][];
  is: (value: unknown) => boolean;
  description: string;
}> = [
  {
    members: ["redirect_uris", "grant_types", "response_types", "resources"],
    is: (value) => Array.isArray(value) && value.every((v) => typeof v === "string"),
    description: "must be an array of strings",
  },
  {
    members: [
      "client_name",
      "scope",
      "token_endpoint_auth_method",
      "jwks_uri",
      "client_uri",
      "kind",
      "owner",
      "description",
      "dpop_jkt",
      "tls_client_auth_subject_dn",
      "tls_client_auth_san_dns",
      "tls_client_auth_san_uri",
      "tls_client_auth_san_ip",
      "tls_client_auth_san_email",
    ],
    is: (value) => typeof value === "string",
    description: "must be a string",
  },
  {
    members: [
      "require_pushed_authorization_requests",
      "dpop_bound_access_tokens",
      "tls_client_certificate_bound_access_tokens",
    ],
    is: (value) => typeof value === "boolean",
    description: "must be a boolean",
  },
  { members: ["jwks", "rate_limit"], is: isJsonObject, description: "must be a JSON object" },
];

/** The known members of a JSON registration (or metadata document), type-checked; throws InvalidClientMetadata. */
export function metadataInputFrom(body: unknown): ClientMetadataInput {
  if (!isJsonObject(body)) {
    throw new InvalidClientMetadata([
      { field: "(body)", description: "must be a JSON object of client metadata", error: "invalid_client_metadata" },
    ]);
  }
  const input: Record<string, unknown> = {};
  for (const name of REGISTRATION_MEMBERS) if (body[name] !== undefined) input[name] = body[name];
  for (const { members, is, description } of MEMBER_TYPES) {
    const wrong = members.find((name) => input[name] !== undefined && !is(input[name]));
    if (wrong) {
      const error = wrong === "redirect_uris" ? "invalid_redirect_uri" : "invalid_client_metadata";
      throw new InvalidClientMetadata([{ field: wrong, description, error }]);
    }
  }
  return input as ClientMetadataInput;
}

function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
