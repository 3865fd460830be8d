// Logins in flight to an upstream IdP (federation_logins): stored under the SHA-256 of the handle
// the browser carries (OIDC `state`, SAML RelayState), expiring after federation.loginTtl and
// usable once — a replayed or forged callback finds nothing (RFC 6749 §10.12, OIDC Core §3.1.2.1).
import { randomBytes } from "node:crypto";
import { handleHash } from "../../../shared/oauth/handles.ts";
import type { Store } from "../../../shared/store/store.ts";
import type { PendingLogin, ProtocolChecks } from "./upstream.ts";

export class FederationLogins {
  readonly #store: Store;
  readonly #now: () => number;
  readonly #ttlMs: number;

  constructor(options: { store: Store; now: () => number; ttlMs: number }) {
    this.#store = options.store;
    this.#now = options.now;
    this.#ttlMs = options.ttlMs;
  }

  /** A fresh unguessable handle (256 bits) for the next login. */
  static newHandle(): string {
    return randomBytes(32).toString("base64url");
  }

  async save(
    handle: string,
    login: { tenant: string; providerId: string; interaction: string; checks: ProtocolChecks },
  ): Promise<void> {
    const now = this.#now();
    const pending = { interaction: login.interaction, checks: login.checks };
    await this.#store
      .forTenant(login.tenant)
      .db.insertInto("federation_logins")
      .values({
        tenant_id: login.tenant,
        id: handleHash(handle),
        provider_id: login.providerId,
        pending: JSON.stringify(pending),
        created_at: now,
        expires_at: now + this.#ttlMs,
        used_at: null,
      })
      .execute();
  }

  /**
   * Takes the login `handle` names for `providerId`, marking it used in the same statement: a
   * second return with the same handle, an expired one, or one for another IdP gets nothing.
   */
  async take(tenant: string, providerId: string, handle: string): Promise<PendingLogin | undefined> {
    if (!handle) return undefined;
    const now = this.#now();
    const row = await this.#store
      .forTenant(tenant)
      .db.updateTable("federation_logins")
      .set({ used_at: now })
      .where("tenant_id", "=", tenant)
      .where("id", "=", handleHash(handle))
      .where("provider_id", "=", providerId)
      .where("used_at", "is", null)
      .where("expires_at", ">", now)
      .returning(["pending", "created_at"])
      .executeTakeFirst();
    if (!row) return undefined;
    const pending = JSON.parse(row.pending) as { interaction: string; checks: ProtocolChecks };
    return {
      tenant,
      providerId,
      interaction: pending.interaction,
      checks: pending.checks,
      createdAt: Number(row.created_at),
    };
  }
}
