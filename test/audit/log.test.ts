// The append-only log on both engines: gapless sequences from one writer at a time, even with two
// writers (replicas) on one database; batched appends acknowledged after commit; the outbox moved
// atomically; the store refusing to rewrite history.
import { randomUUID } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { humanRef } from "../../services/audit/entry.ts";
import { AuditLog, prefetchedSubtrees, storedSubtrees, unhex } from "../../services/audit/log.ts";
import {
  consistencyProof,
  inclusionProof,
  leafHash,
  rootFromLeafHashes,
  type SubtreeSource,
  verifyInclusion,
} from "../../services/audit/merkle.ts";
import { decisionMade } from "../../services/shared/audit-events.ts";
import { ManualClock } from "../../services/shared/clock.ts";
import { createLogger } from "../../services/shared/logger.ts";
import { Store } from "../../services/shared/store/store.ts";
import { engines } from "../helpers/engines.ts";

const logger = createLogger("silent");
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function event(n: number) {
  return {
    type: "token.issued.v1",
    subject: { id: `alice-${n % 3}@example.com`, kind: "PARTY_KIND_HUMAN" },
    actors: [{ id: "agent-7", kind: "PARTY_KIND_AGENT" }],
    client: { id: "client-1", kind: "PARTY_KIND_SERVICE" },
    action: "orders.read",
    outcome: "OUTCOME_SUCCESS",
    mandateId: `m-${n}`,
    eventTime: new Date(Date.UTC(2026, 0, 1, 0, 0, n)).toISOString(),
  };
}

describe.each(engines)("audit log on $name", (engine) => {
  async function open(): Promise<Store[]> {
    const db = await engine.open();
    const stores = [Store.open({ url: db.url, poolSize: 4 }), Store.open({ url: db.url, poolSize: 4 })];
    cleanups.push(async () => {
      for (const s of stores) await s.close();
      await db.dispose();
    });
    await stores[0]?.migrate();
    await stores[0]?.db.insertInto("tenants").values({ id: "acme", display_name: "Acme", created_at: 0 }).execute();
    return stores;
  }

  it("gives two concurrent writers one gapless sequence and one consistent tree", async () => {
    const [a, b] = (await open()) as [Store, Store];
    const clock = new ManualClock();
    const writers = [new AuditLog({ store: a, clock, logger }), new AuditLog({ store: b, clock, logger })];
    const results = await Promise.all(
      Array.from({ length: 120 }, (_, n) => (writers[n % 2] as AuditLog).append("acme", [event(n)])),
    );
    const seqs = results
      .flat()
      .map((entry) => entry.seq)
      .sort((x, y) => x - y);
    expect(seqs).toEqual(Array.from({ length: 120 }, (_, i) => i));
    const rows = await a.db.selectFrom("audit_log").select(["seq", "leaf_hash", "body"]).orderBy("seq").execute();
    expect(rows.map((r) => Number(r.seq))).toEqual(seqs);
    const leaves = rows.map((r) => leafHash(Buffer.from(r.body, "utf8")));
    expect(rows.map((r) => r.leaf_hash)).toEqual(leaves.map((l) => Buffer.from(l).toString("hex")));
    const head = await a.db.selectFrom("audit_heads").selectAll().executeTakeFirstOrThrow();
    expect(Number(head.size)).toBe(120);
    const root = rootFromLeafHashes(leaves);
    expect(head.root_hash).toBe(Buffer.from(root).toString("hex"));
    // Proofs come from the stored nodes and verify against the root.
    for (const seq of [0, 1, 63, 64, 119]) {
      const proof = await inclusionProof(seq, 120, storedSubtrees(a.db, "acme"));
      expect(verifyInclusion(seq, 120, leaves[seq] as Uint8Array, proof, root)).toBe(true);
      // The two-query path the service uses gives the very same proofs.
      const prove = (source: SubtreeSource) => inclusionProof(seq, 120, source);
      expect(await prove(await prefetchedSubtrees(a.engine, a.db, "acme", prove))).toEqual(proof);
    }
    for (const [m, n] of [
      [1, 120],
      [17, 100],
      [64, 120],
    ] as const) {
      const prove = (source: SubtreeSource) => consistencyProof(m, n, source);
      expect(await prove(await prefetchedSubtrees(a.engine, a.db, "acme", prove))).toEqual(
        await prove(storedSubtrees(a.db, "acme")),
      );
    }
  }, 60_000);

  it("keeps people out of entries, as erasable salted commitments", async () => {
    const [store] = (await open()) as [Store];
    const log = new AuditLog({ store, clock: new ManualClock(), logger });
    await log.append("acme", [event(0)]);
    const row = await store.db.selectFrom("audit_log").selectAll().executeTakeFirstOrThrow();
    expect(row.body).not.toContain("alice");
    const { salt } = await store.db.selectFrom("audit_subjects").select("salt").executeTakeFirstOrThrow();
    expect(row.subject).toBe(humanRef(salt, "alice-0@example.com"));
    expect(JSON.parse(row.body).event.subject).toEqual({ kind: "PARTY_KIND_HUMAN", ref: row.subject });
    // Erasure deletes the salt; the entry and its hash stay as they are.
    await store.db.deleteFrom("audit_subjects").where("tenant_id", "=", "acme").execute();
    const after = await store.db.selectFrom("audit_log").selectAll().executeTakeFirstOrThrow();
    expect(after.leaf_hash).toBe(row.leaf_hash);
  });

  it("moves outbox events into the log in the same transaction that removes them", async () => {
    const [store] = (await open()) as [Store];
    const scoped = store.forTenant("acme");
    await scoped.transaction((tx) =>
      scoped.recordEvent(tx, { eventId: randomUUID(), type: "key.created.v1", payload: { kid: "k1" } }, 5),
    );
    const log = new AuditLog({ store, clock: new ManualClock(), logger });
    expect(await log.drainOutbox()).toBe(1);
    expect(await store.db.selectFrom("audit_outbox").selectAll().execute()).toEqual([]);
    const row = await store.db.selectFrom("audit_log").selectAll().executeTakeFirstOrThrow();
    expect(JSON.parse(row.body).event).toMatchObject({ type: "key.created.v1", details: { kid: "k1" } });
    expect(await log.drainOutbox()).toBe(0);
  });

  it("logs a decision with its envelope (action, resource, outcome, reason) and finds it by its decision id", async () => {
    const [store] = (await open()) as [Store];
    const scoped = store.forTenant("acme");
    const decisionId = randomUUID();
    const decision = decisionMade({
      decisionId,
      parties: { subject: { id: "alice@example.com", kind: "PARTY_KIND_HUMAN" } },
      action: "orders.read",
      resource: { type: "order", id: "42" },
      allow: false,
      reasons: [{ code: "scope_missing", message: "the action is outside the token's scopes" }],
      obligations: [],
      policyRevision: "r1",
      inputSha256: "x",
      input: { action: "orders.read" },
    });
    await scoped.transaction((tx) => scoped.recordEvent(tx, decision, 5));
    const log = new AuditLog({ store, clock: new ManualClock(), logger });
    expect(await log.drainOutbox()).toBe(1);
    const row = await store.db
      .selectFrom("audit_log")
      .selectAll()
      .where("request_id", "=", decisionId)
      .executeTakeFirstOrThrow();
    const event = JSON.parse(row.body).event;
    expect(event).toMatchObject({
      type: "authz.decision.v1",
      action: "orders.read",
      resource: { type: "order", id: "42" },
      outcome: "OUTCOME_DENIED",
      reason: "the action is outside the token's scopes",
      requestId: decisionId,
      details: { decision_id: decisionId, allow: false, policy_revision: "r1" },
    });
    // The human is a salted reference in the entry, never the identifier itself.
    expect(row.body).not.toContain("alice@example.com");
  });

  it("refuses to update or delete log rows, tree nodes and checkpoints", async () => {
    const [store] = (await open()) as [Store];
    await new AuditLog({ store, clock: new ManualClock(), logger }).append(
      "acme",
      Array.from({ length: 16 }, (_, i) => event(i)),
    );
    await expect(store.db.updateTable("audit_log").set({ body: "{}" }).execute()).rejects.toThrow(/append-only/);
    await expect(store.db.deleteFrom("audit_log").execute()).rejects.toThrow(/append-only/);
    await expect(store.db.updateTable("audit_nodes").set({ hash: "00" }).execute()).rejects.toThrow(/append-only/);
    await expect(store.db.deleteFrom("audit_nodes").execute()).rejects.toThrow(/append-only/);
    await store.db
      .insertInto("audit_checkpoints")
      .values({ tenant_id: "acme", tree_size: 2, root_hash: "00", note: "n", kid: "k", created_at: 0 })
      .execute();
    await expect(store.db.deleteFrom("audit_checkpoints").execute()).rejects.toThrow(/append-only/);
    expect(await store.db.selectFrom("audit_log").select("seq").execute()).toHaveLength(16);
    expect(unhex("00ff")).toEqual(new Uint8Array([0, 255]));
  });

  it("never lets one event stop the log: an unencodable one is logged degraded, with the incident", async () => {
    const [store] = (await open()) as [Store];
    const clock = new ManualClock();
    const log = new AuditLog({ store, clock, logger });
    const scoped = store.forTenant("acme");
    const outbox = (type: string, payload: string, parties: string | null = null) =>
      scoped.transaction((tx) =>
        tx
          .insertInto("audit_outbox")
          .values({ tenant_id: "acme", event_id: randomUUID(), type, payload, parties, created_at: 1000 })
          .execute(),
      );
    // A lone surrogate (JSON allows \ud800; RFC 8785 does not), a payload that is not JSON, a
    // human party whose id is ill-formed, then ordinary events after them.
    await outbox("client.created.v1", JSON.stringify({ client_name: "\ud800" }));
    await outbox("client.created.v1", "{not json");
    await outbox("token.issued.v1", "{}", JSON.stringify({ subject: { id: "bob\udc00", kind: "PARTY_KIND_HUMAN" } }));
    await outbox("token.issued.v1", JSON.stringify({ jti: "after" }));
    expect(await log.drainOutbox()).toBe(7); // 3 degraded + 3 incidents + 1 ordinary
    const appended = await log.append("acme", [event(1), { ...event(2), reason: "\ud800" }]);
    const rows = await store.db.selectFrom("audit_log").select(["seq", "type", "body"]).orderBy("seq").execute();
    const bodies = rows.map(
      (r) => JSON.parse(r.body) as { event: { type: string; details?: Record<string, unknown> } },
    );
    expect(bodies.map((b) => b.event.type)).toEqual([
      "client.created.v1",
      "audit.entry_degraded.v1",
      "client.created.v1",
      "audit.entry_degraded.v1",
      "token.issued.v1",
      "audit.entry_degraded.v1",
      "token.issued.v1",
      "token.issued.v1",
      "token.issued.v1",
      "audit.entry_degraded.v1",
    ]);
    expect(bodies[0]?.event.details).toMatchObject({ degraded: true, original_sha256: expect.any(String) });
    expect(String(bodies[0]?.event.details?.reason)).toMatch(/not well-formed Unicode/);
    expect(bodies[1]?.event.details).toMatchObject({ degraded_seq: 0, original_type: "client.created.v1" });
    expect(String(bodies[2]?.event.details?.reason)).toMatch(/not JSON/);
    expect(String(bodies[4]?.event.details?.reason)).toMatch(/subject\.id is not well-formed/);
    expect(bodies[6]?.event.details).toEqual({ jti: "after" });
    // A caller's append learns the sequence of its (degraded) entry, not of the incident's.
    expect(appended.map((e) => e.seq)).toEqual([7, 8]);
    expect(await store.db.selectFrom("audit_outbox").select("id").execute()).toEqual([]);
    // The tree covers every entry, degraded ones included.
    const leaves = rows.map((r) => leafHash(Buffer.from(r.body, "utf8")));
    const head = await store.db.selectFrom("audit_heads").selectAll().executeTakeFirstOrThrow();
    expect(head.root_hash).toBe(Buffer.from(rootFromLeafHashes(leaves)).toString("hex"));
  });
});
