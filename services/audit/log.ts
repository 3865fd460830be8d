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
import type { Database, Engine, Store, TimedEvent, Transaction } from "../shared/store/store.ts";
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
  const at = Number(row.created_at);
  const source = outboxSource(row.type, row.event_id, at);
  const raw = () =>
    JSON.stringify({ type: row.type, event_id: row.event_id, payload: row.payload, parties: row.parties });
  try {
    // Parties and envelope fields (action, resource, outcome, reason, mandateId) beside the payload.
    const envelope = row.parties ? (JSON.parse(row.parties) as Omit<EventJson, "type" | "details">) : {};
    const details = JSON.parse(row.payload) as EventJson["details"];
    return { event: { ...source, ...envelope, type: row.type, requestId: row.event_id, details }, source, raw };
  } catch (error) {
    return { problem: `the stored event is not JSON: ${(error as Error).message}`, source, raw };
  }
}

/** What an outbox event says of itself before its payload is read: its type, id and time. */
function outboxSource(type: string, eventId: string, at: number) {
  return { type, requestId: eventId, outcome: "OUTCOME_SUCCESS", eventTime: new Date(at).toISOString() };
}

/**
 * An event committed alone, appended straight to the log (TenantStore.commitEvent when this process
 * hosts the log): the entry the outbox drain would have made of its row, without the row.
 */
export function eventFromOutbox({ event, at }: TimedEvent): EventJson {
  const envelope = { ...event.parties, ...event.envelope } as Omit<EventJson, "type" | "details">;
  const details = event.payload as EventJson["details"];
  return {
    ...outboxSource(event.type, event.eventId, at),
    ...envelope,
    type: event.type,
    requestId: event.eventId,
    details,
  };
}

function fromCaller(event: EventJson): Candidate {
  return { event, raw: () => JSON.stringify(event), fromCaller: true };
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
      const commit = await this.#serial(tenant, () => this.#commit(tenant, [], limit));
      moved += commit.written;
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
      for (let batch = this.#nextBatch(tenant); batch.length > 0; batch = this.#nextBatch(tenant)) {
        await this.#commitBatch(tenant, batch);
      }
    })().finally(() => {
      this.#flushing.delete(tenant);
      if ((this.#queues.get(tenant)?.length ?? 0) > 0) this.#schedule(tenant);
    });
    this.#flushing.set(tenant, run);
  }

  /** Takes the queued appends that fit one transaction (always at least one, however large). */
  #nextBatch(tenant: string): Pending[] {
    const queue = this.#queues.get(tenant) ?? [];
    const batch: Pending[] = [];
    let count = 0;
    while (queue.length > 0 && (batch.length === 0 || count + (queue[0]?.events.length ?? 0) <= this.#maxBatch)) {
      const next = queue.shift() as Pending;
      batch.push(next);
      count += next.events.length;
    }
    return batch;
  }

  /** Commits a batch and answers each append with its own entries, or every one with the failure. */
  async #commitBatch(tenant: string, batch: Pending[]): Promise<void> {
    try {
      const events = batch.flatMap((pending) => pending.events);
      const { appended } = await this.#commit(tenant, events, 0);
      let offset = 0;
      for (const pending of batch) {
        pending.resolve(appended.slice(offset, offset + pending.events.length));
        offset += pending.events.length;
      }
    } catch (error) {
      for (const pending of batch) pending.reject(error);
    }
  }

  /** Runs `fn` after any flush in progress for the tenant (one writer per tenant in this process). */
  async #serial<T>(tenant: string, fn: () => Promise<T>): Promise<T> {
    await this.#flushing.get(tenant)?.catch(() => {});
    return fn();
  }

  /**
   * One transaction: lock the head, append the outbox's events (up to `outboxLimit`) and then
   * `events`, store entries and tree nodes, move the head. The frontier is kept in memory only once
   * the transaction has committed; on failure it is dropped, since it may be ahead of the database.
   */
  async #commit(tenant: string, events: EventJson[], outboxLimit: number): Promise<Commit> {
    try {
      const commit = await this.#store
        .forTenant(tenant)
        .transaction((tx) => this.#appendInTransaction(tx, tenant, events, outboxLimit));
      this.#ranges.set(tenant, commit.tree);
      if (commit.written > 0) this.#onCommit?.(tenant, commit.tree.size);
      return commit;
    } catch (error) {
      this.#ranges.delete(tenant);
      this.#logger.error({ err: error, tenant }, "audit append failed; nothing was written");
      throw error;
    }
  }

  async #appendInTransaction(
    tx: Transaction,
    tenant: string,
    events: EventJson[],
    outboxLimit: number,
  ): Promise<Commit> {
    const head = await this.#lockHead(tx, tenant);
    const tree = await this.#rangeAt(tx, tenant, head.size);
    const outbox = await readOutbox(tx, tenant, outboxLimit);
    const candidates = [...outbox.map(fromOutboxRow), ...events.map(fromCaller)];
    if (candidates.length === 0) return { tree, written: 0, appended: [] };
    const now = this.#clock.now();
    const { entries, appended } = await this.#encodeCandidates(new EntryEncoder(tx, tenant, tree, now), candidates);
    await writeEntries(tx, entries);
    await dropDrained(tx, tenant, outbox);
    await moveHead(tx, tenant, tree, now);
    return { tree, written: entries.length, appended };
  }

  /** The candidates as entries, in order, and the entries of those appended by callers. */
  async #encodeCandidates(
    encoder: EntryEncoder,
    candidates: readonly Candidate[],
  ): Promise<{ entries: EncodedEntry[]; appended: AppendedEntry[] }> {
    const entries: EncodedEntry[] = [];
    const appended: AppendedEntry[] = [];
    for (const candidate of candidates) {
      const [own, ...incident] = await this.#encodeCandidate(encoder, candidate);
      if (candidate.fromCaller) appended.push(own.appended);
      entries.push(own, ...incident);
    }
    return { entries, appended };
  }

  /**
   * The entries a candidate becomes: itself, or — since no single event may stop the log — when it
   * cannot be encoded, its degraded form followed by an entry recording the incident.
   */
  async #encodeCandidate(encoder: EntryEncoder, candidate: Candidate): Promise<[EncodedEntry, ...EncodedEntry[]]> {
    let problem = candidate.problem ?? (candidate.event ? unencodable(candidate.event) : "no event");
    if (!problem && candidate.event) {
      try {
        return [await encoder.next(candidate.event)];
      } catch (error) {
        problem = error instanceof Error ? error.message : String(error);
      }
    }
    const degraded = degradedEvent(candidate.event ?? candidate.source ?? {}, candidate.raw(), problem as string);
    const entry = await encoder.next(degraded);
    const incident = await encoder.next(degradationIncident(degraded, entry.appended.seq));
    degradedEvents.add(1, { tenant: encoder.tenant });
    this.#logger.warn(
      { tenant: encoder.tenant, seq: entry.appended.seq, type: degraded.type, reason: problem },
      "audit event logged in degraded form",
    );
    return [entry, incident];
  }

  /** Locks the tenant's head row for this transaction, creating it for a new log. */
  async #lockHead(tx: Transaction, tenant: string): Promise<{ size: number; root: string }> {
    // Once this process has committed to the tenant's log, its head row exists: one statement fewer.
    // (The lock is FOR UPDATE on PostgreSQL; SQLite's transactions take the write lock at BEGIN.)
    const known = this.#ranges.has(tenant);
    const head = (known ? await this.#readHead(tx, tenant) : undefined) ?? (await this.#createHead(tx, tenant));
    return { size: Number(head.size), root: head.root_hash };
  }

  async #createHead(tx: Transaction, tenant: string) {
    await tx
      .insertInto("audit_heads")
      .values({ tenant_id: tenant, size: 0, root_hash: "", updated_at: this.#clock.now() })
      .onConflict((c) => c.column("tenant_id").doNothing())
      .execute();
    const head = await this.#readHead(tx, tenant);
    if (!head) throw new Error(`the audit head of tenant "${tenant}" is missing after its creation`);
    return head;
  }

  #readHead(tx: Transaction, tenant: string) {
    let query = tx.selectFrom("audit_heads").select(["size", "root_hash"]).where("tenant_id", "=", tenant);
    if (this.#store.engine === "postgres") query = query.forUpdate();
    return query.executeTakeFirst();
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

/** What one commit wrote: the frontier after it, how many entries, and the callers' own entries in order. */
interface Commit {
  tree: CompactRange;
  written: number;
  appended: AppendedEntry[];
}

/** One entry ready to be written: its row, the stored tree nodes it completes, and its place in the log. */
interface EncodedEntry {
  row: Database["audit_log"];
  nodes: Database["audit_nodes"][];
  appended: AppendedEntry;
}

/**
 * Turns events into a commit's entries, in order, on the tree's frontier; each subject's salt is read
 * (or made) once per commit, within the writer's transaction.
 */
class EntryEncoder {
  readonly #salts = new Map<string, string>();
  readonly #tx: Transaction;
  readonly tenant: string;
  readonly #tree: CompactRange;
  readonly #now: number;

  constructor(tx: Transaction, tenant: string, tree: CompactRange, now: number) {
    this.#tx = tx;
    this.tenant = tenant;
    this.#tree = tree;
    this.#now = now;
  }

  /** The event as the next entry; throws, leaving the tree as it was, when it cannot be encoded. */
  async next(event: EventJson): Promise<EncodedEntry> {
    const redacted = await redactEvent(event, (value) => this.#saltFor(value));
    const seq = this.#tree.size;
    const body = serializeEntry({
      v: ENTRY_VERSION,
      tenant: this.tenant,
      seq,
      recordTime: new Date(this.#now).toISOString(),
      event: redacted.event,
    });
    const leaf = leafHash(Buffer.from(body, "utf8"));
    const nodes = this.#tree
      .append(leaf)
      .filter((node) => node.level >= STORED_MIN_LEVEL) // lower ones are recomputed from leaves when needed
      .map((node) => ({ tenant_id: this.tenant, level: node.level, idx: node.index, hash: hex(node.hash) }));
    const eventTime = event.eventTime ? Date.parse(event.eventTime) : this.#now;
    const row: Database["audit_log"] = {
      tenant_id: this.tenant,
      seq,
      leaf_hash: hex(leaf),
      body,
      type: event.type,
      subject: redacted.subject,
      actors: ` ${redacted.actors.join(" ")} `,
      client_id: event.client?.id ?? null,
      mandate_id: event.mandateId || null,
      request_id: event.requestId || null,
      event_time: Number.isFinite(eventTime) ? eventTime : this.#now,
      record_time: this.#now,
    };
    return { row, nodes, appended: { seq, leafHash: leaf } };
  }

  async #saltFor(value: string): Promise<string> {
    const known = this.#salts.get(value);
    if (known) return known;
    const row = await this.#tx
      .selectFrom("audit_subjects")
      .select("salt")
      .where("tenant_id", "=", this.tenant)
      .where("value", "=", value)
      .executeTakeFirst();
    const salt = row?.salt ?? newSalt();
    if (!row) await this.#tx.insertInto("audit_subjects").values({ tenant_id: this.tenant, value, salt }).execute();
    this.#salts.set(value, salt);
    return salt;
  }
}

type OutboxRow = Awaited<ReturnType<typeof readOutbox>>[number];

/** The tenant's oldest outbox events, up to `limit` (none when 0). */
function readOutbox(tx: Transaction, tenant: string, limit: number) {
  if (limit <= 0) return Promise.resolve([]);
  return tx.selectFrom("audit_outbox").selectAll().where("tenant_id", "=", tenant).orderBy("id").limit(limit).execute();
}

async function writeEntries(tx: Transaction, entries: readonly EncodedEntry[]): Promise<void> {
  const rows = entries.map((entry) => entry.row);
  const nodes = entries.flatMap((entry) => entry.nodes);
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
}

/** Removes the outbox rows this commit logged, in the same transaction (never logged twice nor lost). */
async function dropDrained(tx: Transaction, tenant: string, drained: readonly OutboxRow[]): Promise<void> {
  const last = drained.at(-1);
  if (last === undefined) return;
  await tx.deleteFrom("audit_outbox").where("tenant_id", "=", tenant).where("id", "<=", last.id).execute();
}

async function moveHead(tx: Transaction, tenant: string, tree: CompactRange, now: number): Promise<void> {
  await tx
    .updateTable("audit_heads")
    .set({ size: tree.size, root_hash: hex(tree.root()), updated_at: now })
    .where("tenant_id", "=", tenant)
    .execute();
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
