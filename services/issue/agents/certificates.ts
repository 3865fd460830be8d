// The agent certificates a tenant's CA issued (agent_certificates) and its enrollment tokens
// (agent_enrollment_tokens): what is recorded at issuance, the deny list consulted at every use, the
// revocations an administrator (or the deletion of the agent) makes, and the CRL's entries.
import type { Actor } from "../../shared/audit-events.ts";
import { agentCertificatesRevoked } from "../../shared/audit-events.ts";
import type { RevokedAgentCertificate } from "../../shared/signing.ts";
import type { AgentCertificatesTable } from "../../shared/store/schema.ts";
import type { Store, TenantStore } from "../../shared/store/store.ts";
import type { TenantTransaction } from "../../shared/store/tenancy.ts";

/** RFC 5280 §5.3.1 reason names an administrator may give (the CA-side ones are not theirs to give). */
export const REVOCATION_REASONS = [
  "unspecified",
  "keyCompromise",
  "affiliationChanged",
  "superseded",
  "cessationOfOperation",
  "privilegeWithdrawn",
] as const;
export type RevocationReason = (typeof REVOCATION_REASONS)[number];

export type AgentCertificateRow = AgentCertificatesTable;

/** Why a serial is refused by the deny list, or undefined when it may be used. */
export type DenyListAnswer = "unknown" | "wrong_agent" | "revoked" | "agent_gone" | undefined;

export class AgentCertificates {
  readonly #store: Store;
  constructor(store: Store) {
    this.#store = store;
  }

  /**
   * The deny list: a serial is usable only when this tenant's CA issued it to `clientId` (a row),
   * it is not revoked, and the agent still exists. Unknown serials are refused (fail closed). Read
   * from the store at every call: a revocation takes effect at once.
   */
  async denied(tenant: string, serial: string, clientId: string): Promise<DenyListAnswer> {
    const db = this.#store.forTenant(tenant).db;
    const row = await db
      .selectFrom("agent_certificates")
      .select(["client_id", "revoked_at"])
      .where("tenant_id", "=", tenant)
      .where("serial", "=", serial)
      .executeTakeFirst();
    if (!row) return "unknown";
    if (row.client_id !== clientId) return "wrong_agent";
    if (row.revoked_at !== null) return "revoked";
    return (await clientKind(db, tenant, clientId)) === "agent" ? undefined : "agent_gone";
  }

  /** An agent's certificates, newest first. */
  list(tenant: string, clientId: string): Promise<AgentCertificateRow[]> {
    return this.#store
      .forTenant(tenant)
      .db.selectFrom("agent_certificates")
      .selectAll()
      .where("tenant_id", "=", tenant)
      .where("client_id", "=", clientId)
      .orderBy("issued_at", "desc")
      .orderBy("serial")
      .execute();
  }

  /** The revoked certificates still within their validity: the CRL's entries (RFC 5280 §5.3). */
  async revokedUnexpired(tenant: string, now: number): Promise<RevokedAgentCertificate[]> {
    const rows = await this.#store
      .forTenant(tenant)
      .db.selectFrom("agent_certificates")
      .select(["serial", "revoked_at", "revocation_reason"])
      .where("tenant_id", "=", tenant)
      .where("revoked_at", "is not", null)
      .where("not_after", ">", now)
      .orderBy("serial")
      .execute();
    return rows.map((r) => ({
      serial: r.serial,
      revokedAt: Number(r.revoked_at),
      ...(r.revocation_reason && r.revocation_reason !== "unspecified" ? { reason: r.revocation_reason } : {}),
    }));
  }

  /**
   * Revokes an agent's certificates (all, or `serial`) and invalidates its unused enrollment tokens,
   * with the audit record, in one transaction. Returns the serials this call revoked.
   */
  async revoke(
    tenant: string,
    clientId: string,
    options: { serial?: string | undefined; reason: RevocationReason; now: number },
    actor: Partial<Actor>,
  ): Promise<string[]> {
    const scoped = this.#store.forTenant(tenant);
    return scoped.transaction((tx) =>
      revokeAgentCertificates(scoped, tx, clientId, { ...options, cause: "revoked" }, actor),
    );
  }
}

/** The kind of the tenant's client `clientId` ("agent", "application"), undefined when there is none. */
export async function clientKind(
  db: TenantStore["db"] | TenantTransaction,
  tenant: string,
  clientId: string,
): Promise<string | undefined> {
  const row = await db
    .selectFrom("oauth_clients")
    .select("kind")
    .where("tenant_id", "=", tenant)
    .where("client_id", "=", clientId)
    .executeTakeFirst();
  return row?.kind;
}

/**
 * In the caller's transaction: revokes the agent's unrevoked certificates (all, or `serial`),
 * invalidates its unused enrollment tokens, and records the event when anything was revoked. Used
 * by RevokeAgentCertificates and by the deletion of a client (clients/registry.ts).
 */
export async function revokeAgentCertificates(
  scoped: TenantStore,
  tx: TenantTransaction,
  clientId: string,
  options: { serial?: string | undefined; reason: RevocationReason; now: number; cause: "revoked" | "client_deleted" },
  actor: Partial<Actor>,
): Promise<string[]> {
  const tenant = scoped.tenantId;
  let select = tx
    .selectFrom("agent_certificates")
    .select("serial")
    .where("tenant_id", "=", tenant)
    .where("client_id", "=", clientId)
    .where("revoked_at", "is", null);
  if (options.serial) select = select.where("serial", "=", options.serial.toUpperCase());
  const revoked = (await select.orderBy("serial").execute()).map((r) => r.serial);
  if (revoked.length > 0) {
    await tx
      .updateTable("agent_certificates")
      .set({ revoked_at: options.now, revocation_reason: options.reason })
      .where("tenant_id", "=", tenant)
      .where("serial", "in", revoked)
      .where("revoked_at", "is", null)
      .execute();
  }
  // An enrollment token still unused would buy a fresh certificate: it expires now.
  await tx
    .updateTable("agent_enrollment_tokens")
    .set({ expires_at: options.now })
    .where("tenant_id", "=", tenant)
    .where("client_id", "=", clientId)
    .where("used_at", "is", null)
    .where("expires_at", ">", options.now)
    .execute();
  if (revoked.length > 0) {
    const event = agentCertificatesRevoked(
      { clientId, serials: revoked, reason: options.reason, cause: options.cause },
      actor,
    );
    await scoped.recordEvent(tx, event, options.now);
  }
  return revoked;
}
