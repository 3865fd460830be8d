// Dev users: accounts from configuration with scrypt-hashed passwords and a plain login page,
// for `mandate dev` and tests. Sessions live in the store (hash of the cookie value), so they
// survive a restart and any replica can read them.
import { randomBytes } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { Clock } from "../../shared/clock.ts";
import { handleHash } from "../../shared/oauth/handles.ts";
import type { Store } from "../../shared/store/store.ts";
import { verifySecret } from "../clients/secrets.ts";
import { cookies } from "../oauth/http.ts";
import type {
  AccountStatus,
  Authentication,
  IdentityProvider,
  LoginRequest,
  PasswordLogin,
  SessionCookie,
} from "./provider.ts";

export interface DevUser {
  id: string;
  username: string;
  passwordHash: string;
  name?: string | undefined;
  email?: string | undefined;
}

const SESSION_COOKIE = "mandate_session";

export class DevUsers implements IdentityProvider, PasswordLogin {
  readonly kind = "dev" as const;
  readonly acrValues = ["aal1"] as const;
  readonly #users: Map<string, DevUser>;
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #sessionTtlMs: number;
  readonly #loginUrl: (tenant: string) => string;

  constructor(options: {
    users: DevUser[];
    store: Store;
    clock: Clock;
    sessionTtlMs: number;
    loginUrl: (tenant: string) => string;
  }) {
    this.#users = new Map(options.users.map((u) => [u.username, u]));
    this.#store = options.store;
    this.#clock = options.clock;
    this.#sessionTtlMs = options.sessionTtlMs;
    this.#loginUrl = options.loginUrl;
  }

  get passwordLogin(): PasswordLogin {
    return this;
  }

  loginUrl(request: LoginRequest): string {
    const url = new URL(this.#loginUrl(request.tenant));
    url.searchParams.set("interaction", request.interaction);
    if (request.loginHint) url.searchParams.set("login_hint", request.loginHint);
    return url.toString();
  }

  /** Checks a username and password; a constant amount of work whether or not the user exists. */
  async verify(username: string, password: string): Promise<string | undefined> {
    const user = this.#users.get(username);
    const ok = await verifySecret(password, user?.passwordHash ?? DUMMY_HASH);
    return ok && user ? user.id : undefined;
  }

  async openSession(tenant: string, userId: string): Promise<SessionCookie> {
    const value = randomBytes(32).toString("base64url");
    const now = this.#clock.now();
    await this.#store
      .forTenant(tenant)
      .db.insertInto("oauth_sessions")
      .values({
        tenant_id: tenant,
        id_hash: handleHash(value),
        subject: userId,
        auth_time: now,
        acr: "aal1",
        amr: JSON.stringify(["pwd"]),
        expires_at: now + this.#sessionTtlMs,
      })
      .execute();
    return { name: SESSION_COOKIE, value, maxAgeSeconds: Math.floor(this.#sessionTtlMs / 1000) };
  }

  /** Dev users live in the configuration: a subject no longer configured is deleted. */
  async accountStatus(_tenant: string, subject: string): Promise<AccountStatus> {
    return [...this.#users.values()].some((u) => u.id === subject) ? "active" : "deleted";
  }

  /** A configured user by username, sub, or email (case-insensitive). */
  async findUser(_tenant: string, hint: string): Promise<string | undefined> {
    const email = hint.toLowerCase();
    const user =
      this.#users.get(hint) ??
      [...this.#users.values()].find(
        (u) => u.id === hint || (u.email !== undefined && u.email.toLowerCase() === email),
      );
    return user?.id;
  }

  /** Deletes the session's row (by its id, the cookie value's hash): the cookie opens nothing any more. */
  async endSession(_req: IncomingMessage, tenant: string, auth: Authentication): Promise<{ clearCookies: string[] }> {
    if (auth.sessionId) {
      await this.#store
        .forTenant(tenant)
        .db.deleteFrom("oauth_sessions")
        .where("tenant_id", "=", tenant)
        .where("id_hash", "=", auth.sessionId)
        .execute();
    }
    return { clearCookies: [SESSION_COOKIE] };
  }

  async session(req: IncomingMessage, tenant: string): Promise<Authentication | undefined> {
    const value = cookies(req).get(SESSION_COOKIE);
    if (!value) return undefined;
    const row = await this.#store
      .forTenant(tenant)
      .db.selectFrom("oauth_sessions")
      .selectAll()
      .where("tenant_id", "=", tenant)
      .where("id_hash", "=", handleHash(value))
      .executeTakeFirst();
    if (!row || row.expires_at <= this.#clock.now()) return undefined;
    const user = [...this.#users.values()].find((u) => u.id === row.subject);
    if (!user) return undefined;
    return {
      subject: row.subject,
      authTime: row.auth_time,
      acr: row.acr,
      amr: JSON.parse(row.amr) as string[],
      sessionId: row.id_hash,
      claims: {
        preferred_username: user.username,
        ...(user.name ? { name: user.name } : {}),
        ...(user.email ? { email: user.email, email_verified: true } : {}),
      },
    };
  }
}

// A valid scrypt hash of a random password: unknown usernames cost the same as wrong passwords.
const DUMMY_HASH = "scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
