// Policy changes reach every replica within a second: two PolicyRegistry instances (two stores) on one
// database, a change made through one seen by the other's onChange, over PostgreSQL LISTEN/NOTIFY,
// over Redis pub/sub, and by polling alone; the LISTEN connection reconnects after it drops; a
// message is trusted for nothing but the tenant id.
import { Redis } from "ioredis";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PolicyRegistry, type PolicyRegistryOptions } from "../../services/authorize/policies/registry.ts";
import { REDIS_CHANNEL } from "../../services/authorize/policies/reload.ts";
import type { Actor } from "../../services/shared/audit-events.ts";
import { loadConfig } from "../../services/shared/config.ts";
import { createLogger } from "../../services/shared/logger.ts";
import { Store } from "../../services/shared/store/store.ts";
import { engines } from "../helpers/engines.ts";
import { testBundle } from "../helpers/policy-bundles.ts";

const REDIS_URL = process.env.MANDATE_TEST_REDIS_URL ?? "redis://127.0.0.1:6379/0";
const ADMIN: Actor = { by: { service: "test" } };
const NEVER = 600_000; // a poll interval that never elapses within a test

interface Replica {
  store: Store;
  registry: PolicyRegistry;
  changes: Array<{ tenant: string; at: number }>;
}

/** Resolves with the delay from `since` until `tenant` changes on the replica (rejects after `limit`). */
function changeSeen(replica: Replica, tenant: string, since: number, limit = 3000): Promise<number> {
  return new Promise((resolve, reject) => {
    const check = setInterval(() => {
      const seen = replica.changes.find((c) => c.tenant === tenant && c.at >= since);
      if (seen) {
        clearInterval(check);
        resolve(seen.at - since);
      } else if (Date.now() - since > limit) {
        clearInterval(check);
        reject(new Error(`no change of ${tenant} seen within ${limit} ms`));
      }
    }, 5);
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.each(engines)("policy reload: $name", (engine) => {
  let url: string;
  let dispose: () => Promise<void>;
  const replicas: Replica[] = [];

  async function replica(reload: PolicyRegistryOptions["reload"], redis = false): Promise<Replica> {
    const store = Store.open({ url, poolSize: 4 });
    const base = loadConfig({ env: {} });
    const config = {
      ...base,
      database: { ...base.database, url },
      redis: redis ? { url: REDIS_URL } : {},
    };
    const registry = new PolicyRegistry({ store, config, logger: createLogger("silent"), reload });
    await registry.start();
    const made: Replica = { store, registry, changes: [] };
    registry.onChange((tenant) => made.changes.push({ tenant, at: Date.now() }));
    replicas.push(made);
    return made;
  }

  beforeAll(async () => {
    const opened = await engine.open();
    url = opened.url;
    dispose = opened.dispose;
    const setup = Store.open({ url });
    await setup.migrate();
    const now = Date.now();
    const tenants = ["notify", "poll", "redis", "reconnect", "quiet"];
    await setup.db
      .insertInto("tenants")
      .values(tenants.map((id) => ({ id, display_name: id, created_at: now })))
      .execute();
    await setup.close();
  });

  afterAll(async () => {
    for (const r of replicas) {
      await r.registry.stop();
      await r.store.close();
    }
    await dispose?.();
  });

  it.runIf(engine.name === "postgres")(
    "an activation on one replica reaches the other within 1 s by LISTEN/NOTIFY",
    async () => {
      const a = await replica({ pollIntervalMs: NEVER, redis: false });
      const b = await replica({ pollIntervalMs: NEVER, redis: false });
      await a.registry.push("notify", await testBundle("n1"), {}, ADMIN);
      await a.registry.push("notify", await testBundle("n2"), { activate: true }, ADMIN);
      expect((await b.registry.active("notify")).revision).toBe("n2");
      for (const [revision, change] of [
        ["n1", () => a.registry.activate("notify", "n1", ADMIN)],
        ["n2", () => a.registry.rollback("notify", ADMIN)],
      ] as const) {
        const since = Date.now();
        await change();
        expect(await changeSeen(b, "notify", since)).toBeLessThan(1000);
        expect((await b.registry.active("notify")).revision).toBe(revision);
      }
    },
  );

  it("with notifications off, polling alone brings the change within 1 s", async () => {
    const a = await replica({ postgres: false, redis: false, pollIntervalMs: 200 });
    const b = await replica({ postgres: false, redis: false, pollIntervalMs: 200 });
    const bundle = await testBundle("p1");
    const pushed = Date.now();
    await a.registry.push("poll", bundle, { activate: true }, ADMIN);
    expect(await changeSeen(b, "poll", pushed)).toBeLessThan(1000);
    expect((await b.registry.active("poll")).revision).toBe("p1");
    const since = Date.now();
    await a.registry.setData("poll", "flags", { allow: true }, ADMIN);
    expect(await changeSeen(b, "poll", since)).toBeLessThan(1000);
    expect((await b.registry.active("poll")).data).toMatchObject({ flags: { allow: true } });
  });

  it("over Redis pub/sub the other replica sees the change within 1 s", async () => {
    const a = await replica({ postgres: false, pollIntervalMs: NEVER }, true);
    const b = await replica({ postgres: false, pollIntervalMs: NEVER }, true);
    await a.registry.push("redis", await testBundle("x1"), { activate: true }, ADMIN);
    await a.registry.push("redis", await testBundle("x2"), {}, ADMIN);
    expect((await b.registry.active("redis")).revision).toBe("x1");
    const since = Date.now();
    await a.registry.activate("redis", "x2", ADMIN);
    expect(await changeSeen(b, "redis", since)).toBeLessThan(1000);
    expect((await b.registry.active("redis")).revision).toBe("x2");
  });

  it("trusts a message for nothing but the tenant id: no change in the store, no change reported", async () => {
    const b = await replica({ postgres: false, pollIntervalMs: NEVER }, true);
    await b.registry.active("quiet");
    const publisher = new Redis(REDIS_URL);
    try {
      const since = Date.now();
      await publisher.publish(REDIS_CHANNEL, "quiet");
      await publisher.publish(REDIS_CHANNEL, "../../etc");
      await publisher.publish(REDIS_CHANNEL, JSON.stringify({ tenant: "quiet", revision: "evil" }));
      await sleep(300);
      expect(b.changes.filter((c) => c.at >= since)).toEqual([]);
      expect((await b.registry.active("quiet")).revision).toMatch(/^default-/);
    } finally {
      publisher.disconnect();
    }
  });

  it.runIf(engine.name === "postgres")("the LISTEN connection reconnects after it drops", async () => {
    const a = await replica({ pollIntervalMs: NEVER, redis: false });
    const b = await replica({ pollIntervalMs: NEVER, redis: false });
    await a.registry.push("reconnect", await testBundle("c1"), { activate: true }, ADMIN);
    await a.registry.push("reconnect", await testBundle("c2"), {}, ADMIN);
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    try {
      const dropped = await admin.query(
        "select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() and query like 'LISTEN%'",
      );
      expect(dropped.rowCount).toBeGreaterThanOrEqual(2);
      // Reconnected (and LISTENing again) within the backoff's first steps.
      for (let i = 0; i < 40; i++) {
        const listening = await admin.query(
          "select count(*)::int as n from pg_stat_activity where datname = current_database() and query like 'LISTEN%'",
        );
        if ((listening.rows[0] as { n: number }).n >= 2) break;
        await sleep(50);
      }
    } finally {
      await admin.end();
    }
    const since = Date.now();
    await a.registry.activate("reconnect", "c2", ADMIN);
    expect(await changeSeen(b, "reconnect", since)).toBeLessThan(1000);
    expect((await b.registry.active("reconnect")).revision).toBe("c2");
  });
});
