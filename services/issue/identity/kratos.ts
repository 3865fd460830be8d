// Ory Kratos: the production identity provider. Kratos owns login, MFA and sessions; we ask its
// public API who the browser is (`/sessions/whoami`, with the browser's cookie), send browsers to its
// login flow and end sessions through its logout flow (sign-out). With its admin API configured
// (identity.kratos.adminUrl) we also ask whether an account still exists (getIdentity: mandates'
// revoke_on_account_end) and whom a login_hint names (listIdentities by credentials identifier:
// CIBA). One Kratos serves every tenant, so `tenant` plays no part here.
import type { IncomingMessage } from "node:http";
import { Configuration, FrontendApi, IdentityApi, type Session, type SessionAuthenticationMethod } from "@ory/client";
import { type Clock, systemClock } from "../../shared/clock.ts";
import type { AccountStatus, Authentication, IdentityProvider, LoginRequest } from "./provider.ts";

/** Bounds how long an authorization request waits on Kratos before failing (closed). */
const TIMEOUT_MS = 10_000;

export class KratosIdentity implements IdentityProvider {
  readonly kind = "kratos" as const;
  readonly acrValues = ["aal1", "aal2"] as const;
  readonly #frontend: FrontendApi;
  readonly #admin: IdentityApi | undefined;
  readonly #browserUrl: string;
  readonly #clock: Clock;
  /** The account of a subject (admin API configured only). */
  readonly accountStatus?: (tenant: string, subject: string) => Promise<AccountStatus>;
  /** The identity a login_hint names (admin API configured only). */
  readonly findUser?: (tenant: string, hint: string) => Promise<string | undefined>;

  constructor(options: {
    publicUrl: string;
    browserUrl?: string | undefined;
    adminUrl?: string | undefined;
    fetch?: typeof fetch;
    clock?: Clock;
  }) {
    const publicUrl = options.publicUrl.replace(/\/+$/, "");
    this.#browserUrl = (options.browserUrl ?? publicUrl).replace(/\/+$/, "");
    this.#clock = options.clock ?? systemClock;
    // The SDK is axios-based: its fetch adapter takes the (optional) injected fetch. Every status
    // is let through so that each call alone decides what is "absent" and what is an outage.
    const configuration = (basePath: string) =>
      new Configuration({
        basePath,
        baseOptions: {
          adapter: "fetch",
          ...(options.fetch ? { env: { fetch: options.fetch } } : {}),
          timeout: TIMEOUT_MS,
          validateStatus: () => true,
        },
      });
    this.#frontend = new FrontendApi(configuration(publicUrl));
    if (options.adminUrl) {
      this.#admin = new IdentityApi(configuration(options.adminUrl.replace(/\/+$/, "")));
      this.accountStatus = (_tenant, subject) => this.#accountStatus(subject);
      this.findUser = (_tenant, hint) => this.#findUser(hint);
    }
  }

  /**
   * getIdentity: "active" or "disabled" (Kratos's state `inactive`) as Kratos says; 404 "deleted".
   * A subject that is not a UUID is no Kratos identity at all (deleted, without asking). Any other
   * answer throws: the caller fails closed.
   */
  async #accountStatus(subject: string): Promise<AccountStatus> {
    if (!UUID.test(subject)) return "deleted";
    const response = await (this.#admin as IdentityApi).getIdentity({ id: subject });
    if (response.status === 404) return "deleted";
    const identity = okBody(response, "GET /admin/identities/{id}");
    if (identity.id !== subject) throw new Error("Kratos answered getIdentity with another identity");
    if (identity.state === "inactive") return "disabled";
    if (identity.state === "active" || identity.state === undefined) return "active";
    throw new Error(`Kratos identity state ${String(identity.state)} is unknown`);
  }

  /**
   * The active identity a login_hint names: its id (a UUID, looked up with getIdentity), or a
   * credentials identifier — email or username, exact match (listIdentities credentials_identifier).
   * None, several, or only inactive ones: undefined (CIBA's unknown_user_id). Outages throw.
   */
  async #findUser(hint: string): Promise<string | undefined> {
    const admin = this.#admin as IdentityApi;
    if (UUID.test(hint)) {
      const response = await admin.getIdentity({ id: hint });
      if (response.status === 404) return undefined;
      const identity = okBody(response, "GET /admin/identities/{id}");
      return identity.id === hint && identity.state !== "inactive" ? identity.id : undefined;
    }
    if (hint.length > MAX_HINT) return undefined;
    const response = await admin.listIdentities({ credentialsIdentifier: hint, pageSize: 2 });
    const found = okBody(response, "GET /admin/identities");
    if (!Array.isArray(found)) throw new Error("Kratos answered listIdentities with no list");
    const active = found.filter((identity) => identity.state !== "inactive");
    return active.length === 1 ? active[0]?.id : undefined;
  }

  /**
   * Sign-out: Kratos's logout flow, run by this server with the browser's cookie (createBrowserLogoutFlow,
   * then updateLogoutFlow with its token), or performNativeLogout for a session token. Kratos revokes
   * the session there and then; its own cookie, on Kratos's domain, then opens nothing. A session
   * Kratos no longer knows (401) is ended already; anything else unexpected throws.
   */
  async endSession(req: IncomingMessage, _tenant: string, _auth: Authentication): Promise<{ clearCookies: string[] }> {
    const token = sessionToken(req);
    const cookie = req.headers.cookie;
    if (token && !cookie) {
      const response = await this.#frontend.performNativeLogout({
        performNativeLogoutBody: { session_token: token },
      });
      if (response.status !== 204 && response.status !== 200 && response.status !== 401 && response.status !== 403)
        throw new Error(`Kratos DELETE /self-service/logout/api answered HTTP ${response.status}`);
      return { clearCookies: [] };
    }
    const flow = await this.#frontend.createBrowserLogoutFlow({ ...(cookie ? { cookie } : {}) });
    if (flow.status === 401) return { clearCookies: [] };
    const { logout_token: logoutToken } = okBody(flow, "GET /self-service/logout/browser");
    if (typeof logoutToken !== "string" || !logoutToken) throw new Error("Kratos's logout flow has no logout_token");
    const done = await this.#frontend.updateLogoutFlow(
      { token: logoutToken, ...(cookie ? { cookie } : {}) },
      // Kratos answers browsers with a 303 to its return URL: the answer itself says it is done.
      { maxRedirects: 0 },
    );
    // 303 to return_to for browsers, 204 for API-style calls: both mean the session is revoked.
    if (done.status !== 204 && done.status !== 303 && done.status !== 200)
      throw new Error(`Kratos GET /self-service/logout answered HTTP ${done.status}`);
    return { clearCookies: [] };
  }

  /**
   * Kratos's browser login flow, returning to our resume URL. Kratos only honours `return_to` for
   * hosts in `selfservice.allowed_return_urls`: the issuer's origin must be listed there. Kratos
   * has no login_hint parameter, so the hint is dropped.
   */
  loginUrl(request: LoginRequest): string {
    const url = new URL(`${this.#browserUrl}/self-service/login/browser`);
    url.searchParams.set("return_to", request.returnTo);
    if (request.fresh) url.searchParams.set("refresh", "true");
    if (request.acr === "aal2") url.searchParams.set("aal", "aal2");
    return url.toString();
  }

  /**
   * Asks Kratos whose session the browser carries. Logged out (401, or 403 when Kratos wants a
   * second factor first) is `undefined`; anything else unexpected throws, so an outage becomes an
   * error page and never a login without Kratos's word.
   */
  async session(req: IncomingMessage, _tenant: string): Promise<Authentication | undefined> {
    const cookie = req.headers.cookie;
    const token = sessionToken(req);
    if (!cookie && !token) return undefined;
    const response = await this.#frontend.toSession({
      ...(cookie ? { cookie } : {}),
      ...(token ? { xSessionToken: token } : {}),
    });
    if (response.status === 401 || response.status === 403) return undefined;
    if (response.status !== 200 || typeof response.data !== "object" || response.data === null)
      throw new Error(`Kratos /sessions/whoami answered HTTP ${response.status}`);
    return authenticationFromSession(response.data, this.#clock.now());
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Longer login_hints name no Kratos identifier (Kratos's own identifiers are far shorter). */
const MAX_HINT = 512;

/** The body of a 200 answer of Kratos, or an error naming the call (an outage is never an answer). */
function okBody<T>(response: { status: number; data: T }, call: string): T {
  if (response.status !== 200 || typeof response.data !== "object" || response.data === null)
    throw new Error(`Kratos ${call} answered HTTP ${response.status}`);
  return response.data;
}

/** A Kratos session token from `X-Session-Token` or `Authorization: Bearer` (non-browser clients). */
function sessionToken(req: IncomingMessage): string | undefined {
  const header = req.headers["x-session-token"];
  if (typeof header === "string" && header) return header;
  const match = /^Bearer +(\S+)$/i.exec(req.headers.authorization ?? "");
  return match?.[1];
}

/**
 * What a Kratos session says about the login, or `undefined` when it does not prove one: inactive,
 * expired, of a deactivated identity, without the timestamps, or at aal0 (no factor completed).
 * Missing fields count against the session: Kratos always sends them, a proxy mangling them must
 * not produce a login.
 */
export function authenticationFromSession(session: Session, now: number): Authentication | undefined {
  const identity = session.identity;
  if (session.active !== true || !identity?.id || identity.state === "inactive") return undefined;
  const expiresAt = Date.parse(session.expires_at ?? "");
  const authTime = Date.parse(session.authenticated_at ?? "");
  if (!(expiresAt > now) || Number.isNaN(authTime)) return undefined;
  const acr = ACR[session.authenticator_assurance_level ?? "aal1"];
  if (!acr) return undefined;

  const amr = amrOf(session.authentication_methods ?? [], acr);
  return {
    subject: identity.id,
    authTime,
    acr,
    amr,
    claims: claims(identity),
    ...(session.id ? { sessionId: session.id } : {}),
  };
}

/** The RFC 8176 amr values the session's authentication methods prove, and "mfa" at aal2. */
function amrOf(methods: readonly SessionAuthenticationMethod[], acr: string): string[] {
  const amr = new Set<string>();
  for (const method of methods) for (const value of methodAmr(method)) amr.add(value);
  if (acr === "aal2") amr.add("mfa");
  return [...amr];
}

function methodAmr({ method, upstream_amr }: SessionAuthenticationMethod): readonly string[] {
  const own = method ? (AMR[method] ?? []) : [];
  // Federated logins say nothing of the factor themselves: pass on what the upstream IdP
  // reported, when it is a registered RFC 8176 value.
  if (method !== "oidc" && method !== "saml") return own;
  return [...own, ...(upstream_amr ?? []).filter((value) => RFC8176.has(value))];
}

// Kratos assurance levels as our acr values. aal3 is not issued by Kratos today; should it appear,
// it is at least aal2. aal0 (and unknown values) prove no login.
const ACR: Record<string, string> = { aal1: "aal1", aal2: "aal2", aal3: "aal2" };

// Kratos authentication methods as RFC 8176 amr values. Methods proving nothing on their own
// (profile, identifier_first) and federation (oidc, saml: see upstream_amr) map to none.
const AMR: Record<string, readonly string[]> = {
  password: ["pwd"],
  totp: ["otp"],
  // Backup codes are single-use secrets.
  lookup_secret: ["otp"],
  // Kratos's WebAuthn second factor is typically a security key.
  webauthn: ["hwk"],
  // Passkeys may be synced between devices, so only proof of possession of a key is certain.
  passkey: ["pop"],
  // One-time codes and magic links by email or SMS; RFC 8176 has no "email" value, and "sms"
  // would be a guess as the channel is not in the session.
  code: ["otp"],
  code_recovery: ["otp"],
  link_recovery: ["otp"],
};

// The RFC 8176 §2 registry.
const RFC8176 = new Set([
  "face",
  "fpt",
  "geo",
  "hwk",
  "iris",
  "kba",
  "mca",
  "mfa",
  "otp",
  "pin",
  "pop",
  "pwd",
  "rba",
  "retina",
  "sc",
  "sms",
  "swk",
  "tel",
  "user",
  "vbm",
  "wia",
]);

/** OIDC claims from the identity's traits (the default Kratos schemas' `email`, `name`, `username`). */
function claims(identity: NonNullable<Session["identity"]>): Record<string, unknown> {
  const traits: Record<string, unknown> = isObject(identity.traits) ? identity.traits : {};
  return {
    ...(typeof traits.username === "string" ? { preferred_username: traits.username } : {}),
    ...nameClaims(traits.name),
    ...emailClaims(traits.email, identity.verifiable_addresses ?? []),
  };
}

/** `name`, `given_name`, `family_name` from a name trait: one string, or `{ first, last }`. */
function nameClaims(name: unknown): Record<string, string> {
  if (typeof name === "string") return name ? { name } : {};
  if (!isObject(name)) return {};
  const given = typeof name.first === "string" && name.first ? name.first : undefined;
  const family = typeof name.last === "string" && name.last ? name.last : undefined;
  const full = [given, family].filter(Boolean).join(" ");
  return {
    ...(full ? { name: full } : {}),
    ...(given ? { given_name: given } : {}),
    ...(family ? { family_name: family } : {}),
  };
}

function emailClaims(
  email: unknown,
  addresses: NonNullable<NonNullable<Session["identity"]>["verifiable_addresses"]>,
): Record<string, unknown> {
  if (typeof email !== "string" || !email) return {};
  // Verified only when Kratos verified this very address (Kratos stores addresses lowercased).
  const verified = addresses.some((a) => a.verified === true && a.value.toLowerCase() === email.toLowerCase());
  return { email, email_verified: verified };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
