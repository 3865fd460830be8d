// The per-tenant append-only Merkle log. One writer at a time per tenant log, across replicas: every
// append runs in a transaction that first locks the tenant's head row (PostgreSQL `FOR UPDATE`;
// SQLite allows one writer), reads the size, and assigns the next sequence numbers — so two
// replicas can neither interleave nor fork a log, and sequence numbers are gapless. Appends that
// arrive together are committed together (group commit) and acknowledged only after the commit.
//
// The same transaction drains the transactional outbox: events other services wrote in their own
// transactions (token issued, key rotated...) become log entries and leave the outbox atomically, so
// an action is never logged twice nor lost.
import type { Kysely } from "kysely";
import type { Clock } from "../shared/clock.ts";
import type { Logger } from "../shared/logger.ts";
import type { Database, Engine, Store, Transaction } from "../shared/store/store.ts";
import { counter } from "../shared/telemetry.ts";
import {
  degradationIncident,
  degradedEvent,
  ENTRY_VERSION,
  type EventJson,
  newSalt,
  redactEvent,
  serializeEntry,
  unencodable,
} from "./entry.ts";
import { CompactRange, type Hash, leafHash, rootFromLeafHashes, type SubtreeSource } from "./merkle.ts";

export interface AppendedEntry {
  seq: number;
  leafHash: Hash;
}

interface Pending {
  events: EventJson[];
  resolve(entries: AppendedEntry[]): void;
  reject(error: unknown): void;
}

export interface AuditLogOptions {
  store: Store;
  clock: Clock;
  logger: Logger;
  /** Most entries committed in one transaction. */
  maxBatch?: number;
  /** Called after every commit with the tenant and its new size (checkpointing hooks here). */
  onCommit?: (tenant: string, size: number) => void;
}

const degradedEvents = counter("mandate.audit.degraded", {
  description: "Events logged in their degraded form because they could not be encoded",
});

/** An event on its way into the log, with what it was stored as (for the degraded form's hash). */
interface Candidate {
  event?: EventJson | undefined;
  /** Why it cannot be read at all (a stored payload that is not JSON). */
  problem?: string | undefined;
  /** What is known of it without reading it, for the degraded form. */
  source?: { type?: unknown; requestId?: unknown; eventTime?: unknown } | undefined;
  raw: () => string;
  /** Appended by a caller waiting for its sequence number (not drained from the outbox). */
  fromCaller?: boolean;
}

function fromOutboxRow(row: {
  type: string;
  event_id: string;
  payload: string;
  parties?: string | null | undefined;
  created_at: number;
}): Candidate {
  const source = {
    type: row.type,
    requestId: row.event_id,
    outcome: "OUTCOME_SUCCESS",
    eventTime: new Date(Number(row.created_at)).toISOString(),
  };
  const raw = () =>
    JSON.stringify({ type: row.type, event_id: row.event_id, payload: row.payload, parties: row.parties });
  try {
    const parties = row.parties ? (JSON.parse(row.parties) as Pick<EventJson, "subject" | "client" | "actors">) : {};
    const details = JSON.parse(row.payload) as EventJson["details"];
    return { event: { ...parties, ...source, details }, source, raw };
  } catch (error) {
    return { problem: `the stored event is not JSON: ${(error as Error).message}`, source, raw };
  }
}

/** Lowest tree level stored as nodes: each stored node covers at least 16 entries. */
const STORED_MIN_LEVEL = 4;
const INSERT_CHUNK = 200; // rows per INSERT: well inside SQLite's bound-parameter limit

export const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex");
export const unhex = (text: string): Hash => new Uint8Array(Buffer.from(text, "hex"));

export class AuditLog {
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #maxBatch: number;
  readonly #onCommit: ((tenant: string, size: number) => void) | undefined;
  readonly #queues = new Map<string, Pending[]>();
  readonly #flushing = new Map<string, Promise<void>>();
  /** The right frontier of each tenant's tree as last committed here; re-read when another writer moved the head. */
  readonly #ranges = new Map<string, CompactRange>();

  constructor(options: AuditLogOptions) {
    this.#store = options.store;
    this.#clock = options.clock;
    this.#logger = options.logger;
    this.#maxBatch = options.maxBatch ?? 1000;
    this.#onCommit = options.onCommit;
  }

  /** Appends events; resolves with their sequence numbers once they are durable. */
  append(tenant: string, events: EventJson[]): Promise<AppendedEntry[]> {
    return new Promise((resolve, reject) => {
      const queue = this.#queues.get(tenant) ?? [];
      queue.push({ events, resolve, reject });
      this.#queues.set(tenant, queue);
      this.#schedule(tenant);
    });
  }

  /** Moves outbox events of every tenant into the logs; returns how many were appended. */
  async drainOutbox(limit = 1000): Promise<number> {
    const tenants = await this.#store.db.selectFrom("audit_outbox").select("tenant_id").distinct().execute();
    let moved = 0;
    for (const { tenant_id: tenant } of tenants) {
      moved += await this.#serial(tenant, () => this.#commit(tenant, [], limit));
    }
    return moved;
  }

  /** Waits for every queued append to be committed. */
  async settle(): Promise<void> {
    while (this.#flushing.size > 0) await Promise.allSettled([...this.#flushing.values()]);
  }

  #schedule(tenant: string): void {
    if (this.#flushing.has(tenant)) return; // the running flush takes the queue when it finishes
    const run = (async () => {
      // Yield once so appends arriving in the same turn share the transaction.
      await new Promise((resolve) => setImmediate(resolve));
      for (;;) {
        const queue = this.#queues.get(tenant) ?? [];
        if (queue.length === 0) break;
        const batch: Pending[] = [];
        let count = 0;
        while (queue.length > 0 && (batch.length === 0 || count + (queue[0]?.events.length ?? 0) <= this.#maxBatch)) {
          const next = queue.shift() as Pending;
          batch.push(next);
          count += next.events.length;
        }
        try {
          const appended = await this.#commitBatch(tenant, batch);
          let offset = 0;
          for (const pending of batch) {
            pending.resolve(appended.slice(offset, offset + pending.events.length));
            offset += pending.events.length;
          }
        } catch (error) {
          for (const pending of batch) pending.reject(error);
        }
      }
    })().finally(() => {
      this.#flushing.delete(tenant);
      if ((this.#queues.get(tenant)?.length ?? 0) > 0) this.#schedule(tenant);
    });
    this.#flushing.set(tenant, run);
  }

  /** Runs `fn` after any flush in progress for the tenant (one writer per tenant in this process). */
  async #serial<T>(tenant: string, fn: () => Promise<T>): Promise<T> {
    await this.#flushing.get(tenant)?.catch(() => {});
    return fn();
  }

  async #commitBatch(tenant: string, batch: Pending[]): Promise<AppendedEntry[]> {
    const events = batch.flatMap((p) => p.events);
    const appended: AppendedEntry[] = [];
    await this.#commit(tenant, events, 0, appended);
    return appended;
  }

  /**
   * One transaction: lock the head, append the outbox's events (up to `outboxLimit`) and then
   * `events`, store entries and tree nodes, move the head. Returns the number of entries appended.
   */
  async #commit(
    tenant: string,
    events: EventJson[],
    outboxLimit: number,
    appended: AppendedEntry[] = [],
  ): Promise<number> {
    const scoped = this.#store.forTenant(tenant);
    let range: CompactRange | undefined;
    try {
      const count = await scoped.transaction(async (tx) => {
        const head = await this.#lockHead(tx, tenant);
        const tree = await this.#rangeAt(tx, tenant, head.size);
        range = tree;
        const outbox =
          outboxLimit > 0
            ? await tx
                .selectFrom("audit_outbox")
                .selectAll()
                .where("tenant_id", "=", tenant)
                .orderBy("id")
                .limit(outboxLimit)
                .execute()
            : [];
        const candidates: Candidate[] = [
          ...outbox.map(fromOutboxRow),
          ...events.map((event) => ({ event, raw: () => JSON.stringify(event), fromCaller: true })),
        ];
        if (candidates.length === 0) return 0;
        const now = this.#clock.now();
        const salts = new Map<string, string>();
        const saltFor = async (value: string) => {
          let salt = salts.get(value);
          if (salt) return salt;
          const row = await tx
            .selectFrom("audit_subjects")
            .select("salt")
            .where("tenant_id", "=", tenant)
            .where("value", "=", value)
            .executeTakeFirst();
          salt = row?.salt ?? newSalt();
          if (!row) await tx.insertInto("audit_subjects").values({ tenant_id: tenant, value, salt }).execute();
          salts.set(value, salt);
          return salt;
        };
        const rows: Database["audit_log"][] = [];
        const nodes: Database["audit_nodes"][] = [];
        const add = (event: EventJson, redacted: Awaited<ReturnType<typeof redactEvent>>, body: string) => {
          const seq = tree.size;
          const leaf = leafHash(Buffer.from(body, "utf8"));
          for (const node of tree.append(leaf)) {
            if (node.level < STORED_MIN_LEVEL) continue; // recomputed from leaves when needed
            nodes.push({ tenant_id: tenant, level: node.level, idx: node.index, hash: hex(node.hash) });
          }
          const eventTime = event.eventTime ? Date.parse(event.eventTime) : now;
          rows.push({
            tenant_id: tenant,
            seq,
            leaf_hash: hex(leaf),
            body,
            type: event.type,
            subject: redacted.subject,
            actors: ` ${redacted.actors.join(" ")} `,
            client_id: event.client?.id ?? null,
            mandate_id: event.mandateId || null,
            event_time: Number.isFinite(eventTime) ? eventTime : now,
            record_time: now,
          });
          return { seq, leafHash: leaf };
        };
        const encode = async (event: EventJson) => {
          const redacted = await redactEvent(event, saltFor);
          const body = serializeEntry({
            v: ENTRY_VERSION,
            tenant,
            seq: tree.size,
            recordTime: new Date(now).toISOString(),
            event: redacted.event,
          });
          return { redacted, body };
        };
        for (const candidate of candidates) {
          // No single event may stop the log: one that cannot be encoded is logged in its degraded
          // form, followed by an entry recording the incident.
          let problem = candidate.problem ?? (candidate.event ? unencodable(candidate.event) : "no event");
          let encoded: Awaited<ReturnType<typeof encode>> | undefined;
          if (!problem && candidate.event) {
            try {
              encoded = await encode(candidate.event);
            } catch (error) {
              problem = error instanceof Error ? error.message : String(error);
            }
          }
          if (encoded && candidate.event) {
            const entry = add(candidate.event, encoded.redacted, encoded.body);
            if (candidate.fromCaller) appended.push(entry);
            continue;
          }
          const degraded = degradedEvent(candidate.event ?? candidate.source ?? {}, candidate.raw(), problem as string);
          const fallback = await encode(degraded);
          const entry = add(degraded, fallback.redacted, fallback.body);
          if (candidate.fromCaller) appended.push(entry);
          const incident = degradationIncident(degraded, entry.seq);
          const recorded = await encode(incident);
          add(incident, recorded.redacted, recorded.body);
          degradedEvents.add(1, { tenant });
          this.#logger.warn(
            { tenant, seq: entry.seq, type: degraded.type, reason: problem },
            "audit event logged in degraded form",
          );
        }
        for (let i = 0; i < rows.length; i += INSERT_CHUNK) {
          await tx
            .insertInto("audit_log")
            .values(rows.slice(i, i + INSERT_CHUNK))
            .execute();
        }
        for (let i = 0; i < nodes.length; i += INSERT_CHUNK) {
          await tx
            .insertInto("audit_nodes")
            .values(nodes.slice(i, i + INSERT_CHUNK))
            .execute();
        }
        if (outbox.length > 0) {
          const last = outbox.at(-1)?.id as number;
          await tx.deleteFrom("audit_outbox").where("tenant_id", "=", tenant).where("id", "<=", last).execute();
        }
        await tx
          .updateTable("audit_heads")
          .set({ size: tree.size, root_hash: hex(tree.root()), updated_at: now })
          .where("tenant_id", "=", tenant)
          .execute();
        return rows.length;
      });
      if (range) this.#ranges.set(tenant, range);
      if (count > 0 && range) this.#onCommit?.(tenant, range.size);
      return count;
    } catch (error) {
      this.#ranges.delete(tenant); // the in-memory frontier may be ahead of the database
      this.#logger.error({ err: error, tenant }, "audit append failed; nothing was written");
      throw error;
    }
  }

  /** Locks the tenant's head row for this transaction, creating it for a new log. */
  async #lockHead(tx: Transaction, tenant: string): Promise<{ size: number; root: string }> {
    await tx
      .insertInto("audit_heads")
      .values({ tenant_id: tenant, size: 0, root_hash: "", updated_at: this.#clock.now() })
      .onConflict((c) => c.column("tenant_id").doNothing())
      .execute();
    let query = tx.selectFrom("audit_heads").select(["size", "root_hash"]).where("tenant_id", "=", tenant);
    if (this.#store.engine === "postgres") query = query.forUpdate();
    const head = await query.executeTakeFirstOrThrow();
    return { size: Number(head.size), root: head.root_hash };
  }

  /** The frontier at `size`: from memory when this process wrote last, else from the stored tree. */
  async #rangeAt(db: Kysely<Database>, tenant: string, size: number): Promise<CompactRange> {
    const cached = this.#ranges.get(tenant);
    if (cached && cached.size === size) return cached.clone();
    const source = storedSubtrees(db, tenant);
    const hashes: Hash[] = [];
    for (const { level, index } of CompactRange.frontierPositions(size))
      hashes.push(await source.subtree(level, index));
    return CompactRange.fromFrontier(size, hashes);
  }
}

/**
 * Aligned complete subtrees (a SubtreeSource) read from the store: levels from STORED_MIN_LEVEL up
 * are stored nodes; lower ones are recomputed from at most 2^(STORED_MIN_LEVEL-1) leaf hashes, which
 * is cheaper than writing ~2 node rows for every entry appended.
 */
export function storedSubtrees(db: Kysely<Database>, tenant: string): SubtreeSource {
  return {
    async subtree(level: number, index: number): Promise<Hash> {
      if (level < STORED_MIN_LEVEL) {
        const width = 2 ** level;
        const rows = await db
          .selectFrom("audit_log")
          .select("leaf_hash")
          .where("tenant_id", "=", tenant)
          .where("seq", ">=", index * width)
          .where("seq", "<", (index + 1) * width)
          .orderBy("seq")
          .execute();
        if (rows.length !== width)
          throw new RangeError(
            `leaves ${index * width}..${(index + 1) * width - 1} are not all in the audit log of ${tenant}`,
          );
        return rootFromLeafHashes(rows.map((row) => unhex(row.leaf_hash)));
      }
      const row = await db
        .selectFrom("audit_nodes")
        .select("hash")
        .where("tenant_id", "=", tenant)
        .where("level", "=", level)
        .where("idx", "=", index)
        .executeTakeFirst();
      if (!row) throw new RangeError(`no tree node ${level}/${index} in the audit log of ${tenant}`);
      return unhex(row.hash);
    },
  };
}

/**
 * A SubtreeSource holding every subtree `compute` will ask for, read in two queries instead of one
 * per subtree: the proof algorithms' control flow depends only on sizes, so a dry run with
 * stand-in hashes lists exactly the subtrees the real run needs.
 */
export async function prefetchedSubtrees(
  engine: Engine,
  db: Kysely<Database>,
  tenant: string,
  compute: (source: SubtreeSource) => Promise<unknown>,
): Promise<SubtreeSource> {
  const wanted: Array<{ level: number; index: number }> = [];
  const dryRunHash = new Uint8Array(32);
  await compute({
    subtree(level, index) {
      wanted.push({ level, index });
      return dryRunHash;
    },
  });
  const hashes = new Map<string, Hash>();
  const stored = wanted.filter((w) => w.level >= STORED_MIN_LEVEL);
  if (stored.length > 0) {
    const rows = await db
      .selectFrom("audit_nodes")
      .select(["level", "idx", "hash"])
      .where("tenant_id", "=", tenant)
      .where((eb) =>
        // Each engine's planner probes the primary key for a different shape: PostgreSQL for an OR
        // of pairs (a bitmap OR), SQLite for IN on both columns (a small superset; an OR scans).
        engine === "postgres"
          ? eb.or(stored.map((w) => eb.and([eb("level", "=", w.level), eb("idx", "=", w.index)])))
          : eb.and([
              eb("level", "in", [...new Set(stored.map((w) => w.level))]),
              eb("idx", "in", [...new Set(stored.map((w) => w.index))]),
            ]),
      )
      .execute();
    for (const row of rows) hashes.set(`${row.level}/${Number(row.idx)}`, unhex(row.hash));
  }
  const low = wanted.filter((w) => w.level < STORED_MIN_LEVEL);
  const seqs = low.flatMap((w) => Array.from({ length: 2 ** w.level }, (_, i) => w.index * 2 ** w.level + i));
  if (seqs.length > 0) {
    const rows = await db
      .selectFrom("audit_log")
      .select(["seq", "leaf_hash"])
      .where("tenant_id", "=", tenant)
      .where("seq", "in", seqs)
      .execute();
    const leaves = new Map(rows.map((row) => [Number(row.seq), unhex(row.leaf_hash)]));
    for (const w of low) {
      const width = 2 ** w.level;
      const range = Array.from({ length: width }, (_, i) => leaves.get(w.index * width + i));
      if (range.some((leaf) => leaf === undefined)) continue; // reported as missing below
      hashes.set(`${w.level}/${w.index}`, rootFromLeafHashes(range as Hash[]));
    }
  }
  return {
    subtree(level, index) {
      const hash = hashes.get(`${level}/${index}`);
      if (!hash) throw new RangeError(`no tree node ${level}/${index} in the audit log of ${tenant}`);
      return hash;
    },
  };
}
