// kill -9 of the writer in the middle of a burst of appends: every acknowledged entry is in the
// log with the leaf hash it was acknowledged with, the log is gapless, its head and tree agree, and
// a checkpoint signed afterwards verifies.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { Checkpointer, logOrigin } from "../../services/audit/checkpoints.ts";
import { auditKeys, entryLines, toPublicKeys } from "../../services/audit/export.ts";
import { AuditLog, storedSubtrees } from "../../services/audit/log.ts";
import { leafHash, rootHash } from "../../services/audit/merkle.ts";
import { verifyLog } from "../../services/audit/verify.ts";
import { systemClock } from "../../services/shared/clock.ts";
import { createLogger } from "../../services/shared/logger.ts";
import { Store } from "../../services/shared/store/store.ts";
import { SoftwareBackend } from "../../services/signer/backends/software.ts";
import { KeyManager } from "../../services/signer/keys.ts";
import { engines } from "../helpers/engines.ts";

const FIXTURE = new URL("./fixtures/append-burst.ts", import.meta.url).pathname;
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe.each(engines)("audit writer killed mid-burst on $name", (engine) => {
  it("loses no acknowledged entry and leaves a log that verifies", async () => {
    const db = await engine.open();
    const store = Store.open({ url: db.url, poolSize: 2 });
    cleanups.push(async () => {
      await store.close();
      await db.dispose();
    });
    await store.migrate();
    await store.db.insertInto("tenants").values({ id: "acme", display_name: "Acme", created_at: 0 }).execute();

    const child = spawn(process.execPath, [FIXTURE, db.url], { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    await new Promise<void>((resolve, reject) => {
      child.stdout.on("data", (d) => {
        output += d;
        // Kill once a good number of entries were acknowledged, in the middle of the next burst.
        if (output.split("\n").length > 400) resolve();
      });
      child.on("exit", (code) => reject(new Error(`writer exited early (${code}): ${stderr}`)));
    });
    child.kill("SIGKILL");
    await new Promise((resolve) => child.once("exit", resolve));

    const acked = output
      .split("\n")
      .filter((line) => /^\d+ [0-9a-f]{64}$/.test(line))
      .map((line) => line.split(" ") as [string, string]);
    expect(acked.length).toBeGreaterThan(300);
    const rows = await store.db.selectFrom("audit_log").select(["seq", "leaf_hash", "body"]).orderBy("seq").execute();
    const stored = new Map(rows.map((r) => [Number(r.seq), r.leaf_hash]));
    for (const [seq, hash] of acked) expect(stored.get(Number(seq)), `acknowledged entry ${seq}`).toBe(hash);
    expect(rows.map((r) => Number(r.seq))).toEqual(rows.map((_, i) => i)); // gapless
    for (const row of rows) expect(Buffer.from(leafHash(Buffer.from(row.body))).toString("hex")).toBe(row.leaf_hash);
    const head = await store.db.selectFrom("audit_heads").selectAll().executeTakeFirstOrThrow();
    expect(Number(head.size)).toBe(rows.length);
    expect(Buffer.from(await rootHash(rows.length, storedSubtrees(store.db, "acme"))).toString("hex")).toBe(
      head.root_hash,
    );

    // A new writer continues the same tree where the dead one stopped, and a checkpoint signed over
    // the result verifies offline entry by entry.
    const logger = createLogger("silent");
    const log = new AuditLog({ store, clock: systemClock, logger });
    const [next] = await log.append("acme", [{ type: "writer.restarted.v1" }]);
    expect(next?.seq).toBe(rows.length);
    const keys = new KeyManager({
      store,
      backend: new SoftwareBackend(store, randomBytes(32)),
      clock: systemClock,
      logger,
      timing: { intervalMs: 86_400_000, prepublishMs: 3_600_000, overlapMs: 3_600_000, checkMs: 60_000 },
      defaultAlgorithm: "ES256",
    });
    await keys.start({ schedule: false });
    cleanups.push(() => keys.stop());
    const checkpoint = await new Checkpointer({
      store,
      signing: keys,
      clock: systemClock,
      logger,
      publicBaseUrl: "https://m.example",
    }).sign("acme");
    const report = await verifyLog({
      entries: entryLines(store, "acme", rows.length + 1),
      checkpoint: checkpoint?.note as string,
      keys: toPublicKeys(await auditKeys(store, "acme", logOrigin("https://m.example", "acme"))),
    });
    expect(report).toMatchObject({ ok: true, treeSize: rows.length + 1 });
  }, 60_000);
});
