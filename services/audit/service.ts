// mandate.v1.Audit: appends, signed checkpoints, RFC 9162 proofs, queries and a resumable stream
// over each tenant's append-only Merkle log; in the background, the outbox drain and checkpointing.
import { fromJson, type JsonValue, toJson } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { SelectQueryBuilder } from "kysely";
import { Audit, type AuditEntry, AuditEventSchema, type QueryRequest } from "../../gen/mandate/v1/audit_pb.js";
import type { ServiceDeps } from "../shared/deps.ts";
import { invalidArgument, notFound } from "../shared/errors.ts";
import { defineService } from "../shared/rpc/service.ts";
import type { AuditLogTable, Database } from "../shared/store/schema.ts";
import { observableGauge } from "../shared/telemetry.ts";
import { Checkpointer } from "./checkpoints.ts";
import { type EventJson, humanRef } from "./entry.ts";
import { AuditLog, prefetchedSubtrees, unhex } from "./log.ts";
import { consistencyProof, inclusionProof, type SubtreeSource } from "./merkle.ts";
import { type OutboxLag, outboxLag } from "./status.ts";
import { AuditWriterLease } from "./writer-lease.ts";

const DEFAULT_PAGE = 100;
const STREAM_POLL_MS = 250;

/** Outbox events moved per transaction. */
const DRAIN_BATCH = 64;

export function auditService({ config, store, clock, logger, signing }: ServiceDeps) {
  const checkpoints = new Checkpointer({ store, signing, clock, logger, publicBaseUrl: config.publicBaseUrl });
  const lastSigned = new Map<string, number>();
  const signSoon = (tenant: string) => {
    checkpoints
      .sign(tenant)
      .then((c) => c && lastSigned.set(tenant, c.treeSize))
      .catch((error) => logger.warn({ err: error, tenant }, "audit checkpoint not signed; retrying later"));
  };
  const log = new AuditLog({
    store,
    clock,
    logger,
    maxBatch: config.audit.maxBatch,
    onCommit(tenant, size) {
      if (!writer.held) return; // checkpoints are the writer's
      if (size - (lastSigned.get(tenant) ?? 0) >= config.audit.checkpointEveryEntries) signSoon(tenant);
    },
  });
  const writer = new AuditWriterLease({ store, clock, logger, log });
  const timers: NodeJS.Timeout[] = [];

  /** Signs a checkpoint for every tenant whose log has entries no checkpoint covers. */
  async function signUnsigned(): Promise<void> {
    try {
      const heads = await store.db.selectFrom("audit_heads").select(["tenant_id", "size"]).execute();
      const signed = await Promise.allSettled(
        heads
          .filter((head) => Number(head.size) > (lastSigned.get(head.tenant_id) ?? 0))
          .map(async (head) => {
            const checkpoint = await checkpoints.sign(head.tenant_id);
            if (checkpoint) lastSigned.set(head.tenant_id, checkpoint.treeSize);
          }),
      );
      for (const result of signed) {
        if (result.status === "rejected")
          logger.warn({ err: result.reason }, "audit checkpoint not signed; retrying later");
      }
    } catch (error) {
      logger.error({ err: error }, "audit checkpoint round failed; retrying next round");
    }
  }

  /**
   * Drains the outbox and signs until nothing is left either side: signing a tenant's first
   * checkpoint makes its audit key, whose creation is itself an event to log (and sign).
   */
  async function coverEverything(): Promise<void> {
    for (let round = 0; round < 3; round++) {
      try {
        while ((await log.drainOutbox()) > 0);
      } catch (error) {
        logger.error({ err: error }, "audit outbox drain failed");
      }
      await signUnsigned();
      if ((await outboxLag(store, clock.now()).catch(() => [])).length === 0) return;
    }
  }

  // Lag, as metrics and readiness: events waiting in the outbox, and how old the oldest is.
  let lag: OutboxLag[] = [];
  async function measureLag(): Promise<OutboxLag[]> {
    try {
      lag = await outboxLag(store, clock.now());
    } catch (error) {
      logger.warn({ err: error }, "audit outbox lag not measured");
    }
    return lag;
  }
  observableGauge("mandate.audit.outbox.depth", { description: "Audit events waiting in the outbox" }, () =>
    lag.map((l) => ({ value: l.depth, attributes: { tenant: l.tenant } })),
  );
  observableGauge(
    "mandate.audit.outbox.age",
    { description: "Age of the oldest audit event waiting in the outbox", unit: "s" },
    () => lag.map((l) => ({ value: l.oldestAgeMs / 1000, attributes: { tenant: l.tenant } })),
  );

  async function headSize(tenant: string): Promise<number> {
    const head = await store
      .forTenant(tenant)
      .db.selectFrom("audit_heads")
      .select("size")
      .where("tenant_id", "=", tenant)
      .executeTakeFirst();
    return Number(head?.size ?? 0);
  }

  async function page(tenant: string, from: number, limit: number, filter?: (q: AuditQuery) => AuditQuery) {
    let query: AuditQuery = store
      .forTenant(tenant)
      .db.selectFrom("audit_log")
      .selectAll()
      .where("tenant_id", "=", tenant)
      .where("seq", ">=", from)
      .orderBy("seq")
      .limit(limit);
    if (filter) query = filter(query);
    return query.execute();
  }

  const module = defineService(
    Audit,
    {
      async append(request) {
        const events = request.events.map((event) => toJson(AuditEventSchema, event) as unknown as EventJson);
        const appended = await log.append(request.tenant, events);
        return { sequences: appended.map((entry) => BigInt(entry.seq)) };
      },

      async getCheckpoint(request) {
        const checkpoint = request.fresh
          ? await checkpoints.sign(request.tenant)
          : await checkpoints.latest(request.tenant);
        if (!checkpoint)
          throw notFound("checkpoint", request.tenant, `the audit log of "${request.tenant}" has no checkpoint yet`);
        return {
          checkpoint: {
            origin: checkpoints.origin(request.tenant),
            treeSize: BigInt(checkpoint.treeSize),
            rootHash: checkpoint.rootHash,
            signedNote: checkpoint.note,
            createTime: timestampFromMs(checkpoint.createdAt),
          },
        };
      },

      async getInclusionProof(request) {
        const size = Number(request.treeSize);
        const seq = Number(request.sequence);
        await requireSize(request.tenant, size, "tree_size");
        if (seq >= size) {
          throw invalidArgument([{ field: "sequence", description: `must be below tree_size (${size})` }]);
        }
        const prove = (source: SubtreeSource) => inclusionProof(seq, size, source);
        const hashes = await prove(
          await prefetchedSubtrees(store.engine, store.forTenant(request.tenant).db, request.tenant, prove),
        );
        return { sequence: request.sequence, treeSize: request.treeSize, hashes };
      },

      async getConsistencyProof(request) {
        const first = Number(request.firstTreeSize);
        const second = Number(request.secondTreeSize);
        if (first > second) {
          throw invalidArgument([{ field: "first_tree_size", description: "must not exceed second_tree_size" }]);
        }
        await requireSize(request.tenant, second, "second_tree_size");
        const prove = (source: SubtreeSource) => consistencyProof(first, second, source);
        return {
          firstTreeSize: request.firstTreeSize,
          secondTreeSize: request.secondTreeSize,
          hashes: await prove(
            await prefetchedSubtrees(store.engine, store.forTenant(request.tenant).db, request.tenant, prove),
          ),
        };
      },

      async query(request) {
        const tenant = request.tenant;
        const limit = request.page?.pageSize || DEFAULT_PAGE;
        const from = decodeCursor(request.page?.pageToken ?? "");
        const subjectRefs = request.subjectId ? await refsOf(tenant, request.subjectId) : [];
        const actorRefs = request.actorId ? await refsOf(tenant, request.actorId) : [];
        const rows = await page(tenant, from, limit + 1, (q) =>
          filterByFields(filterByParties(q, subjectRefs, actorRefs), request),
        );
        const entries = rows.slice(0, limit).map((row) => toEntry(row, request.includeCanonicalJson));
        const last = rows.length > limit ? rows[limit - 1] : undefined;
        return { entries, nextPageToken: last ? encodeCursor(Number(last.seq) + 1) : "" };
      },

      async *stream(request, context) {
        // Sequence numbers are JavaScript numbers and SQL bigints: past 2^53 - 1 names no entry, ever.
        if (request.fromSequence > BigInt(Number.MAX_SAFE_INTEGER)) {
          throw invalidArgument([
            { field: "from_sequence", description: `must be at most ${Number.MAX_SAFE_INTEGER}` },
          ]);
        }
        let next = Number(request.fromSequence);
        while (!context.signal.aborted) {
          const rows = await page(request.tenant, next, DEFAULT_PAGE);
          for (const row of rows) {
            yield { entry: toEntry(row) };
            next = Number(row.seq) + 1;
          }
          if (rows.length < DEFAULT_PAGE) await sleep(STREAM_POLL_MS, context.signal);
        }
      },
    },
    {
      async start() {
        // Keeps draining while batches come back full, so the outbox cannot outgrow the poll rate;
        // modest batches with a yield between them keep each transaction (and the stall it causes
        // other queries on SQLite's single connection) short.
        let draining = false;
        const drain = async () => {
          if (draining) return;
          draining = true;
          try {
            while ((await log.drainOutbox(DRAIN_BATCH)) >= DRAIN_BATCH) {
              await new Promise((resolve) => setImmediate(resolve));
            }
          } catch (error) {
            logger.error({ err: error }, "audit outbox drain failed");
          } finally {
            draining = false;
          }
        };
        await writer.hold();
        // Entries a previous process appended but did not sign are covered now, not in a while — by
        // every process, the writer or not: a writer killed a moment ago still holds its lease until
        // it lapses. (Draining and signing are safe from several processes at once: appends lock the
        // tenant's head, a checkpoint of a size is written once.)
        await coverEverything();
        timers.push(
          setInterval(async () => {
            if (await writer.renewIfDue()) await drain();
            await measureLag();
          }, config.audit.outboxPollInterval).unref(),
        );
        timers.push(
          setInterval(() => {
            if (writer.held) void signUnsigned();
          }, config.audit.checkpointInterval).unref(),
        );
      },
      async stop() {
        for (const timer of timers) clearInterval(timer);
        writer.giveUp(); // what arrives while stopping waits in the outbox
        await log.settle();
        // A graceful stop leaves every entry covered by a signed checkpoint, whoever holds the lease.
        await coverEverything();
        await writer.release();
      },
    },
  );
  return {
    ...module,
    /** Not ready while audit lags: an event older than audit.maxLag still waits in the outbox. */
    async readiness(): Promise<Record<string, string>> {
      const worst = (await measureLag()).reduce<OutboxLag | undefined>(
        (a, b) => (!a || b.oldestAgeMs > a.oldestAgeMs ? b : a),
        undefined,
      );
      if (!worst || worst.oldestAgeMs <= config.audit.maxLag) return { audit: "ok" };
      return {
        audit: `lagging: ${worst.depth} event(s) of tenant "${worst.tenant}" wait in the outbox, the oldest for ${Math.round(worst.oldestAgeMs / 1000)} s (audit.maxLag ${config.audit.maxLag / 1000} s)`,
      };
    },
  };

  async function requireSize(tenant: string, size: number, field: string): Promise<void> {
    const current = await headSize(tenant);
    if (size > current) {
      throw new ConnectError(`${field} ${size} is beyond the log's size (${current})`, Code.OutOfRange);
    }
  }

  /** An identifier as entries carry it: as is (agents, clients), and as a human's commitment when known. */
  async function refsOf(tenant: string, value: string): Promise<string[]> {
    const row = await store
      .forTenant(tenant)
      .db.selectFrom("audit_subjects")
      .select("salt")
      .where("tenant_id", "=", tenant)
      .where("value", "=", value)
      .executeTakeFirst();
    return row ? [value, humanRef(row.salt, value)] : [value];
  }

  /** An entry for readers; with `canonical`, also its stored body (the canonical JSON that was hashed). */
  function toEntry(row: AuditLogTable, canonical = false): AuditEntry {
    const body = JSON.parse(row.body) as { event: Record<string, JsonValue> };
    return {
      $typeName: "mandate.v1.AuditEntry",
      tenant: row.tenant_id,
      sequence: BigInt(row.seq),
      event: fromJson(AuditEventSchema, withRefsAsIds(body.event)),
      leafHash: unhex(row.leaf_hash),
      recordTime: timestampFromMs(Number(row.record_time)),
      canonicalJson: canonical ? row.body : "",
    };
  }
}

type AuditQuery = SelectQueryBuilder<Database, "audit_log", AuditLogTable>;

/** Entries naming the subject (by any of its refs) and any of the actors, when asked for. */
function filterByParties(query: AuditQuery, subjectRefs: string[], actorRefs: string[]): AuditQuery {
  let filtered = query;
  if (subjectRefs.length > 0) filtered = filtered.where("subject", "in", subjectRefs);
  if (actorRefs.length > 0) {
    filtered = filtered.where((eb) => eb.or(actorRefs.map((ref) => eb("actors", "like", `% ${escapeLike(ref)} %`))));
  }
  return filtered;
}

/** Entries matching every other field the query sets (unset fields match all). */
function filterByFields(query: AuditQuery, request: QueryRequest): AuditQuery {
  let filtered = query;
  if (request.clientId) filtered = filtered.where("client_id", "=", request.clientId);
  if (request.mandateId) filtered = filtered.where("mandate_id", "=", request.mandateId);
  if (request.requestId) filtered = filtered.where("request_id", "=", request.requestId);
  if (request.types.length > 0) filtered = filtered.where("type", "in", request.types);
  if (request.startTime) filtered = filtered.where("event_time", ">=", timestampMs(request.startTime));
  if (request.endTime) filtered = filtered.where("event_time", "<", timestampMs(request.endTime));
  return filtered;
}

/** Human parties are stored as { kind, ref }: shown to readers with the commitment as their id. */
function withRefsAsIds(event: Record<string, JsonValue>): JsonValue {
  const party = (p: JsonValue | undefined) =>
    p && typeof p === "object" && !Array.isArray(p) && "ref" in p ? { kind: p.kind ?? null, id: p.ref ?? null } : p;
  const out: Record<string, JsonValue> = { ...event };
  if (event.subject) out.subject = party(event.subject) as JsonValue;
  if (Array.isArray(event.actors)) out.actors = event.actors.map((a) => party(a) as JsonValue);
  if (event.client) out.client = party(event.client) as JsonValue;
  return out;
}

function timestampMs(t: { seconds: bigint; nanos: number }): number {
  return Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6);
}

function encodeCursor(seq: number): string {
  return Buffer.from(`seq:${seq}`).toString("base64url");
}

function decodeCursor(token: string): number {
  if (token === "") return 0;
  const match = /^seq:(\d{1,15})$/.exec(Buffer.from(token, "base64url").toString("utf8"));
  if (!match) throw invalidArgument([{ field: "page.page_token", description: "not a token this server issued" }]);
  return Number(match[1]);
}

function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, "\\$&");
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
