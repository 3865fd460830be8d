// Two writers on one SQLite file (the workers of `mandate dev --workers N`): a transaction that reads
// and then writes must wait for the other writer, not fail because it wrote in between. The other
// writer runs in a worker thread, as a second process would, since a SQLite busy wait blocks its thread.
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { afterEach, describe, expect, it } from "vitest";
import { Store } from "../../services/shared/store/store.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/**
 * Inserts a tenant into the file from another thread (waiting for the lock up to 5 s), holding its
 * write transaction `holdMs` before it commits; resolves once it holds the lock, and `done` once it exits.
 */
function writeFromAnotherThread(file: string, id: string, holdMs = 0): { locked: Promise<void>; done: Promise<void> } {
  const source = `
    const { workerData, parentPort } = require("node:worker_threads");
    const SQLite = require(workerData.module);
    const db = new SQLite(workerData.file);
    db.pragma("busy_timeout = 5000");
    db.exec("begin immediate");
    db.prepare("insert into tenants (id, display_name, created_at) values (?, ?, 0)").run(workerData.id, workerData.id);
    parentPort.postMessage("locked");
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, workerData.holdMs);
    db.exec("commit");
    db.close();
  `;
  const module = createRequire(import.meta.url).resolve("better-sqlite3");
  const worker = new Worker(source, { eval: true, workerData: { file, id, module, holdMs } });
  const locked = new Promise<void>((resolve) => worker.once("message", () => resolve()));
  const done = new Promise<void>((resolve, reject) => {
    worker.once("error", reject);
    worker.once("exit", (code) => (code === 0 ? resolve() : reject(new Error(`writer exited ${code}`))));
  });
  return { locked, done };
}

async function openStore(): Promise<{ store: Store; file: string }> {
  const dir = mkdtempSync(join(tmpdir(), "mandate-sqlite-writers-"));
  dirs.push(dir);
  const file = join(dir, "shared.db");
  const store = Store.open({ url: `sqlite:${file}` });
  await store.migrate();
  return { store, file };
}

describe("SQLite with two writers", () => {
  it("lets a read-then-write transaction finish while another writer waits for it", async () => {
    const { store, file } = await openStore();
    try {
      let other: Promise<void> | undefined;
      await store.transaction(async (tx) => {
        const before = await tx.selectFrom("tenants").select("id").execute();
        expect(before).toEqual([]);
        // The other writer tries to commit between this transaction's read and its write.
        other = writeFromAnotherThread(file, "from-the-other-writer").done;
        await new Promise((resolve) => setTimeout(resolve, 300));
        await tx.insertInto("tenants").values({ id: "read-then-write", display_name: "x", created_at: 0 }).execute();
      });
      await other;
      const ids = (await store.db.selectFrom("tenants").select("id").orderBy("id").execute()).map((r) => r.id);
      expect(ids).toEqual(["from-the-other-writer", "read-then-write"]);
    } finally {
      await store.close();
    }
  });

  it("waits for another writer's lock without blocking the event loop, then writes", async () => {
    const { store, file } = await openStore();
    try {
      const other = writeFromAnotherThread(file, "holds-the-lock", 400);
      await other.locked;
      let ticks = 0;
      const timer = setInterval(() => ticks++, 10);
      try {
        // The lock is the other thread's for 400 ms: this write waits for it, and timers keep firing meanwhile.
        await store.db.insertInto("tenants").values({ id: "waited", display_name: "x", created_at: 0 }).execute();
      } finally {
        clearInterval(timer);
      }
      await other.done;
      expect(ticks).toBeGreaterThan(3); // SQLite's own busy handler would have slept through them all
      const ids = (await store.db.selectFrom("tenants").select("id").orderBy("id").execute()).map((r) => r.id);
      expect(ids).toEqual(["holds-the-lock", "waited"]);
    } finally {
      await store.close();
    }
  });
});
