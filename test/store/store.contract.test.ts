// One contract suite for every engine: SQLite always; PostgreSQL when MANDATE_TEST_POSTGRES=1 (CI,
// and `npm run test:postgres`), in a throwaway database created for this run and dropped after.
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { migrationsFor } from "../../services/shared/store/migrations.ts";
import { parseDatabaseUrl, Store } from "../../services/shared/store/store.ts";
import { TenantScopeViolation } from "../../services/shared/store/tenancy.ts";
import { engines } from "../helpers/engines.ts";

describe.each(engines)("store contract: $name", (engine) => {
  let store: Store;
  let dispose: () => Promise<void>;

  beforeAll(async () => {
    const opened = await engine.open();
    dispose = opened.dispose;
    store = Store.open({ url: opened.url, poolSize: 4 });
    await store.migrate();
    const now = Date.now();
    await store.db
      .insertInto("tenants")
      .values([
        { id: "acme", display_name: "Acme", created_at: now },
        { id: "globex", display_name: "Globex", created_at: now },
      ])
      .execute();
  });

  afterAll(async () => {
    await store?.close();
    await dispose?.();
  });

  it("selects the engine from the URL", () => {
    expect(store.engine).toBe(engine.name);
  });

  it("applies every migration once and is idempotent", async () => {
    expect(await store.appliedMigrations()).toEqual(Object.keys(migrationsFor(store.engine)));
    const again = await store.migrate();
    expect(again.results).toEqual([]);
  });

  it("records an event only inside the tenant it is scoped to", async () => {
    const acme = store.forTenant("acme");
    await acme.transaction((tx) =>
      acme.recordEvent(tx, { eventId: randomUUID(), type: "test.event.v1", payload: { n: 1 } }, Date.now()),
    );
    const mine = await acme.db.selectFrom("audit_outbox").selectAll().where("tenant_id", "=", "acme").execute();
    expect(mine.map((r) => JSON.parse(r.payload))).toContainEqual({ n: 1 });
    const globex = store.forTenant("globex");
    const theirs = await globex.db.selectFrom("audit_outbox").selectAll().where("tenant_id", "=", "globex").execute();
    expect(theirs).toEqual([]);
  });

  it("refuses a query on a tenant table that is not pinned to the handle's tenant", async () => {
    const acme = store.forTenant("acme");
    await expect(acme.db.selectFrom("audit_outbox").selectAll().execute()).rejects.toThrow(TenantScopeViolation);
    await expect(
      acme.db.selectFrom("audit_outbox").selectAll().where("tenant_id", "=", "globex").execute(),
    ).rejects.toThrow(TenantScopeViolation);
    await expect(
      acme.db
        .selectFrom("audit_outbox")
        .selectAll()
        .where((eb) => eb.or([eb("tenant_id", "=", "acme"), eb("type", "=", "x")]))
        .execute(),
    ).rejects.toThrow(TenantScopeViolation);
    await expect(acme.db.deleteFrom("audit_outbox").where("type", "=", "test.event.v1").execute()).rejects.toThrow(
      TenantScopeViolation,
    );
    await expect(
      acme.db.updateTable("audit_outbox").set({ tenant_id: "globex" }).where("tenant_id", "=", "acme").execute(),
    ).rejects.toThrow(TenantScopeViolation);
    await expect(
      acme.db
        .insertInto("audit_outbox")
        .values({ tenant_id: "globex", event_id: randomUUID(), type: "x.v1", payload: "{}", created_at: 0 })
        .execute(),
    ).rejects.toThrow(TenantScopeViolation);
  });

  it("allows pinned queries, including joins and aliases", async () => {
    const acme = store.forTenant("acme");
    const rows = await acme.db
      .selectFrom("audit_outbox as o")
      .innerJoin("tenants as t", "t.id", "o.tenant_id")
      .select(["o.type", "t.display_name"])
      .where("o.tenant_id", "=", "acme")
      .execute();
    expect(rows.every((r) => r.display_name === "Acme")).toBe(true);
  });

  it("commits an action and its audit record together, or neither", async () => {
    const acme = store.forTenant("acme");
    const eventId = randomUUID();
    await expect(
      acme.transaction(async (tx) => {
        await tx
          .insertInto("tenants")
          .values({ id: "initech", display_name: "Initech", created_at: Date.now() })
          .execute();
        await acme.recordEvent(tx, { eventId, type: "tenant.created.v1", payload: {} }, Date.now());
        throw new Error("crash before commit");
      }),
    ).rejects.toThrow("crash before commit");
    expect(
      await store.db.selectFrom("tenants").select("id").where("id", "=", "initech").executeTakeFirst(),
    ).toBeUndefined();
    expect(
      await acme.db
        .selectFrom("audit_outbox")
        .select("event_id")
        .where("tenant_id", "=", "acme")
        .where("event_id", "=", eventId)
        .executeTakeFirst(),
    ).toBeUndefined();
  });

  it("enforces that outbox rows belong to a registered tenant", async () => {
    const ghost = store.forTenant("ghost");
    await expect(
      ghost.transaction((tx) =>
        ghost.recordEvent(tx, { eventId: randomUUID(), type: "x.v1", payload: {} }, Date.now()),
      ),
    ).rejects.toThrow();
  });

  it("round-trips millisecond timestamps as numbers", async () => {
    const row = await store.db
      .selectFrom("tenants")
      .select("created_at")
      .where("id", "=", "acme")
      .executeTakeFirstOrThrow();
    expect(typeof row.created_at).toBe("number");
  });
});

describe("database URLs", () => {
  it("parses the supported forms and refuses others", () => {
    expect(parseDatabaseUrl("sqlite:.mandate/x.db")).toEqual({ engine: "sqlite", target: ".mandate/x.db" });
    expect(parseDatabaseUrl("postgres://u@h/db").engine).toBe("postgres");
    expect(parseDatabaseUrl("postgresql://u@h/db").engine).toBe("postgres");
    expect(parseDatabaseUrl("./plain.db")).toEqual({ engine: "sqlite", target: "./plain.db" });
    expect(() => parseDatabaseUrl("mysql://root:secret@h/db")).toThrow(/unsupported.*REDACTED/);
  });
});
