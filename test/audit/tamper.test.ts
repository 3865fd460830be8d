// An administrator with full control of the database tampers with a tenant's log in every way they
// could (after dropping the append-only triggers, which they can); the offline verifier, holding
// only the tenant's audit public key pinned beforehand, catches each one and names where.
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "kysely";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Checkpointer, logOrigin } from "../../services/audit/checkpoints.ts";
import { auditKeys, entryLines, exportLog, toPublicKeys } from "../../services/audit/export.ts";
import { AuditLog } from "../../services/audit/log.ts";
import { type AuditPublicKey, verifyLog } from "../../services/audit/verify.ts";
import { ManualClock } from "../../services/shared/clock.ts";
import { createLogger } from "../../services/shared/logger.ts";
import { Store } from "../../services/shared/store/store.ts";
import { SoftwareBackend } from "../../services/signer/backends/software.ts";
import { KeyManager } from "../../services/signer/keys.ts";

const logger = createLogger("silent");
const BASE = "https://mandate.example.com";
const HOUR = 3_600_000;

let store: Store;
let keys: KeyManager;
let pinned: AuditPublicKey[];
let checkpointNotes: string[];

async function appendAndCheckpoint(log: AuditLog, checkpoints: Checkpointer, from: number, count: number) {
  for (let i = from; i < from + count; i++) {
    await log.append("acme", [
      {
        type: "authorization.decided.v1",
        subject: { id: `user-${i % 5}`, kind: "PARTY_KIND_HUMAN" },
        actors: [{ id: "agent-1", kind: "PARTY_KIND_AGENT" }],
        action: "orders.read",
        outcome: i % 7 === 0 ? "OUTCOME_DENIED" : "OUTCOME_SUCCESS",
        resource: { type: "order", id: String(i) },
      },
    ]);
  }
  const signed = await checkpoints.sign("acme");
  if (signed) checkpointNotes.push(signed.note);
}

beforeEach(async () => {
  store = Store.open({ url: `sqlite:${join(mkdtempSync(join(tmpdir(), "mandate-tamper-")), "m.db")}` });
  await store.migrate();
  await store.db.insertInto("tenants").values({ id: "acme", display_name: "Acme", created_at: 0 }).execute();
  const clock = new ManualClock();
  const timing = { intervalMs: 24 * HOUR, prepublishMs: 6 * HOUR, overlapMs: HOUR, checkMs: 60_000 };
  keys = new KeyManager({
    store,
    backend: new SoftwareBackend(store, randomBytes(32)),
    clock,
    logger,
    timing,
    defaultAlgorithm: "ES256",
  });
  await keys.start({ schedule: false });
  const log = new AuditLog({ store, clock, logger });
  const checkpoints = new Checkpointer({ store, signing: keys, clock, logger, publicBaseUrl: BASE });
  checkpointNotes = [];
  await appendAndCheckpoint(log, checkpoints, 0, 10); // checkpoint at 10
  await appendAndCheckpoint(log, checkpoints, 10, 10); // 20
  await appendAndCheckpoint(log, checkpoints, 20, 10); // 30
  // The verifier pins the public key before anything happens to the database.
  pinned = toPublicKeys(await auditKeys(store, "acme", logOrigin(BASE, "acme")));
  // The administrator now lifts the store's own protection.
  for (const table of ["audit_log", "audit_nodes", "audit_checkpoints"]) {
    for (const op of ["update", "delete"]) await sql.raw(`DROP TRIGGER ${table}_no_${op}`).execute(store.db);
  }
});

afterEach(async () => {
  await keys.stop();
  await store.close();
});

/** What `mandate audit verify --tenant acme` does against the live store, with the pinned key. */
async function verifyStore(extra: { previousCheckpoint?: string; entry?: number } = {}) {
  const rows = await store.db
    .selectFrom("audit_checkpoints")
    .select(["tree_size", "note"])
    .orderBy("tree_size")
    .execute();
  const newest = rows.at(-1) as { tree_size: number; note: string };
  return verifyLog({
    entries: entryLines(store, "acme", Number(newest.tree_size) + 5), // read past the checkpoint too
    checkpoint: newest.note,
    checkpoints: rows.map((r) => r.note),
    keys: pinned,
    ...extra,
  });
}

async function body(seq: number): Promise<Record<string, unknown>> {
  const row = await store.db.selectFrom("audit_log").select("body").where("seq", "=", seq).executeTakeFirstOrThrow();
  return JSON.parse(row.body);
}

describe("tamper-evident audit log", () => {
  it("exports what is signed, names the log as it was signed, and counts the entries left out", async () => {
    await new AuditLog({ store, clock: new ManualClock(), logger }).append(
      "acme",
      Array.from({ length: 5 }, () => ({ type: "token.issued.v1" })),
    );
    const dir = mkdtempSync(join(tmpdir(), "mandate-export-"));
    const summary = await exportLog(store, "acme", dir);
    expect(summary).toMatchObject({ entries: 30, checkpointSize: 30, uncovered: 5, origin: logOrigin(BASE, "acme") });
    expect(JSON.parse(readFileSync(join(dir, "export.json"), "utf8"))).toMatchObject({ uncovered: 5 });
    expect(JSON.parse(readFileSync(join(dir, "keys.json"), "utf8"))[0].name).toBe(logOrigin(BASE, "acme"));
  });

  it("verifies an untouched log, with inclusion of an entry and consistency with an earlier checkpoint", async () => {
    const report = await verifyStore({ previousCheckpoint: checkpointNotes[0], entry: 17 });
    expect(report).toMatchObject({
      ok: true,
      treeSize: 30,
      entriesChecked: 30,
      inclusion: { seq: 17 },
      consistency: { fromSize: 10 },
    });
  });

  it("catches an edited field, naming the entry", async () => {
    const edited = await body(12);
    (edited.event as Record<string, unknown>).outcome = "OUTCOME_SUCCESS";
    (edited.event as Record<string, unknown>).action = "orders.delete";
    await store.db
      .updateTable("audit_log")
      .set({ body: JSON.stringify(edited) })
      .where("seq", "=", 12)
      .execute();
    expect(await verifyStore()).toMatchObject({
      ok: false,
      failure: { seq: 12, reason: expect.stringMatching(/edited/) },
    });
  });

  it("catches an edit whose leaf hash was recomputed too, locating it between checkpoints", async () => {
    const { leafHash } = await import("../../services/audit/merkle.ts");
    const canonicalize = (await import("canonicalize")).default;
    const edited = await body(14);
    (edited.event as Record<string, unknown>).reason = "nothing to see";
    const text = canonicalize(edited) as string;
    await store.db
      .updateTable("audit_log")
      .set({ body: text, leaf_hash: Buffer.from(leafHash(Buffer.from(text))).toString("hex") })
      .where("seq", "=", 14)
      .execute();
    expect(await verifyStore()).toMatchObject({ ok: false, failure: { range: [10, 19] } });
  });

  it("catches a deleted entry", async () => {
    await store.db.deleteFrom("audit_log").where("seq", "=", 5).execute();
    expect(await verifyStore()).toMatchObject({
      ok: false,
      failure: { seq: 5, reason: expect.stringMatching(/deleted, inserted or reordered/) },
    });
  });

  it("catches reordered entries", async () => {
    const [a, b] = [await body(3), await body(4)];
    const rows = await store.db.selectFrom("audit_log").selectAll().where("seq", "in", [3, 4]).orderBy("seq").execute();
    // Swap the two entries' contents but keep each row's seq, as a reordering in place would.
    await store.db
      .updateTable("audit_log")
      .set({ body: rows[1]?.body, leaf_hash: rows[1]?.leaf_hash })
      .where("seq", "=", 3)
      .execute();
    await store.db
      .updateTable("audit_log")
      .set({ body: rows[0]?.body, leaf_hash: rows[0]?.leaf_hash })
      .where("seq", "=", 4)
      .execute();
    expect(a.seq).toBe(3);
    expect(b.seq).toBe(4);
    expect(await verifyStore()).toMatchObject({ ok: false, failure: { seq: 3 } });
  });

  it("catches a truncated tail", async () => {
    await store.db.deleteFrom("audit_log").where("seq", ">=", 27).execute();
    expect(await verifyStore()).toMatchObject({
      ok: false,
      failure: { seq: 27, reason: expect.stringMatching(/missing at the end/) },
    });
  });

  it("catches a forged entry inserted in the middle", async () => {
    const forged = await body(8);
    await store.db.deleteFrom("audit_log").where("seq", ">=", 8).execute();
    await store.db
      .insertInto("audit_log")
      .values({
        tenant_id: "acme",
        seq: 8,
        leaf_hash: "00".repeat(32),
        body: JSON.stringify({ ...forged, event: { type: "forged.v1" } }),
        type: "forged.v1",
        subject: null,
        actors: " ",
        client_id: null,
        mandate_id: null,
        event_time: 0,
        record_time: 0,
      })
      .execute();
    expect(await verifyStore()).toMatchObject({ ok: false, failure: { seq: 8 } });
  });

  it("catches an older checkpoint swapped in for the newest", async () => {
    await store.db.deleteFrom("audit_checkpoints").where("tree_size", ">", 10).execute();
    expect(await verifyStore()).toMatchObject({
      ok: false,
      failure: { seq: 10, reason: expect.stringMatching(/beyond the checkpoint/) },
    });
    // A verifier who kept the newer checkpoint is told the one offered is older.
    const kept = checkpointNotes[2] as string;
    const report = await verifyLog({
      entries: entryLines(store, "acme", 10),
      checkpoint: checkpointNotes[0] as string,
      keys: pinned,
      previousCheckpoint: kept,
    });
    expect(report).toMatchObject({
      ok: false,
      failure: { reason: expect.stringMatching(/older than the one you kept/) },
    });
  });

  it("refuses a checkpoint not signed by the pinned key", async () => {
    const note = checkpointNotes[2] as string;
    const forgedNote = note.replace(/\n30\n/, "\n31\n");
    const report = await verifyLog({ entries: entryLines(store, "acme", 30), checkpoint: forgedNote, keys: pinned });
    expect(report).toMatchObject({ ok: false, failure: { reason: expect.stringMatching(/^checkpoint:/) } });
  });
});
