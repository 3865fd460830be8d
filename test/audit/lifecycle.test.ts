// Checkpoints cover everything: a graceful stop signs a final checkpoint, a start after a crash
// signs what the crashed process left unsigned; and lag is visible: readiness fails while an event
// older than audit.maxLag waits in the outbox.
import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { auditService } from "../../services/audit/service.ts";
import { auditStatus } from "../../services/audit/status.ts";
import { ManualClock } from "../../services/shared/clock.ts";
import { loadConfig } from "../../services/shared/config.ts";
import { createLogger } from "../../services/shared/logger.ts";
import { MemoryReplayCache } from "../../services/shared/oauth/replay.ts";
import { RevocationIndex } from "../../services/shared/oauth/revocations.ts";
import { openRateLimiter } from "../../services/shared/rate-limit.ts";
import { ServiceClients } from "../../services/shared/rpc/clients.ts";
import type { AgentCaClient, SigningClient } from "../../services/shared/signing.ts";
import { Store } from "../../services/shared/store/store.ts";
import { TenantDirectory } from "../../services/tenants/directory.ts";
import { startDevProcess, tempAdminFile, tempDatabaseUrl } from "../helpers/mandate-process.ts";

/** No checkpoint while running: only the stop (or the next start) may sign one. */
const NO_ROUNDS = { MANDATE_AUDIT_CHECKPOINT_INTERVAL: "1h", MANDATE_AUDIT_CHECKPOINT_EVERY_ENTRIES: "1000000" };

async function statusOf(database: string) {
  const store = Store.open({ url: database });
  try {
    return await auditStatus(store, Date.now());
  } finally {
    await store.close();
  }
}

describe("checkpoints that cover everything", () => {
  it("a graceful stop signs every entry", async () => {
    const database = tempDatabaseUrl();
    const dev = await startDevProcess(NO_ROUNDS, database);
    expect(await dev.stop()).toBe(0);
    const statuses = await statusOf(database);
    expect(statuses.find((s) => s.tenant === "demo")?.entries).toBeGreaterThan(0);
    for (const status of statuses) expect(status, status.tenant).toMatchObject({ unsigned: 0, outbox: { depth: 0 } });
  }, 60_000);

  it("a start after a crash signs what the crashed process left unsigned", async () => {
    const database = tempDatabaseUrl();
    const env = { ...NO_ROUNDS, MANDATE_ADMIN_FILE: tempAdminFile() };
    const crashed = await startDevProcess(env, database);
    crashed.child.kill("SIGKILL");
    await new Promise((resolve) => crashed.child.once("exit", resolve));
    const left = await statusOf(database);
    expect(left.some((s) => s.unsigned > 0 || s.outbox.depth > 0)).toBe(true);
    const restarted = await startDevProcess(env, database);
    try {
      // Everything the crashed process left (entries, and events still in the outbox) is signed by
      // the time the new one serves; what the new one does after that is its own.
      const now = await statusOf(database);
      for (const before of left) {
        const after = now.find((s) => s.tenant === before.tenant);
        expect(after?.checkpoint?.treeSize ?? 0, before.tenant).toBeGreaterThanOrEqual(
          before.entries + before.outbox.depth,
        );
      }
    } finally {
      await restarted.stop();
    }
  }, 60_000);
});

describe("audit lag", () => {
  it("makes the process unready while an event older than audit.maxLag waits in the outbox", async () => {
    const store = Store.open({ url: tempDatabaseUrl() });
    await store.migrate();
    await store.db.insertInto("tenants").values({ id: "acme", display_name: "Acme", created_at: 0 }).execute();
    const clock = new ManualClock(1_000_000);
    const config = loadConfig({ env: { MANDATE_AUDIT_MAX_LAG: "30s" } });
    const signing = {} as SigningClient; // readiness signs nothing
    const audit = auditService({
      config,
      store,
      clock,
      signing,
      agentCa: {} as AgentCaClient, // the audit service issues no certificates
      logger: createLogger("silent"),
      clients: new ServiceClients(new Map()),
      limiter: openRateLimiter({}),
      replay: new MemoryReplayCache(),
      tenants: new TenantDirectory(store),
      revocations: RevocationIndex.readingStore(store, createLogger("silent")),
    }) as ReturnType<typeof auditService>;
    try {
      expect(await audit.readiness()).toEqual({ audit: "ok" });
      const scoped = store.forTenant("acme");
      await scoped.transaction((tx) =>
        scoped.recordEvent(tx, { eventId: randomUUID(), type: "token.issued.v1", payload: {} }, clock.now()),
      );
      clock.advance(10_000);
      expect(await audit.readiness()).toEqual({ audit: "ok" });
      clock.advance(25_000);
      expect((await audit.readiness()).audit).toMatch(
        /^lagging: 1 event\(s\) of tenant "acme" wait in the outbox, the oldest for 35 s/,
      );
      expect((await auditStatus(store, clock.now(), "acme"))[0]).toMatchObject({
        tenant: "acme",
        entries: 0,
        outbox: { depth: 1, oldestAgeMs: 35_000 },
      });
    } finally {
      await store.close();
    }
  });
});
