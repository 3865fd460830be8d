// Ory Kratos: the production identity provider. Kratos owns login, MFA and sessions; we only ask
// its public API who the browser is (`/sessions/whoami`, with the browser's cookie) and send
// browsers to its login flow. One Kratos serves every tenant, so `tenant` plays no part here.
import type { IncomingMessage } from "node:http";
import { Configuration, FrontendApi, type Session, type SessionAuthenticationMethod } from "@ory/client";
import { type Clock, systemClock } from "../../shared/clock.ts";
import type { Authentication, IdentityProvider, LoginRequest } from "./provider.ts";

/** Bounds how long an authorization request waits on Kratos before failing (closed). */
const TIMEOUT_MS = 10_000;

export class KratosIdentity implements IdentityProvider {
  readonly kind = "kratos" as const;
  readonly acrValues = ["aal1", "aal2"] as const;
  readonly #frontend: FrontendApi;
  readonly #browserUrl: string;
  readonly #clock: Clock;

  constructor(options: { publicUrl: string; browserUrl?: string; fetch?: typeof fetch; clock?: Clock }) {
    const publicUrl = options.publicUrl.replace(/\/+$/, "");
    this.#browserUrl = (options.browserUrl ?? publicUrl).replace(/\/+$/, "");
    this.#clock = options.clock ?? systemClock;
    // The SDK is axios-based: its fetch adapter takes the (optional) injected fetch. Every status
    // is let through so that session() alone decides what is "logged out" and what is an outage.
    this.#frontend = new FrontendApi(
      new Configuration({
        basePath: publicUrl,
        baseOptions: {
          adapter: "fetch",
          ...(options.fetch ? { env: { fetch: options.fetch } } : {}),
          timeout: TIMEOUT_MS,
          validateStatus: () => true,
        },
      }),
    );
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
  return { subject: identity.id, authTime, acr, amr, claims: claims(identity) };
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
