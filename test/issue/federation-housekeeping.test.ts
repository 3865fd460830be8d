// Housekeeping of federation's short-lived rows (identity/federation/housekeeping.ts), on every
// engine of the run (SQLite; PostgreSQL under MANDATE_TEST_POSTGRES=1): logins in flight and
// federated sessions past expires_at are deleted in every tenant, batch after batch; unexpired ones
// stay and still work; the periodic job sweeps when it starts and stops cleanly.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  pruneExpiredFederation,
  startFederationHousekeeping,
} from "../../services/issue/identity/federation/housekeeping.ts";
import { FederationLogins } from "../../services/issue/identity/federation/logins.ts";
import { FederatedSessions } from "../../services/issue/identity/federation/sessions.ts";
import { ManualClock } from "../../services/shared/clock.ts";
import { createLogger } from "../../services/shared/logger.ts";
import type { Store } from "../../services/shared/store/store.ts";
import { engines } from "../helpers/engines.ts";
import { rowCount } from "../helpers/rows.ts";
import { openStore } from "../helpers/store.ts";

const T0 = Date.UTC(2026, 5, 1);
const LOGIN_TTL = 600_000;
const SESSION_TTL = 3_600_000;

describe.each(engines)("federation housekeeping: $name", (engine) => {
  let store: Store;
  let close: (() => Promise<void>) | undefined;
  let now = T0;

  beforeAll(async () => {
    ({ store, close } = await openStore(engine, {
      tenants: { acme: "Acme", globex: "Globex" },
      createdAt: T0,
      poolSize: 4,
    }));
  });
  afterAll(async () => {
    await close?.();
  });

  const logins = () => new FederationLogins({ store, now: () => now, ttlMs: LOGIN_TTL });
  const sessions = () => new FederatedSessions({ store, now: () => now, ttlMs: SESSION_TTL });
  const login = (tenant: string) => ({
    tenant,
    providerId: "okta",
    interaction: "mia_1",
    checks: { nonce: "n", codeVerifier: "v" },
  });
  const openSession = (tenant: string) =>
    sessions().open(tenant, { providerId: "okta", subject: "fed_1", authTime: now, acr: "a", amr: [], claims: {} });
  const count = (table: "federation_logins" | "federated_sessions") => rowCount(store.db, table);
  const clear = async () => {
    await store.db.deleteFrom("federation_logins").execute();
    await store.db.deleteFrom("federated_sessions").execute();
  };

  it("deletes expired logins and sessions of every tenant, in batches, and keeps unexpired ones working", async () => {
    await clear();
    now = T0;
    // Expired by the sweep's time: 5 logins (one already used) and 3 sessions over two tenants.
    for (const tenant of ["acme", "acme", "globex", "globex"])
      await logins().save(FederationLogins.newHandle(), login(tenant));
    const used = FederationLogins.newHandle();
    await logins().save(used, login("acme"));
    expect(await logins().take("acme", "okta", used)).toBeDefined();
    for (const tenant of ["acme", "globex", "globex"]) await openSession(tenant);
    // Opened later: a login and a session still valid at the sweep, exactly at its expiry minus one.
    now = T0 + SESSION_TTL - LOGIN_TTL + 1;
    const fresh = FederationLogins.newHandle();
    await logins().save(fresh, login("globex"));
    now = T0 + 1;
    const kept = await openSession("acme");
    expect([await count("federation_logins"), await count("federated_sessions")]).toEqual([6, 4]);

    now = T0 + SESSION_TTL;
    // A batch of 2 makes several statements per table, the last one short.
    expect(await pruneExpiredFederation(store, now, 2)).toEqual({ federation_logins: 5, federated_sessions: 3 });
    expect([await count("federation_logins"), await count("federated_sessions")]).toEqual([1, 1]);
    expect(await pruneExpiredFederation(store, now, 2)).toEqual({ federation_logins: 0, federated_sessions: 0 });
    // What stayed still works.
    const browser = { headers: { cookie: `${kept.name}=${kept.value}` } } as never;
    expect((await sessions().find(browser, "acme"))?.subject).toBe("fed_1");
    expect(await logins().take("globex", "okta", fresh)).toMatchObject({ interaction: "mia_1" });

    // At its expiry, each goes.
    expect(await pruneExpiredFederation(store, T0 + 1 + SESSION_TTL)).toEqual({
      federation_logins: 1,
      federated_sessions: 1,
    });
    expect([await count("federation_logins"), await count("federated_sessions")]).toEqual([0, 0]);
  });

  it("an exact multiple of the batch is deleted whole", async () => {
    await clear();
    now = T0;
    for (let i = 0; i < 4; i++) await logins().save(FederationLogins.newHandle(), login("acme"));
    expect(await pruneExpiredFederation(store, T0 + LOGIN_TTL, 2)).toEqual({
      federation_logins: 4,
      federated_sessions: 0,
    });
    expect(await count("federation_logins")).toBe(0);
  });

  it("the job sweeps when it starts and stops cleanly", async () => {
    await clear();
    now = T0;
    await logins().save(FederationLogins.newHandle(), login("acme"));
    await openSession("globex");
    const job = startFederationHousekeeping({
      store,
      clock: new ManualClock(T0 + SESSION_TTL),
      logger: createLogger("silent"),
    });
    await expect.poll(async () => (await count("federation_logins")) + (await count("federated_sessions"))).toBe(0);
    await job.stop();
  });
});
