// The decision engine over a real store (SQLite): decisions with the default policy, the fail-closed
// reason codes, lazy per-tenant loading shared by concurrent first decisions, hot reload that keeps
// the old revision when the new one cannot load, and the decision log on the audit outbox (enqueued,
// masked, hashed; a failed write never changes a decision). The policy source is an in-memory one:
// the registry has its own tests. The store is SQLite, or PostgreSQL under `npm run test:postgres`.

import { createHash } from "node:crypto";
import { Writable } from "node:stream";
import canonicalize from "canonicalize";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { DecisionInput } from "../../services/authorize/engine/decision-input.ts";
import { inputDigest } from "../../services/authorize/engine/decision-log.ts";
import { DecisionEngine } from "../../services/authorize/engine/engine.ts";
import { DECISION_ENTRYPOINT } from "../../services/authorize/engine/instance-pool.ts";
import {
  type ActivePolicy,
  PolicyMissingError,
  type PolicySource,
} from "../../services/authorize/engine/policy-source.ts";
import { FAILURE_RETRY_MS } from "../../services/authorize/engine/tenant-policies.ts";
import { buildBundle, compileRego } from "../../services/authorize/rego/index.ts";
import { loadConfig } from "../../services/shared/config.ts";
import { createLogger } from "../../services/shared/logger.ts";
import { Store } from "../../services/shared/store/store.ts";
import { engines } from "../helpers/engines.ts";

/** Tenants' policies held in memory, as the registry would serve them; counts reads. */
class MemorySource implements PolicySource {
  readonly policies = new Map<string, ActivePolicy | Error>();
  readonly reads = new Map<string, number>();
  readonly #listeners = new Set<(tenant: string) => void>();
  async active(tenant: string): Promise<ActivePolicy> {
    this.reads.set(tenant, (this.reads.get(tenant) ?? 0) + 1);
    await new Promise((resolve) => setTimeout(resolve, 5)); // a store read takes a moment
    const policy = this.policies.get(tenant);
    if (policy === undefined) throw new PolicyMissingError(`tenant ${tenant} has no policy`);
    if (policy instanceof Error) throw policy;
    return policy;
  }
  onChange(listener: (tenant: string) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
  change(tenant: string, policy: ActivePolicy | Error | undefined): void {
    if (policy === undefined) this.policies.delete(tenant);
    else this.policies.set(tenant, policy);
    for (const listener of this.#listeners) listener(tenant);
  }
}

const TENANTS = ["acme", "beta", "gamma", "delta", "omega"];
let store: Store;
let database: Awaited<ReturnType<(typeof engines)[number]["open"]>>;
let defaultPolicy: ActivePolicy;
let now = Date.UTC(2026, 10, 30, 12);
const logLines: string[] = [];
const logger = createLogger(
  "warn",
  new Writable({
    write(chunk, _encoding, done) {
      logLines.push(String(chunk));
      done();
    },
  }),
);

function compiled(revision: string, source: string, data: Record<string, unknown> = {}): ActivePolicy {
  const { wasm } = compileRego({ modules: { "p.rego": source }, entrypoints: [DECISION_ENTRYPOINT] });
  return { revision, version: 1, wasm, data };
}

const ALLOW_ALL = `package mandate.authz
import rego.v1
decision := {"allow": true, "reasons": ["open"]}
`;
const DENY_ALL = `package mandate.authz
import rego.v1
decision := {"allow": false, "reasons": [{"code": "closed", "message": "closed"}]}
`;

function engineWith(
  source: PolicySource,
  mask: string[] = [],
  extra: Partial<ConstructorParameters<typeof DecisionEngine>[0]> = {},
) {
  const settings = { ...loadConfig({ env: {} }).authorize, decisionLogMask: mask };
  return new DecisionEngine({ source, store, logger, settings, now: () => now, ...extra });
}

function input(fields: Partial<DecisionInput> = {}): DecisionInput {
  return {
    version: 1,
    tenant: "acme",
    subject: { id: "alice", kind: "human", attributes: { clearance: 1, ssn: "123-45-6789" } },
    actors: [{ id: "agent-1", kind: "agent", attributes: { tenant: "acme" } }],
    client: { id: "agent-client", kind: "service", attributes: {} },
    action: "orders.read",
    resource: { type: "order", id: "o-1", attributes: { audience: "https://api.example.com/" } },
    token: { scopes: ["orders.read"], aud: ["https://api.example.com/"], authorization_details: [], jti: "j-1" },
    context: { time: now, request_id: "req-1", ip: "192.0.2.7" },
    ...fields,
  };
}

async function outboxEntry(eventId: string) {
  return store.db.selectFrom("audit_outbox").selectAll().where("event_id", "=", eventId).executeTakeFirst();
}

beforeAll(async () => {
  // SQLite in `npm test`, PostgreSQL under `npm run test:postgres`.
  database = await (engines.at(-1) as (typeof engines)[number]).open();
  store = Store.open({ url: database.url });
  await store.migrate();
  for (const id of TENANTS) {
    await store.db.insertInto("tenants").values({ id, display_name: id, created_at: 0 }).execute();
  }
  const { bundle } = await buildBundle("policies/default");
  defaultPolicy = {
    revision: bundle.manifest.revision,
    version: 1,
    wasm: bundle.wasm,
    data: bundle.data as object as Record<string, unknown>,
  };
}, 30_000);

afterAll(async () => {
  await store?.close();
  await database?.dispose();
});

describe("decisions", () => {
  it("allows and denies with the default policy, each decision with its own UUIDv7 id and the revision", async () => {
    const source = new MemorySource();
    source.policies.set("acme", defaultPolicy);
    const engine = engineWith(source);
    const allowed = await engine.decide("acme", input());
    expect(allowed).toMatchObject({
      allow: true,
      reasons: [],
      obligations: [],
      policyRevision: defaultPolicy.revision,
    });
    expect(allowed.decisionId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(allowed.decideTime).toBe(now);
    const denied = await engine.decide("acme", input({ action: "orders.delete" }));
    expect(denied.allow).toBe(false);
    expect(denied.reasons).toEqual([{ code: "scope_missing", message: "the action is outside the token's scopes" }]);
    expect(denied.decisionId).not.toBe(allowed.decisionId);
    // Obligations come through normalised: step-up for a classified resource without mfa.
    const classified = input({
      resource: { type: "order", id: "o-2", attributes: { audience: "https://api.example.com/", classification: 3 } },
      subject: { id: "alice", kind: "human", attributes: { clearance: 3 } },
    });
    expect((await engine.decide("acme", classified)).obligations).toEqual([
      { type: "step_up", parameters: { acr_values: "urn:mandate:acr:mfa" } },
    ]);
    await engine.stop();
  });

  it("loads a tenant once however many first decisions arrive together", async () => {
    const source = new MemorySource();
    source.policies.set("beta", compiled("b1", ALLOW_ALL));
    const engine = engineWith(source);
    const decisions = await Promise.all(Array.from({ length: 20 }, () => engine.decide("beta", input())));
    expect(decisions.every((d) => d.allow)).toBe(true);
    expect(source.reads.get("beta")).toBe(1);
    expect(engine.pool.size).toBe(1);
    await engine.stop();
  });
});

describe("failing closed", () => {
  it("denies policy_missing for a tenant without any policy, remembers it briefly, and forgets it on a change", async () => {
    const source = new MemorySource();
    const engine = engineWith(source);
    engine.start();
    const missing = await engine.decide("gamma", input());
    expect(missing).toMatchObject({ allow: false, reasons: [{ code: "policy_missing" }], policyRevision: "" });
    await engine.decide("gamma", input());
    expect(source.reads.get("gamma")).toBe(1); // not read again on every request
    source.change("gamma", compiled("g1", ALLOW_ALL));
    expect((await engine.decide("gamma", input())).allow).toBe(true);
    await engine.stop();
  });

  it("retries a failed load only after FAILURE_RETRY_MS", async () => {
    const source = new MemorySource();
    source.policies.set("delta", { ...compiled("d1", ALLOW_ALL), wasm: new TextEncoder().encode("not wasm at all") });
    const engine = engineWith(source);
    const corrupt = await engine.decide("delta", input());
    expect(corrupt).toMatchObject({ allow: false, reasons: [{ code: "policy_error" }] });
    await engine.decide("delta", input());
    expect(source.reads.get("delta")).toBe(1);
    source.policies.set("delta", compiled("d2", ALLOW_ALL)); // fixed, without a notification
    now += FAILURE_RETRY_MS + 1;
    expect((await engine.decide("delta", input())).allow).toBe(true);
    await engine.stop();
  });

  it("denies policy_error when the source cannot be read, never a throw, and reads again next time", async () => {
    const source = new MemorySource();
    source.policies.set("omega", new Error("connection refused"));
    const engine = engineWith(source);
    const decision = await engine.decide("omega", input());
    expect(decision).toMatchObject({ allow: false, reasons: [{ code: "policy_error" }] });
    expect(decision.reasons[0]?.message).not.toMatch(/connection refused/); // internals stay in the log
    // A read that failed is not remembered: the store back, the next decision reads again.
    source.policies.set("omega", compiled("o1", ALLOW_ALL));
    expect(await engine.decide("omega", input())).toMatchObject({ allow: true, policyRevision: "o1" });
    expect(source.reads.get("omega")).toBe(2);
    await engine.stop();
  });

  it.each([
    ["a string", `decision := "allow"`],
    ["allow not a boolean", `decision := {"allow": "yes"}`],
    ["no decision (undefined)", `decision := {"allow": true} if false`],
  ])("denies policy_result_invalid for %s", async (_name, rule) => {
    const source = new MemorySource();
    source.policies.set("acme", compiled("bad", `package mandate.authz\nimport rego.v1\n${rule}\n`));
    const engine = engineWith(source);
    expect(await engine.decide("acme", input())).toMatchObject({
      allow: false,
      reasons: [{ code: "policy_result_invalid" }],
      policyRevision: "bad",
    });
    await engine.stop();
  });
});

describe("hot reload", () => {
  it("swaps in a changed revision once it loads, and keeps the old one when the new one cannot load", async () => {
    const source = new MemorySource();
    source.policies.set("acme", compiled("v1", ALLOW_ALL));
    const engine = engineWith(source);
    engine.start();
    expect(await engine.decide("acme", input())).toMatchObject({ allow: true, policyRevision: "v1" });
    source.change("acme", compiled("v2", DENY_ALL));
    // Until v2 has loaded, v1 decides; then v2.
    await engine.policies.settled();
    expect(await engine.decide("acme", input())).toMatchObject({ allow: false, policyRevision: "v2" });
    logLines.length = 0;
    source.change("acme", { ...compiled("v3", ALLOW_ALL), wasm: new Uint8Array([1, 2, 3]) });
    await engine.policies.settled();
    expect(await engine.decide("acme", input())).toMatchObject({ allow: false, policyRevision: "v2" });
    expect(logLines.join("")).toMatch(/previous revision keeps deciding/);
    // Notifications stop with the engine.
    await engine.stop();
    source.change("acme", compiled("v4", ALLOW_ALL));
    expect(engine.pool.size).toBe(0);
  });

  it("reports not ready until the default policy has loaded, and why it has not", async () => {
    const source = new MemorySource();
    let release: (policy: ActivePolicy) => void = () => {};
    const pending = new Promise<ActivePolicy>((resolve) => (release = resolve));
    const engine = engineWith(source, [], { defaultPolicy: () => pending });
    engine.start();
    expect(engine.readiness()["authorize.policy"]).toMatch(/^not ready/);
    release(defaultPolicy);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(engine.readiness()).toEqual({ "authorize.policy": "ok" });
    // Tenants on the default policy share the revision loaded at start.
    source.policies.set("acme", defaultPolicy);
    await engine.decide("acme", input());
    expect(engine.pool.revisions).toBe(1);
    await engine.stop();

    const broken = engineWith(source, [], {
      defaultPolicy: async () => ({ ...defaultPolicy, wasm: new Uint8Array(8) }),
    });
    broken.start();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(broken.readiness()["authorize.policy"]).toMatch(/^not ready: the default policy did not load/);
    await broken.stop();
  });
});

describe("the decision log", () => {
  it("enqueues authz.decision.v1 with parties, the masked input without party ids, and the unmasked input's SHA-256", async () => {
    const source = new MemorySource();
    source.policies.set("acme", defaultPolicy);
    const engine = engineWith(source, ["/context/ip", "/subject/attributes/ssn", "/actors/*/attributes"]);
    const asked = input({ token: { ...input().token, mandate_id: "m-1" } });
    const decision = await engine.decide("acme", asked, { callerRequestId: "req-1" });
    await engine.decider.drain();
    const row = await outboxEntry(decision.decisionId);
    expect(row?.type).toBe("authz.decision.v1");
    expect(row?.tenant_id).toBe("acme");
    const payload = JSON.parse(row?.payload as string);
    expect(payload).toMatchObject({
      decision_id: decision.decisionId,
      allow: true,
      reasons: [],
      obligations: [],
      policy_revision: defaultPolicy.revision,
      request_id: "req-1",
    });
    const canonical = canonicalize(asked) as string;
    expect(payload.input_sha256).toBe(createHash("sha256").update(canonical).digest("base64url"));
    expect(payload.input_sha256).toBe(inputDigest(asked));
    const logged = JSON.stringify(payload.input);
    for (const secret of ["192.0.2.7", "123-45-6789", "alice", "agent-1", "agent-client"])
      expect(logged).not.toContain(secret);
    expect(payload.input.subject).toEqual({ kind: "human" }); // a person's attributes are never logged
    expect(payload.input.actors).toEqual([{ kind: "agent" }]);
    expect(payload.input.context).toEqual({ time: now, request_id: "req-1" });
    expect(JSON.parse(row?.parties as string)).toEqual({
      subject: { id: "alice", kind: "PARTY_KIND_HUMAN" },
      actors: [{ id: "agent-1", kind: "PARTY_KIND_AGENT" }],
      client: { id: "agent-client", kind: "PARTY_KIND_SERVICE" },
      action: "orders.read",
      resource: { type: "order", id: "o-1" },
      outcome: "OUTCOME_SUCCESS",
      mandateId: "m-1",
    });
    await engine.stop();
  });

  it("logs a refusal made before any policy ran, without parties it could not verify", async () => {
    const engine = engineWith(new MemorySource());
    const refused = engine.refuse(
      "acme",
      input({ subject: { id: "", kind: "unspecified", attributes: {} }, actors: [], client: undefined }),
      { code: "token_expired", message: "the access token has expired" },
    );
    expect(refused).toMatchObject({ allow: false, reasons: [{ code: "token_expired" }], policyRevision: "" });
    await engine.decider.drain();
    const row = await outboxEntry(refused.decisionId);
    expect(JSON.parse(row?.parties as string)).toMatchObject({
      outcome: "OUTCOME_DENIED",
      reason: "the access token has expired",
    });
    expect(JSON.parse(row?.parties as string).subject).toBeUndefined();
    await engine.stop();
  });

  it("writes the entries of a flush interval together once it ends, and all at once on drain (shutdown)", async () => {
    const source = new MemorySource();
    source.policies.set("acme", compiled("a1", ALLOW_ALL));
    const engine = engineWith(source, [], {
      settings: { ...loadConfig({ env: {} }).authorize, decisionLogFlush: 200 },
    });
    await engine.decide("acme", input()); // the policy loaded first (its load has timers of its own)
    await engine.decider.drain();
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    try {
      const first = await engine.decide("acme", input());
      const second = await engine.decide("acme", input());
      await new Promise((resolve) => setImmediate(resolve));
      // Both wait for the interval: nothing is in the outbox yet.
      expect(await outboxEntry(first.decisionId)).toBeUndefined();
      vi.advanceTimersByTime(200);
      await vi.waitFor(async () => expect(await outboxEntry(second.decisionId)).toBeDefined());
      expect(await outboxEntry(first.decisionId)).toBeDefined();
    } finally {
      vi.useRealTimers();
    }
    // A stop does not wait for the interval: drain writes what waits.
    const third = await engine.decide("acme", input());
    expect(await outboxEntry(third.decisionId)).toBeUndefined();
    await engine.decider.drain();
    expect(await outboxEntry(third.decisionId)).toBeDefined();
    await engine.stop();
  });

  it("never turns a failed log write into an error or a different decision: it is logged", async () => {
    const source = new MemorySource();
    source.policies.set("unregistered", compiled("u1", ALLOW_ALL));
    const engine = engineWith(source);
    logLines.length = 0;
    // No such tenant row: the outbox insert fails its foreign key.
    const decision = await engine.decide("unregistered", input({ tenant: "unregistered" }));
    expect(decision.allow).toBe(true);
    await engine.decider.drain();
    expect(await outboxEntry(decision.decisionId)).toBeUndefined();
    expect(logLines.join("")).toMatch(/decision log entry could not be enqueued/);
    await engine.stop();
  });
});
