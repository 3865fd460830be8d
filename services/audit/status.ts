// How far each tenant's audit log is behind what happened: entries in the log, what the newest
// signed checkpoint covers, and the outbox events not yet moved into the log (how many, how old).
// Read straight from the store, so the CLI and the running service report the same figures.
import type { Store } from "../shared/store/store.ts";

export interface OutboxLag {
  tenant: string;
  depth: number;
  /** Age of the oldest waiting event, ms; 0 when none waits. */
  oldestAgeMs: number;
}

export interface TenantAuditStatus {
  tenant: string;
  entries: number;
  checkpoint: { treeSize: number; signedAt: string } | null;
  /** Entries the newest checkpoint does not cover yet. */
  unsigned: number;
  outbox: { depth: number; oldestAgeMs: number };
}

/** Outbox depth and oldest age per tenant that has waiting events. */
export async function outboxLag(store: Store, now: number): Promise<OutboxLag[]> {
  const rows = await store.db
    .selectFrom("audit_outbox")
    .select((eb) => ["tenant_id", eb.fn.countAll<number>().as("depth"), eb.fn.min("created_at").as("oldest")])
    .groupBy("tenant_id")
    .execute();
  return rows.map((row) => ({
    tenant: row.tenant_id,
    depth: Number(row.depth),
    oldestAgeMs: Math.max(0, now - Number(row.oldest)),
  }));
}

/** The status of every tenant's log (or of `only`). */
export async function auditStatus(store: Store, now: number, only?: string): Promise<TenantAuditStatus[]> {
  let tenantsQuery = store.db.selectFrom("tenants").select("id").orderBy("id");
  if (only !== undefined) tenantsQuery = tenantsQuery.where("id", "=", only);
  const tenants = (await tenantsQuery.execute()).map((row) => row.id);
  const lag = new Map((await outboxLag(store, now)).map((l) => [l.tenant, l]));
  const statuses: TenantAuditStatus[] = [];
  for (const tenant of tenants) {
    const db = store.forTenant(tenant).db;
    const head = await db.selectFrom("audit_heads").select("size").where("tenant_id", "=", tenant).executeTakeFirst();
    const checkpoint = await db
      .selectFrom("audit_checkpoints")
      .select(["tree_size", "created_at"])
      .where("tenant_id", "=", tenant)
      .orderBy("tree_size", "desc")
      .limit(1)
      .executeTakeFirst();
    const entries = Number(head?.size ?? 0);
    const signed = Number(checkpoint?.tree_size ?? 0);
    statuses.push({
      tenant,
      entries,
      checkpoint: checkpoint
        ? { treeSize: signed, signedAt: new Date(Number(checkpoint.created_at)).toISOString() }
        : null,
      unsigned: entries - signed,
      outbox: { depth: lag.get(tenant)?.depth ?? 0, oldestAgeMs: lag.get(tenant)?.oldestAgeMs ?? 0 },
    });
  }
  return statuses;
}
