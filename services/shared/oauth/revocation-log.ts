// The revocation log (migration 0012_revocation_feed): per tenant, a gap-free sequence of what was
// revoked — a mandate (and so every token derived from it) or one access token's `jti` — each kept
// until it stops mattering (the mandate's expiry, the token's `exp`). Replicas keep the revoked set
// in memory from it (revocations.ts) and resource servers follow it as a feed (Introspect.
// WatchRevocations, GET /t/{tenant}/revocations). Obtained from the tenant handle:
// `scoped.use(RevocationLog, tx?)`; `append` runs in the revoking transaction.
//
// Sequences: allocated by incrementing the tenant's row in revocation_heads, which locks it until the
// transaction ends (PostgreSQL row lock; SQLite has one writer). So the transaction holding N commits
// (or rolls back, releasing N) before another can take N + 1: a reader following `sequence > last`
// never misses a row that commits later with a smaller sequence, and the sequence has no holes but
// what pruning removes (entries that expired: nothing a reader still needs).
import { PostgresAdapter } from "kysely";
import { notifyInTransaction } from "../store/change-notifications.ts";
import type { TenantDb } from "../store/tenancy.ts";

/** PostgreSQL NOTIFY channel and Redis pub/sub channel of new revocation log entries. */
export const REVOCATION_CHANNELS = { postgres: "mandate_revocations", redis: "mandate:revocations" } as const;

export type RevocationKind = "mandate" | "jti";

export interface RevocationEntry {
  sequence: number;
  kind: RevocationKind;
  /** The mandate id, or the access token's `jti`. */
  id: string;
  revokeTime: number;
  /** When the entry stops mattering: the mandate's expiry, the token's `exp` (ms). */
  expireTime: number;
}

export type NewRevocation = Pick<RevocationEntry, "kind" | "id" | "expireTime">;

/**
 * Told of each append in this process (before it commits): `through` is its last sequence. `store`
 * names the store appended to: the adapter of its Kysely instance, which every handle and transaction
 * derived from it shares (and no other store does), so two stores in one process never mix.
 */
export type LocalAppendListener = (store: object, tenant: string, through: number) => void;
const localListeners = new Set<LocalAppendListener>();

/**
 * Follows this process's own appends, so its RevocationIndex reads the log at its next check of the
 * tenant instead of waiting for a notification: a replica refuses what it revoked itself at once,
 * whichever code path revoked it. Returns the unsubscribe.
 */
export function onLocalAppend(listener: LocalAppendListener): () => void {
  localListeners.add(listener);
  return () => localListeners.delete(listener);
}

/** Entries of one read of the log at most. */
export const LOG_PAGE = 500;

export class RevocationLog {
  readonly #tenant: string;
  readonly #db: TenantDb;
  constructor(tenant: string, db: TenantDb) {
    this.#tenant = tenant;
    this.#db = db;
  }

  /**
   * Appends `entries` (call in the revoking transaction, as late in it as possible: the tenant's head
   * row stays locked until it ends) and announces them to every replica at commit (NOTIFY).
   */
  async append(entries: readonly NewRevocation[], at: number): Promise<RevocationEntry[]> {
    if (entries.length === 0) return [];
    const n = entries.length;
    const head = await this.#db
      .insertInto("revocation_heads")
      .values({ tenant_id: this.#tenant, last_sequence: n })
      .onConflict((oc) =>
        oc.column("tenant_id").doUpdateSet((eb) => ({ last_sequence: eb("revocation_heads.last_sequence", "+", n) })),
      )
      .returning("last_sequence")
      .executeTakeFirstOrThrow();
    const first = Number(head.last_sequence) - n + 1;
    const rows = entries.map((entry, i) => ({
      sequence: first + i,
      kind: entry.kind,
      id: entry.id,
      revokeTime: at,
      expireTime: entry.expireTime,
    }));
    await this.#db
      .insertInto("revocation_log")
      .values(
        rows.map((r) => ({
          tenant_id: this.#tenant,
          sequence: r.sequence,
          kind: r.kind,
          id: r.id,
          revoke_time: r.revokeTime,
          expire_time: r.expireTime,
        })),
      )
      .execute();
    const engine = this.#db.getExecutor().adapter instanceof PostgresAdapter ? "postgres" : "sqlite";
    await notifyInTransaction(this.#db, engine, REVOCATION_CHANNELS.postgres, this.#tenant);
    const through = first + n - 1;
    const store = this.#db.getExecutor().adapter;
    for (const listener of localListeners) listener(store, this.#tenant, through);
    return rows;
  }

  /** The tenant's last sequence (0 before its first revocation). */
  async head(): Promise<number> {
    const row = await this.#db
      .selectFrom("revocation_heads")
      .select("last_sequence")
      .where("tenant_id", "=", this.#tenant)
      .executeTakeFirst();
    return row ? Number(row.last_sequence) : 0;
  }

  /** Entries after `sequence` that still matter at `now`, in sequence order, at most `limit`. */
  async after(sequence: number, now: number, limit = LOG_PAGE): Promise<RevocationEntry[]> {
    const rows = await this.#db
      .selectFrom("revocation_log")
      .select(["sequence", "kind", "id", "revoke_time", "expire_time"])
      .where("tenant_id", "=", this.#tenant)
      .where("sequence", ">", sequence)
      .where("expire_time", ">", now)
      .orderBy("sequence")
      .limit(limit)
      .execute();
    return rows.map((r) => ({
      sequence: Number(r.sequence),
      kind: r.kind as RevocationKind,
      id: r.id,
      revokeTime: Number(r.revoke_time),
      expireTime: Number(r.expire_time),
    }));
  }

  /** Whether any of `ids` of `kind` is in the log (the read of a replica that cannot trust its memory). */
  async anyRevoked(kind: RevocationKind, ids: readonly string[]): Promise<boolean> {
    if (ids.length === 0) return false;
    const row = await this.#db
      .selectFrom("revocation_log")
      .select("sequence")
      .where("tenant_id", "=", this.#tenant)
      .where("kind", "=", kind)
      .where("id", "in", ids)
      .limit(1)
      .executeTakeFirst();
    return row !== undefined;
  }

  /** Deletes entries that expired before `before` (nothing needs them: their tokens are dead anyway). */
  async prune(before: number): Promise<number> {
    const result = await this.#db
      .deleteFrom("revocation_log")
      .where("tenant_id", "=", this.#tenant)
      .where("expire_time", "<", before)
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  }
}
