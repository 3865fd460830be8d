// Housekeeping of backchannel mandate requests (request-housekeeping.ts), on every engine (SQLite;
// PostgreSQL under MANDATE_TEST_POSTGRES=1): rows past retention after they expired or finished
// (denied, issued) are deleted in every tenant; waiting, approved-not-yet-polled and recently
// finished ones stay; the periodic job prunes at start and stops cleanly.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  PRUNE_EVERY_MS,
  pruneMandateRequests,
  REQUEST_RETENTION_MS,
  startRequestHousekeeping,
} from "../../services/issue/mandates/request-housekeeping.ts";
import { type MandateRequest, MandateRequestStore } from "../../services/issue/mandates/request-store.ts";
import { ManualClock } from "../../services/shared/clock.ts";
import { createLogger } from "../../services/shared/logger.ts";
import type { Store } from "../../services/shared/store/store.ts";
import { engines } from "../helpers/engines.ts";
import { openStore } from "../helpers/store.ts";

const T0 = Date.UTC(2026, 5, 1);
const MINUTE = 60_000;
let counter = 0;

function request(fields: Partial<MandateRequest> = {}): MandateRequest {
  counter++;
  return {
    id: `mrq_prune_${counter}`,
    clientId: "agent-1",
    principal: "dev-alice",
    ask: {
      bounds: {
        scopes: ["orders.read"],
        resources: [],
        authorizationDetails: [],
        notBefore: T0,
        expiresAt: T0 + 86_400_000,
        maxTokenTtlMs: null,
        usageLimits: [],
        maxDelegationDepth: 0,
        mayAct: [],
      },
      notBeforeAsked: false,
    },
    bindingMessage: null,
    state: "requested",
    intervalS: 5,
    lastPollAt: null,
    createdAt: T0,
    expiresAt: T0 + 10 * MINUTE,
    mandateId: null,
    decidedBy: null,
    decidedAt: null,
    approval: null,
    ...fields,
  };
}

describe.each(engines)("mandate request housekeeping: $name", (engine) => {
  let store: Store;
  let close: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    ({ store, close } = await openStore(engine, {
      tenants: { acme: "acme", globex: "globex" },
      createdAt: T0,
      poolSize: 4,
    }));
  });
  afterAll(async () => {
    await close?.();
  });

  const requests = (tenant: string) => store.forTenant(tenant).use(MandateRequestStore);
  const insert = async (tenant: string, ...rows: MandateRequest[]) => {
    for (const row of rows) await requests(tenant).insert(row, `auth-${row.id}`);
  };
  /** Decides a request as the pending page and the token endpoint would. */
  const decide = async (tenant: string, id: string, state: "denied" | "issued", at: number) => {
    const approval = { authTime: at, acr: "aal1", amr: ["pwd"], claims: {} };
    const decision =
      state === "denied" ? { state: "denied" as const } : { state: "approved" as const, mandateId: "mdt_x", approval };
    expect(await requests(tenant).decide(id, "dev-alice", decision, at)).toBe(true);
    if (state === "issued") expect(await requests(tenant).markIssued(id)).toBe(true);
  };

  it("deletes requests past retention after they expired or finished, in every tenant, and nothing else", async () => {
    const now = T0 + REQUEST_RETENTION_MS + 60 * MINUTE;
    const expiredLongAgo = request();
    const expiredRecently = request({ expiresAt: now - MINUTE, createdAt: now - 5 * MINUTE });
    const waiting = request({ expiresAt: now + 5 * MINUTE, createdAt: now - MINUTE });
    const deniedLongAgo = request({ expiresAt: now + 5 * MINUTE });
    const issuedLongAgo = request({ expiresAt: now + 5 * MINUTE });
    const approvedLongAgo = request({ expiresAt: now + 5 * MINUTE });
    const otherTenant = request();
    await insert("acme", expiredLongAgo, expiredRecently, waiting, deniedLongAgo, issuedLongAgo, approvedLongAgo);
    await insert("globex", otherTenant);
    await decide("acme", deniedLongAgo.id, "denied", T0 + MINUTE);
    await decide("acme", issuedLongAgo.id, "issued", T0 + MINUTE);
    // Approved but its tokens not collected yet: kept until it expires (the agent may still poll).
    const approval = { authTime: T0, acr: "aal1", amr: ["pwd"], claims: {} };
    await requests("acme").decide(approvedLongAgo.id, "dev-alice", { state: "approved", mandateId: "m", approval }, T0);

    expect(await pruneMandateRequests(store, now)).toBe(4);
    const left = async (tenant: string, ids: string[]) =>
      (await Promise.all(ids.map((id) => requests(tenant).find(id)))).map((r) => r?.id);
    expect(await left("acme", [expiredLongAgo.id, deniedLongAgo.id, issuedLongAgo.id])).toEqual([
      undefined,
      undefined,
      undefined,
    ]);
    expect(await left("globex", [otherTenant.id])).toEqual([undefined]);
    expect(await left("acme", [expiredRecently.id, waiting.id, approvedLongAgo.id])).toEqual([
      expiredRecently.id,
      waiting.id,
      approvedLongAgo.id,
    ]);
    // Nothing left to prune at the same time.
    expect(await pruneMandateRequests(store, now)).toBe(0);
    // Just inside retention, the recently expired one stays; past it, it goes.
    expect(await pruneMandateRequests(store, now - MINUTE + REQUEST_RETENTION_MS - 1)).toBe(0);
    expect(await pruneMandateRequests(store, now - MINUTE + REQUEST_RETENTION_MS)).toBe(1);
  });

  it("the job prunes when it starts and stops cleanly", async () => {
    const clock = new ManualClock(T0 + 10 * REQUEST_RETENTION_MS);
    const old = request({ createdAt: T0 + 5 * REQUEST_RETENTION_MS, expiresAt: T0 + 5 * REQUEST_RETENTION_MS });
    await insert("acme", old);
    const job = startRequestHousekeeping({ store, clock, logger: createLogger("silent") });
    await expect.poll(async () => (await requests("acme").find(old.id)) === undefined).toBe(true);
    await job.stop();
    expect(PRUNE_EVERY_MS).toBeGreaterThan(0);
  });
});
