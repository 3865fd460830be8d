// Property tests of the tenant guard: compiling a query runs the plugin, so no database is needed.

import fc from "fast-check";
import { DummyDriver, Kysely, SqliteAdapter, SqliteIntrospector, SqliteQueryCompiler } from "kysely";
import { describe, expect, it } from "vitest";
import type { Database } from "../../services/shared/store/schema.ts";
import { TenantScopePlugin, TenantScopeViolation } from "../../services/shared/store/tenancy.ts";

const db = new Kysely<Database>({
  dialect: {
    createAdapter: () => new SqliteAdapter(),
    createDriver: () => new DummyDriver(),
    createIntrospector: (k) => new SqliteIntrospector(k),
    createQueryCompiler: () => new SqliteQueryCompiler(),
  },
});

const tenantId = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?$/);
const twoTenants = fc.tuple(tenantId, tenantId).filter(([a, b]) => a !== b);

describe("tenant guard (property)", () => {
  it("accepts exactly the queries pinned to the handle's tenant", () => {
    fc.assert(
      fc.property(twoTenants, fc.string(), ([mine, other], type) => {
        const scoped = db.withPlugin(new TenantScopePlugin(mine));
        expect(() =>
          scoped
            .selectFrom("audit_outbox")
            .selectAll()
            .where("tenant_id", "=", mine)
            .where("type", "=", type)
            .compile(),
        ).not.toThrow();
        expect(() =>
          scoped
            .selectFrom("audit_outbox")
            .selectAll()
            .where("type", "=", type)
            .where("tenant_id", "=", mine)
            .compile(),
        ).not.toThrow();
        expect(() => scoped.selectFrom("audit_outbox").selectAll().where("tenant_id", "=", other).compile()).toThrow(
          TenantScopeViolation,
        );
        expect(() => scoped.selectFrom("audit_outbox").selectAll().where("type", "=", mine).compile()).toThrow(
          TenantScopeViolation,
        );
        expect(() => scoped.selectFrom("audit_outbox").selectAll().where("tenant_id", "!=", other).compile()).toThrow(
          TenantScopeViolation,
        );
        expect(() =>
          scoped
            .selectFrom("audit_outbox")
            .selectAll()
            .where((eb) => eb.or([eb("tenant_id", "=", mine), eb("tenant_id", "=", other)]))
            .compile(),
        ).toThrow(TenantScopeViolation);
      }),
    );
  });

  it("refuses inserts of rows for another tenant, in any position of a multi-row insert", () => {
    fc.assert(
      fc.property(twoTenants, fc.nat({ max: 5 }), fc.nat({ max: 5 }), ([mine, other], before, after) => {
        const scoped = db.withPlugin(new TenantScopePlugin(mine));
        const row = (tenant: string, n: number) => ({
          tenant_id: tenant,
          event_id: `e${n}`,
          type: "t.v1",
          payload: "{}",
          created_at: n,
        });
        const rows = [
          ...Array.from({ length: before }, (_, i) => row(mine, i)),
          row(other, 99),
          ...Array.from({ length: after }, (_, i) => row(mine, 100 + i)),
        ];
        expect(() => scoped.insertInto("audit_outbox").values(rows).compile()).toThrow(TenantScopeViolation);
        expect(() =>
          scoped
            .insertInto("audit_outbox")
            .values(rows.filter((r) => r.tenant_id === mine).concat(row(mine, 7)))
            .compile(),
        ).not.toThrow();
      }),
    );
  });

  it("leaves global tables alone", () => {
    const scoped = db.withPlugin(new TenantScopePlugin("acme"));
    expect(() => scoped.selectFrom("tenants").selectAll().compile()).not.toThrow();
  });
});
