// The mandate store and usage counting on every engine (SQLite always; PostgreSQL under
// MANDATE_TEST_POSTGRES=1): immutability once granted, cascading revocation, tenant isolation, and
// `consume` under concurrency — 50 consumers of 10 uses, 7-unit spends of a 100-unit budget,
// idempotent retries, sub-mandates charging their parents, periods; consumptions charged together
// (chargeAllWithin) and token exchanges counted in group-committed batches (IssuanceBatcher): 50
// concurrent issuances of a 10-token mandate through two batchers, exactly 10 issued.
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IssuanceBatcher } from "../../services/issue/mandates/issuance-batch.ts";
import { exchangeRefusal, UnacceptableToken } from "../../services/issue/mandates/refusal.ts";
import { type MandateRecord, MandateStore } from "../../services/shared/mandates/mandate-store.ts";
import {
  chargeAllWithin,
  IdempotencyConflict,
  MandateNotUsable,
  MandateUsage,
  periodStart,
  UsageCounters,
  UsageLimitExceeded,
} from "../../services/shared/mandates/usage.ts";
import type { Store } from "../../services/shared/store/store.ts";
import { engines } from "../helpers/engines.ts";
import { mandateRecord, openStore } from "../helpers/store.ts";

const T0 = Date.UTC(2026, 5, 1);
const DAY = 86_400_000;
/** A mandate of alice with a payment detail, a 5-minute token lifetime and two hops of delegation. */
function mandate(fields: Partial<MandateRecord> = {}): MandateRecord {
  return mandateRecord("test", T0, {
    authorizationDetails: [{ type: "payment_initiation", max_amount: 100, currency: "EUR" }],
    maxTokenTtlMs: 300_000,
    maxDelegationDepth: 2,
    ...fields,
  });
}

describe.each(engines)("mandate store and usage: $name", (engine) => {
  let store: Store;
  let close: (() => Promise<void>) | undefined;
  let now = T0 + DAY;
  const clock = { now: () => now };
  let usage: MandateUsage;

  beforeAll(async () => {
    ({ store, close } = await openStore(engine, {
      tenants: { acme: "Acme", globex: "Globex" },
      createdAt: T0,
      poolSize: 10,
    }));
    usage = new MandateUsage(store, clock);
  });

  afterAll(async () => {
    await close?.();
  });

  const acme = () => store.forTenant("acme");
  async function insert(...records: MandateRecord[]) {
    for (const record of records) await acme().use(MandateStore).insert(record);
    return records;
  }
  async function used(mandateId: string) {
    return (await acme().use(UsageCounters).of(mandateId)).map((c) => c.used);
  }

  it("stores a mandate and reads it back; other tenants do not see it", async () => {
    const [m] = await insert(
      mandate({ mayAct: ["agent-2"], usageLimits: [{ meter: "calls", maximum: 3, periodMs: 0 }] }),
    );
    expect(
      await acme()
        .use(MandateStore)
        .find(m?.id as string),
    ).toEqual(m);
    expect(
      await store
        .forTenant("globex")
        .use(MandateStore)
        .find(m?.id as string),
    ).toBeUndefined();
  });

  it("refuses to change a granted mandate except its state and revocation", async () => {
    const [m] = await insert(mandate());
    const id = m?.id as string;
    await expect(
      acme()
        .db.updateTable("mandates")
        .set({ scopes: '["admin"]' })
        .where("tenant_id", "=", "acme")
        .where("id", "=", id)
        .execute(),
    ).rejects.toThrow(/immutable/);
    await expect(
      acme()
        .db.updateTable("mandates")
        .set({ expires_at: T0 + 365 * DAY })
        .where("tenant_id", "=", "acme")
        .where("id", "=", id)
        .execute(),
    ).rejects.toThrow(/immutable/);
    await acme()
      .db.updateTable("mandates")
      .set({ state: "denied" })
      .where("tenant_id", "=", "acme")
      .where("id", "=", id)
      .execute();
    expect((await acme().use(MandateStore).find(id))?.state).toBe("denied");
  });

  it("revokes a mandate and every sub-mandate below it, in one transaction, and nothing twice", async () => {
    const root = mandate();
    const child = mandate({ parentId: root.id, depth: 1, agent: "agent-2" });
    const sibling = mandate({ parentId: root.id, depth: 1, agent: "agent-3" });
    const grandchild = mandate({ parentId: child.id, depth: 2, agent: "agent-4" });
    const other = mandate();
    await insert(root, child, sibling, grandchild, other);
    const scoped = acme();
    const revoked = await scoped.transaction((tx) =>
      scoped.use(MandateStore, tx).revokeTree(child.id, { by: { sub: "admin" }, reason: "test", at: now }),
    );
    expect(revoked.map((r) => r.id)).toEqual([child.id, grandchild.id]);
    expect(revoked[1]).toEqual({ id: grandchild.id, principal: "alice", agent: "agent-4" });
    const states = async (ids: string[]) =>
      Promise.all(ids.map(async (id) => (await scoped.use(MandateStore).find(id))?.state));
    expect(await states([root.id, child.id, sibling.id, grandchild.id])).toEqual([
      "active",
      "revoked",
      "active",
      "revoked",
    ]);
    const fromRoot = await scoped.transaction((tx) =>
      scoped.use(MandateStore, tx).revokeTree(root.id, { by: { sub: "admin" }, reason: "again", at: now }),
    );
    expect(fromRoot.map((r) => r.id)).toEqual([root.id, sibling.id]);
    expect((await scoped.use(MandateStore).find(grandchild.id))?.revokeReason).toBe("test");
    expect((await scoped.use(MandateStore).find(grandchild.id))?.revokedBy).toEqual({
      sub: "admin",
      cascade_from: child.id,
    });
    expect((await scoped.use(MandateStore).find(other.id))?.state).toBe("active");
  });

  it("lets exactly 10 of 50 concurrent consumers use a mandate of 10 uses", async () => {
    const [m] = await insert(mandate({ usageLimits: [{ meter: "calls", maximum: 10, periodMs: 0 }] }));
    const id = m?.id as string;
    const results = await Promise.allSettled(
      Array.from({ length: 50 }, (_, i) =>
        usage.consume("acme", id, { meter: "calls", amount: 1, idempotencyKey: `k${i}` }),
      ),
    );
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(10);
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
    expect(refused.every((r) => r.reason instanceof UsageLimitExceeded)).toBe(true);
    expect(await used(id)).toEqual([10]);
  });

  it("never spends more than a 100-unit budget with concurrent 7-unit spends (14 succeed)", async () => {
    const [m] = await insert(mandate({ usageLimits: [{ meter: "amount:EUR", maximum: 100, periodMs: 0 }] }));
    const id = m?.id as string;
    const results = await Promise.allSettled(
      Array.from({ length: 50 }, (_, i) =>
        usage.consume("acme", id, { meter: "amount:EUR", amount: 7, idempotencyKey: `spend-${i}` }),
      ),
    );
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(14);
    expect(await used(id)).toEqual([98]);
  });

  it("charges consumptions of one chain together: each counter once by the sum, all or nothing", async () => {
    const [root, sub] = await insert(
      mandate({ usageLimits: [{ meter: "calls", maximum: 10, periodMs: 0 }] }),
      mandate({ depth: 1, usageLimits: [{ meter: "calls", maximum: 6, periodMs: DAY }] }),
    );
    const chain = [root, { ...sub, parentId: root?.id ?? null }] as MandateRecord[];
    const batch = (keys: string[], at = now) =>
      keys.map((key) => ({ request: { meter: "calls", amount: 1, idempotencyKey: key }, at }));
    const results = await acme().transaction((tx) =>
      chargeAllWithin(acme().use(UsageCounters, tx), chain, batch(["a", "b", "c", "d"])),
    );
    // As if charged one after the other: root first, then the sub-mandate's daily counter.
    expect(results?.map((r) => r.counters.map((c) => c.used))).toEqual([
      [1, 1],
      [2, 2],
      [3, 3],
      [4, 4],
    ]);
    expect(await used(root?.id as string)).toEqual([4]);
    // Three more do not fit under the sub-mandate's 6 a day; a key claimed before (a replay), or two
    // periods in one batch, are not charged together either: nothing is left of any (all committed).
    for (const refused of [batch(["e", "f", "g"]), batch(["a", "h"]), [...batch(["i"]), ...batch(["j"], now + DAY)]]) {
      const answer = await acme().transaction((tx) => chargeAllWithin(acme().use(UsageCounters, tx), chain, refused));
      expect(answer).toBeUndefined();
    }
    const claimed = await acme()
      .db.selectFrom("mandate_consumptions")
      .select("idempotency_key")
      .where("tenant_id", "=", "acme")
      .where("mandate_id", "=", sub?.id as string)
      .orderBy("idempotency_key")
      .execute();
    expect(claimed.map((row) => row.idempotency_key)).toEqual(["a", "b", "c", "d"]);
    expect(await used(root?.id as string)).toEqual([4]);
    expect(await used(sub?.id as string)).toEqual([4]);
    // Each key kept its own result: a retry of "b" replays it.
    const replay = await acme().transaction((tx) =>
      acme()
        .use(UsageCounters, tx)
        .claim(sub?.id as string, { meter: "calls", amount: 1, idempotencyKey: "b" }, now),
    );
    expect(replay).toMatchObject({ replayed: true, counters: [{ used: 2 }, { used: 2 }] });
  });

  it("issues exactly 10 of 50 concurrent token exchanges of a 10-token mandate, counted in batches", async () => {
    const [m] = await insert(mandate({ usageLimits: [{ meter: "tokens", maximum: 10, periodMs: 0 }] }));
    const chain = [m] as MandateRecord[];
    // Two batchers (two replicas' worth of group commits) on one database, batches of about 5.
    const batchers = [new IssuanceBatcher(store), new IssuanceBatcher(store)];
    // Settled as they go (a refusal must not wait for a handler until the loop ends).
    const issued: Array<Promise<unknown>> = [];
    for (let i = 0; i < 50; i++) {
      if (i % 5 === 0) await new Promise((resolve) => setImmediate(resolve));
      issued.push(
        (batchers[i % 2] as IssuanceBatcher)
          .record("acme", {
            chain,
            event: (counters) => ({ eventId: randomUUID(), type: "token.exchanged.v1", payload: { counters } }),
            at: now,
            counted: `jti-${i}`,
            refuse: exchangeRefusal,
          })
          .then(() => "issued")
          .catch((error: unknown) => error),
      );
    }
    const results = await Promise.all(issued);
    expect(results.filter((r) => r === "issued")).toHaveLength(10);
    const refused = results.filter((r) => r !== "issued");
    expect(refused.every((r) => r instanceof UnacceptableToken && r.condition === "exhausted")).toBe(true);
    expect(await used(m?.id as string)).toEqual([10]);
    const claims = await acme()
      .db.selectFrom("mandate_consumptions")
      .select("idempotency_key")
      .where("tenant_id", "=", "acme")
      .where("mandate_id", "=", m?.id as string)
      .execute();
    expect(claims).toHaveLength(10);
  });

  it("counts idempotent retries once, returning the first result", async () => {
    const [m] = await insert(mandate({ usageLimits: [{ meter: "calls", maximum: 10, periodMs: 0 }] }));
    const id = m?.id as string;
    const request = { meter: "calls", amount: 1, idempotencyKey: "retry-me" };
    const results = await Promise.all(Array.from({ length: 20 }, () => usage.consume("acme", id, request)));
    expect(results.filter((r) => !r.replayed)).toHaveLength(1);
    const first = results.find((r) => !r.replayed);
    for (const result of results) expect({ ...result, replayed: false }).toEqual(first);
    expect(await used(id)).toEqual([1]);
    await expect(usage.consume("acme", id, { ...request, amount: 2 })).rejects.toThrow(IdempotencyConflict);
    // A refusal keeps nothing: the key is decided anew.
    const [small] = await insert(mandate({ usageLimits: [{ meter: "calls", maximum: 1, periodMs: 0 }] }));
    const smallId = small?.id as string;
    await usage.consume("acme", smallId, { meter: "calls", amount: 1, idempotencyKey: "a" });
    await expect(usage.consume("acme", smallId, { meter: "calls", amount: 1, idempotencyKey: "b" })).rejects.toThrow(
      UsageLimitExceeded,
    );
    expect((await usage.consume("acme", smallId, { meter: "calls", amount: 1, idempotencyKey: "a" })).replayed).toBe(
      true,
    );
  });

  it("charges a sub-mandate's consumption to its parent too", async () => {
    const parent = mandate({ usageLimits: [{ meter: "calls", maximum: 5, periodMs: 0 }] });
    const child = mandate({
      parentId: parent.id,
      depth: 1,
      agent: "agent-2",
      usageLimits: [{ meter: "calls", maximum: 10, periodMs: 0 }],
    });
    const sibling = mandate({ parentId: parent.id, depth: 1, agent: "agent-3", usageLimits: [] });
    await insert(parent, child, sibling);
    const results = await Promise.allSettled(
      Array.from({ length: 8 }, (_, i) =>
        usage.consume("acme", i % 2 ? child.id : sibling.id, { meter: "calls", amount: 1, idempotencyKey: `c${i}` }),
      ),
    );
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(5);
    expect(await used(parent.id)).toEqual([5]);
    const fulfilled = results.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
    const viaChild = fulfilled.filter((r) => r.mandateId === child.id);
    expect(await used(child.id)).toEqual(viaChild.length ? [viaChild.length] : []);
    expect(viaChild[0]?.counters.map((c) => c.mandateId)).toEqual([parent.id, child.id]);
  });

  it("counts per period from not_before, and a new period starts from zero", async () => {
    const [m] = await insert(mandate({ usageLimits: [{ meter: "calls", maximum: 2, periodMs: DAY }] }));
    const id = m?.id as string;
    const take = (key: string) => usage.consume("acme", id, { meter: "calls", amount: 1, idempotencyKey: key });
    await take("d1-a");
    await take("d1-b");
    await expect(take("d1-c")).rejects.toThrow(UsageLimitExceeded);
    now += DAY;
    try {
      const next = await take("d2-a");
      expect(next.counters[0]).toMatchObject({ periodStart: periodStart(T0, DAY, now), used: 1, maximum: 2 });
    } finally {
      now -= DAY;
    }
  });

  it("refuses a revoked, expired, not yet valid or unknown mandate, and its sub-mandates", async () => {
    const parent = mandate();
    const child = mandate({ parentId: parent.id, depth: 1 });
    const expired = mandate({ expiresAt: now - 1 });
    const later = mandate({ notBefore: now + DAY });
    await insert(parent, child, expired, later);
    const scoped = acme();
    await scoped.transaction((tx) =>
      scoped.use(MandateStore, tx).revokeTree(parent.id, { by: { sub: "admin" }, reason: "test", at: now }),
    );
    const reasonOf = (id: string) =>
      usage.consume("acme", id, { meter: "calls", amount: 1, idempotencyKey: "x" }).then(
        () => "consumed",
        (e: unknown) => (e instanceof MandateNotUsable ? e.reason : String(e)),
      );
    expect(await reasonOf(child.id)).toBe("not_active");
    expect(await reasonOf(expired.id)).toBe("expired");
    expect(await reasonOf(later.id)).toBe("not_yet_valid");
    expect(await reasonOf("mdt_nope")).toBe("not_found");
    await expect(usage.consume("acme", later.id, { meter: "calls", amount: 0, idempotencyKey: "x" })).rejects.toThrow(
      RangeError,
    );
  });

  it("records each consumption in the audit outbox under the mandate's id", async () => {
    const [m] = await insert(mandate({ usageLimits: [{ meter: "calls", maximum: 3, periodMs: 0 }] }));
    const id = m?.id as string;
    await usage.consume("acme", id, { meter: "calls", amount: 1, idempotencyKey: "audited" });
    await usage.consume("acme", id, { meter: "calls", amount: 1, idempotencyKey: "audited" });
    const rows = await acme()
      .db.selectFrom("audit_outbox")
      .selectAll()
      .where("tenant_id", "=", "acme")
      .where("type", "=", "mandate.consumed.v1")
      .execute();
    const mine = rows.filter((r) => JSON.parse(r.parties ?? "{}").mandateId === id);
    expect(mine).toHaveLength(1);
    expect(JSON.parse(mine[0]?.payload ?? "{}")).toMatchObject({ mandate_id: id, meter: "calls", amount: 1 });
  });
});
