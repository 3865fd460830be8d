// The audit writer (services/audit/writer-lease.ts) on both engines: of two processes over one store,
// exactly one holds the lease and takes events committed alone straight into the log; the other
// leaves them in the outbox for it; a released lease passes at once, a dead writer's after it lapses.
// Either way the log holds the same entry the outbox drain would have made of the event.
import { afterEach, describe, expect, it } from "vitest";
import { AuditLog } from "../../services/audit/log.ts";
import { AuditWriterLease } from "../../services/audit/writer-lease.ts";
import { clientOnly, tokenIssued } from "../../services/shared/audit-events.ts";
import { ManualClock } from "../../services/shared/clock.ts";
import { createLogger } from "../../services/shared/logger.ts";
import { Store } from "../../services/shared/store/store.ts";
import { engines } from "../helpers/engines.ts";
import { rowCount } from "../helpers/rows.ts";

const logger = createLogger("silent");
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const issued = (jti: string) =>
  tokenIssued({
    grantType: "client_credentials",
    jti,
    audience: ["https://api.example.com/"],
    scope: ["orders.read"],
    clientId: "client-1",
    expiresAt: 1_800_000_000_000,
  });

describe.each(engines)("the audit writer on $name", (engine) => {
  /** Two "processes" over one database: each its own store, log and lease, on one shared clock. */
  async function twoProcesses() {
    const db = await engine.open();
    const clock = new ManualClock(1_700_000_000_000);
    const processes = [0, 1].map((n) => {
      const store = Store.open({ url: db.url, poolSize: 4 });
      const log = new AuditLog({ store, clock, logger });
      return { store, log, writer: new AuditWriterLease({ store, clock, logger, log, holder: `p${n}` }) };
    });
    cleanups.push(async () => {
      for (const p of processes) await p.store.close();
      await db.dispose();
    });
    const [a] = processes as [(typeof processes)[number]];
    await a.store.migrate();
    await a.store.db.insertInto("tenants").values({ id: "acme", display_name: "Acme", created_at: 0 }).execute();
    return { clock, processes: processes as [(typeof processes)[0], (typeof processes)[0]] };
  }

  const count = (store: Store, table: "audit_log" | "audit_outbox") => rowCount(store.db, table);

  it("elects one writer, which logs events committed alone at once while the other uses the outbox", async () => {
    const { processes } = await twoProcesses();
    const [a, b] = processes;
    expect(await a.writer.hold()).toBe(true);
    expect(await b.writer.hold()).toBe(false);
    const holders = await a.store.db.selectFrom("leases").selectAll().where("name", "=", "audit-writer").execute();
    expect(holders.map((h) => h.holder)).toEqual(["p0"]);

    await a.store.forTenant("acme").commitEvent(issued("jti-a"), 1_700_000_000_000);
    expect(await count(a.store, "audit_log")).toBe(1); // durable in the log when commitEvent resolves
    expect(await count(a.store, "audit_outbox")).toBe(0);

    await b.store.forTenant("acme").commitEvent(issued("jti-b"), 1_700_000_000_001);
    expect(await count(a.store, "audit_outbox")).toBe(1);
    expect(await a.log.drainOutbox()).toBe(1);
    expect(await count(a.store, "audit_log")).toBe(2);
  });

  it("logs an event committed alone exactly as the outbox drain logs it", async () => {
    const { processes } = await twoProcesses();
    const [a, b] = processes;
    await a.writer.hold();
    const event = { ...issued("same"), eventId: "0190f5d2-0000-7000-8000-000000000001" };
    await a.store.forTenant("acme").commitEvent(event, 1_700_000_000_000);
    await b.store.forTenant("acme").commitEvent(event, 1_700_000_000_000);
    await a.log.drainOutbox();
    const bodies = (await a.store.db.selectFrom("audit_log").select("body").orderBy("seq").execute()).map(
      (row) => JSON.parse(row.body).event,
    );
    expect(bodies).toHaveLength(2);
    expect(bodies[0]).toEqual(bodies[1]);
    expect(bodies[0]).toMatchObject({ type: "token.issued.v1", requestId: event.eventId, outcome: "OUTCOME_SUCCESS" });
    expect(bodies[0].client).toEqual(clientOnly("client-1").client);
  });

  it("passes on a released lease at once and a dead writer's once it lapses", async () => {
    const { clock, processes } = await twoProcesses();
    const [a, b] = processes;
    await a.writer.hold();
    await a.writer.release();
    expect(a.writer.held).toBe(false);
    expect(await b.writer.hold()).toBe(true);
    await b.store.forTenant("acme").commitEvent(issued("after-release"), clock.now());
    expect(await count(b.store, "audit_outbox")).toBe(0);

    // b dies holding it (no release): a tries in vain until the lease lapses, then takes over.
    expect(await a.writer.hold()).toBe(false);
    clock.advance(5_000);
    expect(await a.writer.renewIfDue()).toBe(false); // tried, the lease has not lapsed yet
    clock.advance(2_000);
    expect(await a.writer.renewIfDue()).toBe(true);
    await a.store.forTenant("acme").commitEvent(issued("after-takeover"), clock.now());
    expect(await count(a.store, "audit_log")).toBe(2);
    expect(await count(a.store, "audit_outbox")).toBe(0);
  });
});
