// Auto-revocation by a mandate's revocation policy, on every engine (SQLite always; PostgreSQL under
// MANDATE_TEST_POSTGRES=1), with the dev-users identity provider: revoke_on_account_end revokes a
// deleted principal's mandates (and their sub-mandates) with a reason and a mandate.revoked.v1 each,
// never an active principal's, never a mandate without the policy; revoke_on_session_end revokes what
// was granted in the ended session only. And migration 0014's columns stay immutable once granted.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DevUsers } from "../../services/issue/identity/dev-users.ts";
import { autoRevokeIfPrincipalGone, revokeForSessionEnd } from "../../services/issue/mandates/auto-revoke.ts";
import { type MandateRecord, MandateStore } from "../../services/shared/mandates/mandate-store.ts";
import type { Store } from "../../services/shared/store/store.ts";
import { engines } from "../helpers/engines.ts";
import { mandateRecord, openStore } from "../helpers/store.ts";

const T0 = Date.UTC(2026, 5, 1);
const DAY = 86_400_000;
/** A mandate of dev-alice, granted interactively, not delegable further than one hop. */
function mandate(fields: Partial<MandateRecord> = {}): MandateRecord {
  return mandateRecord("auto", T0, {
    principal: "dev-alice",
    consent: { approvedBy: { service: "test" }, at: T0, method: "interactive", text: "" },
    ...fields,
  });
}

describe.each(engines)("auto-revocation: $name", (engine) => {
  let store: Store;
  let close: (() => Promise<void>) | undefined;
  const clock = { now: () => T0 + DAY };
  let identity: DevUsers;

  beforeAll(async () => {
    ({ store, close } = await openStore(engine, { tenants: { acme: "Acme" }, createdAt: T0, poolSize: 4 }));
    identity = new DevUsers({
      users: [{ id: "dev-alice", username: "alice", passwordHash: "x" }],
      store,
      clock,
      sessionTtlMs: DAY,
      loginUrl: () => "http://localhost/login",
    });
  });

  afterAll(async () => {
    await close?.();
  });

  const mandates = () => store.forTenant("acme").use(MandateStore);
  const insert = async (...records: MandateRecord[]) => {
    for (const r of records) await mandates().insert(r);
  };
  const events = async (mandateId: string) =>
    (
      await store
        .forTenant("acme")
        .db.selectFrom("audit_outbox")
        .select(["type", "payload"])
        .where("tenant_id", "=", "acme")
        .execute()
    ).filter((e) => (JSON.parse(e.payload) as { mandate_id?: string }).mandate_id === mandateId);

  it("revokes a deleted principal's mandates that end with the account, with their sub-mandates", async () => {
    const ending = mandate({ principal: "ghost", revokeOnAccountEnd: true });
    const below = mandate({ principal: "ghost", parentId: ending.id, depth: 1, agent: "agent-2" });
    const staying = mandate({ principal: "ghost" });
    await insert(ending, below, staying);
    const { status, revoked } = await autoRevokeIfPrincipalGone({ store, clock, identity }, "acme", "ghost");
    expect(status).toBe("deleted");
    expect(revoked.map((m) => m.id)).toEqual([ending.id, below.id]);
    const found = await mandates().find(ending.id);
    expect(found).toMatchObject({
      state: "revoked",
      revokeReason: "the principal's account was deleted",
      revokedBy: { rule: "revoke_on_account_end" },
    });
    expect((await mandates().find(below.id))?.state).toBe("revoked");
    expect((await mandates().find(staying.id))?.state).toBe("active");
    expect((await events(ending.id)).map((e) => e.type)).toEqual(["mandate.revoked.v1"]);
    // Again: nothing left to revoke.
    expect((await autoRevokeIfPrincipalGone({ store, clock, identity }, "acme", "ghost")).revoked).toEqual([]);
  });

  it("leaves an active principal's mandates, and revokes nothing when the provider cannot tell", async () => {
    const kept = mandate({ revokeOnAccountEnd: true });
    await insert(kept);
    expect(await autoRevokeIfPrincipalGone({ store, clock, identity }, "acme", "dev-alice")).toEqual({
      status: "active",
      revoked: [],
    });
    const unknowing = { store, clock, identity: {} };
    const ghostly = mandate({ principal: "nobody", revokeOnAccountEnd: true });
    await insert(ghostly);
    expect((await autoRevokeIfPrincipalGone(unknowing, "acme", "nobody")).status).toBe("unknown");
    expect((await mandates().find(ghostly.id))?.state).toBe("active");
    expect((await mandates().find(kept.id))?.state).toBe("active");
  });

  it("fails closed when the provider fails: the error propagates, nothing revoked", async () => {
    const failing = {
      store,
      clock,
      identity: { accountStatus: async () => Promise.reject(new Error("provider down")) },
    };
    await expect(autoRevokeIfPrincipalGone(failing, "acme", "ghost")).rejects.toThrow("provider down");
  });

  it("revokes what was granted in a session when it ends, and only that", async () => {
    const inSession = mandate({ sessionId: "session-1" });
    const otherSession = mandate({ sessionId: "session-2" });
    const noSession = mandate();
    await insert(inSession, otherSession, noSession);
    const revoked = await revokeForSessionEnd({ store, clock }, "acme", "session-1");
    expect(revoked.map((m) => m.id)).toEqual([inSession.id]);
    expect(await mandates().find(inSession.id)).toMatchObject({
      state: "revoked",
      revokeReason: "the login session it was granted in ended",
      revokedBy: { rule: "revoke_on_session_end" },
    });
    expect((await mandates().find(otherSession.id))?.state).toBe("active");
    expect((await mandates().find(noSession.id))?.state).toBe("active");
    expect(await revokeForSessionEnd({ store, clock }, "acme", "session-1")).toEqual([]);
  });

  it("keeps 0014's columns immutable once granted (supersedes, policy, session, receipt)", async () => {
    const granted = mandate({ receipt: "a.b.c", sessionId: "s", revokeOnAccountEnd: true });
    await insert(granted);
    for (const change of [
      { receipt: "x.y.z" },
      { session_id: null },
      { revoke_on_account_end: 0 },
      { supersedes: "mdt_other" },
    ]) {
      await expect(
        store
          .forTenant("acme")
          .db.updateTable("mandates")
          .set(change)
          .where("tenant_id", "=", "acme")
          .where("id", "=", granted.id)
          .execute(),
        JSON.stringify(change),
      ).rejects.toThrow(/immutable/);
    }
    // One amendment per version: a second mandate superseding the same one is refused by the store.
    await insert(mandate({ supersedes: granted.id }));
    await expect(insert(mandate({ supersedes: granted.id }))).rejects.toThrow();
  });
});
