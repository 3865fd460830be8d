// The `agent_ca_certificates` rows: one certificate per agent CA key, made once and never changed.
// Replicas racing to make the same key's certificate agree on the first one written (insert or
// nothing, then read back).
import type { AgentCaCertificatesTable } from "../../shared/store/schema.ts";
import type { TenantDb } from "../../shared/store/store.ts";

export type CaRole = AgentCaCertificatesTable["role"];

export class AgentCaCertificateRecords {
  readonly #tenant: string;
  readonly #db: TenantDb;

  constructor(tenantId: string, db: TenantDb) {
    this.#tenant = tenantId;
    this.#db = db;
  }

  /** Every CA certificate of the tenant, by CA key id. */
  async all(): Promise<Map<string, AgentCaCertificatesTable>> {
    const rows = await this.#db
      .selectFrom("agent_ca_certificates")
      .selectAll()
      .where("tenant_id", "=", this.#tenant)
      .execute();
    return new Map(rows.map((row) => [row.key_id, row]));
  }

  /** Writes the certificate unless the key has one already; returns whether this one was written. */
  async insertOnce(row: AgentCaCertificatesTable): Promise<boolean> {
    const result = await this.#db
      .insertInto("agent_ca_certificates")
      .values(row)
      .onConflict((c) => c.columns(["tenant_id", "key_id"]).doNothing())
      .executeTakeFirst();
    return Number(result.numInsertedOrUpdatedRows ?? 0) > 0;
  }
}
