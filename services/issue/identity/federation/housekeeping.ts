// Housekeeping of federation's short-lived rows: logins in flight to an upstream IdP
// (federation_logins, logins.ts) and federated Mandate sessions (federated_sessions, sessions.ts).
// Neither is of any use once past expires_at (take() and find() ignore it), so every replica
// hosting Issue deletes them every PRUNE_EVERY_MS (periodic-prune.ts). Unlike tenant-scoped stores
// this sweeps every tenant in one statement per batch: the rows are found by expiry alone, and a
// batch bounds how long one delete holds its locks.
import { sql } from "kysely";
import type { Clock } from "../../../shared/clock.ts";
import type { Logger } from "../../../shared/logger.ts";
import type { Store } from "../../../shared/store/store.ts";
import { startPeriodicPrune } from "../../housekeeping/periodic-prune.ts";

/** How often each replica sweeps. */
export const PRUNE_EVERY_MS = 10 * 60_000;
/** Rows deleted per statement. */
export const PRUNE_BATCH = 500;

/** The swept tables and their keys (the primary key is (tenant_id, key)). */
const EXPIRING = [
  { table: "federation_logins", key: "id" },
  { table: "federated_sessions", key: "id_hash" },
] as const;

export type ExpiringTable = (typeof EXPIRING)[number]["table"];

/** Deletes every tenant's federation logins and sessions expired at `now`, `batch` rows a statement; how many of each. */
export async function pruneExpiredFederation(
  store: Store,
  now: number,
  batch = PRUNE_BATCH,
): Promise<Record<ExpiringTable, number>> {
  const pruned = { federation_logins: 0, federated_sessions: 0 };
  for (const { table, key } of EXPIRING) {
    for (;;) {
      // Row values (SQLite ≥ 3.15, PostgreSQL) select a batch by primary key: DELETE … LIMIT is not portable.
      const result = await sql`
        delete from ${sql.table(table)} where (tenant_id, ${sql.ref(key)}) in (
          select tenant_id, ${sql.ref(key)} from ${sql.table(table)} where expires_at <= ${now} limit ${batch}
        )`.execute(store.db);
      const deleted = Number(result.numAffectedRows ?? 0n);
      pruned[table] += deleted;
      if (deleted < batch) break;
    }
  }
  return pruned;
}

/** Sweeps now and every PRUNE_EVERY_MS until stopped (which waits for a sweep under way); a failed sweep is logged. */
export function startFederationHousekeeping(deps: { store: Store; clock: Clock; logger: Logger }): {
  stop(): Promise<void>;
} {
  return startPeriodicPrune(deps, {
    what: "federation logins and sessions",
    everyMs: PRUNE_EVERY_MS,
    prune: async (now) => {
      const pruned = await pruneExpiredFederation(deps.store, now);
      return pruned.federation_logins + pruned.federated_sessions;
    },
  });
}
