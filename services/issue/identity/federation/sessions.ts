// Mandate login sessions of federated humans (federated_sessions), whatever the primary identity
// provider: the OAuth server's identity provider is the primary one composed with these, so a
// browser back from an upstream IdP is logged in for Mandate, with the upstream's acr/amr/auth_time.
import { randomBytes } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { handleHash } from "../../../shared/oauth/handles.ts";
import type { Store } from "../../../shared/store/store.ts";
import { cookies } from "../../oauth/http.ts";
import type { AccountStatus, Authentication, IdentityProvider, LoginRequest, SessionCookie } from "../provider.ts";

export const FEDERATED_SESSION_COOKIE = "mandate_federated_session";

export interface FederatedLogin {
  providerId: string;
  subject: string;
  authTime: number;
  acr: string;
  amr: string[];
  claims: Record<string, unknown>;
}

export class FederatedSessions {
  readonly #store: Store;
  readonly #now: () => number;
  readonly #ttlMs: number;

  constructor(options: { store: Store; now: () => number; ttlMs: number }) {
    this.#store = options.store;
    this.#now = options.now;
    this.#ttlMs = options.ttlMs;
  }

  async open(tenant: string, login: FederatedLogin): Promise<SessionCookie> {
    const value = randomBytes(32).toString("base64url");
    await this.#store
      .forTenant(tenant)
      .db.insertInto("federated_sessions")
      .values({
        tenant_id: tenant,
        id_hash: handleHash(value),
        provider_id: login.providerId,
        subject: login.subject,
        auth_time: login.authTime,
        acr: login.acr,
        amr: JSON.stringify(login.amr),
        claims: JSON.stringify(login.claims),
        expires_at: this.#now() + this.#ttlMs,
      })
      .execute();
    return { name: FEDERATED_SESSION_COOKIE, value, maxAgeSeconds: Math.floor(this.#ttlMs / 1000) };
  }

  async find(req: IncomingMessage, tenant: string): Promise<Authentication | undefined> {
    const value = cookies(req).get(FEDERATED_SESSION_COOKIE);
    if (!value) return undefined;
    const row = await this.#store
      .forTenant(tenant)
      .db.selectFrom("federated_sessions")
      .selectAll()
      .where("tenant_id", "=", tenant)
      .where("id_hash", "=", handleHash(value))
      .executeTakeFirst();
    if (!row || Number(row.expires_at) <= this.#now()) return undefined;
    return {
      subject: row.subject,
      authTime: Number(row.auth_time),
      acr: row.acr,
      amr: JSON.parse(row.amr) as string[],
      claims: JSON.parse(row.claims) as Record<string, unknown>,
      sessionId: `fed:${row.id_hash}`,
    };
  }

  /** Ends the session `sessionId` names (as find() reported it); false when it is not a federated one. */
  async end(tenant: string, sessionId: string | undefined): Promise<boolean> {
    if (!sessionId?.startsWith("fed:")) return false;
    await this.#store
      .forTenant(tenant)
      .db.deleteFrom("federated_sessions")
      .where("tenant_id", "=", tenant)
      .where("id_hash", "=", sessionId.slice(4))
      .execute();
    return true;
  }

  /**
   * Whether `subject` is linked to an upstream identity (its account lives at the upstream IdP).
   * Asked of the links, not of the sessions: expired sessions are swept (housekeeping.ts), the link stays.
   */
  async knows(tenant: string, subject: string): Promise<boolean> {
    const row = await this.#store
      .forTenant(tenant)
      .db.selectFrom("federated_identities")
      .select("subject")
      .where("tenant_id", "=", tenant)
      .where("subject", "=", subject)
      .executeTakeFirst();
    return row !== undefined;
  }
}

/**
 * Where a provider whose users log in at the provider itself (Kratos) sends browsers first when
 * the tenant has upstream IdPs: Mandate's own login page, which offers them and home-realm
 * discovery and links on to the provider.
 */
export interface IdpChooser {
  hasProviders(tenant: string): Promise<boolean>;
  url(request: LoginRequest): string;
}

/**
 * The primary identity provider, with federated sessions found first: a federated human has a
 * Mandate session whether the primary provider is dev users or Kratos.
 */
export function withFederatedSessions(
  primary: IdentityProvider,
  sessions: FederatedSessions,
  chooser?: IdpChooser,
): IdentityProvider {
  // The authorization endpoint asks session() right before loginUrl() (interaction.ts): session()
  // notes whether the tenant has IdPs to offer, so the synchronous loginUrl() can send it to them.
  const offersIdps = new Map<string, boolean>();
  const composed: IdentityProvider = {
    kind: primary.kind,
    acrValues: primary.acrValues,
    passwordLogin: primary.passwordLogin,
    loginUrl: (request) =>
      chooser && offersIdps.get(request.tenant) ? chooser.url(request) : primary.loginUrl(request),
    async session(req, tenant) {
      if (chooser) offersIdps.set(tenant, await chooser.hasProviders(tenant));
      return (await sessions.find(req, tenant)) ?? primary.session(req, tenant);
    },
    async endSession(req, tenant, auth) {
      if (await sessions.end(tenant, auth.sessionId)) return { clearCookies: [FEDERATED_SESSION_COOKIE] };
      if (primary.endSession) return primary.endSession(req, tenant, auth);
      return { clearCookies: [] };
    },
  };
  if (primary.findUser) composed.findUser = primary.findUser.bind(primary);
  if (primary.accountStatus) {
    const status = primary.accountStatus.bind(primary);
    // A federated subject is not the primary provider's to judge: "unknown" keeps its mandates alive.
    composed.accountStatus = async (tenant, subject): Promise<AccountStatus> =>
      (await sessions.knows(tenant, subject)) ? "unknown" : status(tenant, subject);
  }
  return composed;
}
