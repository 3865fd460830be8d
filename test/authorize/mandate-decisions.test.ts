// Authorize deciding on mandates (issue 15, item 6), on SQLite and (MANDATE_TEST_POSTGRES=1)
// PostgreSQL: Mandate runs in this process; mandates are granted through Issue.CreateMandate and
// the agents (each with its own DPoP key) get their tokens by the real RFC 8693 exchange at the
// token endpoint (test/helpers/agents.ts), and present them with a DPoP proof; only a token the
// server would never issue is minted with the tenant's keys. Every decision is asked over native
// gRPC. Covered: the
// policy's `input.mandate` (bounds, chain, remaining usage), mandates refused before the policy
// (revoked, expired, exhausted, unknown, another tenant's, not the token's parties'), consumption
// per decision (50 concurrent consumers of 10 uses, 7-unit spends of a 100 budget, idempotent
// retries, sub-mandates charging their parents, a policy deny charging nothing, BatchCheck per
// check), invalid consumptions refused naming the field, and the decision log agreeing with
// mandate.consumed.v1.
import { randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { JsonObject, MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HOST, type InProcessMandate, startInProcess } from "../../bench/in-process.ts";
import { BadRequestSchema } from "../../gen/google/rpc/error_details_pb.js";
import { Audit } from "../../gen/mandate/v1/audit_pb.js";
import { Authorize, type CheckRequestSchema, type Decision } from "../../gen/mandate/v1/authorize_pb.js";
import { PartyKind } from "../../gen/mandate/v1/common_pb.js";
import { Issue, type MandateSchema } from "../../gen/mandate/v1/issue_pb.js";
import { Tenants } from "../../gen/mandate/v1/tenants_pb.js";
import { buildBundle } from "../../services/authorize/rego/bundle.ts";
import { mintAccessToken } from "../../services/issue/oauth/minting.ts";
import { MandateStandings } from "../../services/shared/mandates/standing.ts";
import { actorChain } from "../../services/shared/oauth/access-token.ts";
import { issuerUrl } from "../../services/shared/oauth/issuer.ts";
import {
  type Agent,
  discover,
  exchangeMandate,
  presentedProof,
  registerAgent,
  type TokenEndpoint,
} from "../helpers/agents.ts";
import { engines } from "../helpers/engines.ts";

type CheckInput = Exclude<MessageInitShape<typeof CheckRequestSchema>, { $typeName: string }>;
type MandateInit = Exclude<MessageInitShape<typeof MandateSchema>, { $typeName: string }>;

const API = "https://api.example.com/";
const DAY = 86_400_000;

// The test policy: allows every action but "forbidden", and hands back what it saw of the mandate
// and the declared consumption as an obligation's parameters.
const POLICY = `package mandate.authz

import rego.v1

# METADATA
# entrypoint: true
decision := {"allow": allow, "reasons": reasons, "obligations": [{"type": "seen", "mandate": seen_mandate, "consume": seen_consume}]}

default allow := false

allow if input.action != "forbidden"

reasons := [] if allow

reasons := [{"code": "forbidden", "message": "the test policy forbids it"}] if not allow

default seen_mandate := {}

seen_mandate := input.mandate

default seen_consume := {}

seen_consume := input.consume
`;

describe.each(engines)("Authorize decides on mandates ($name)", (engine) => {
  let stop: () => Promise<void>;
  let running: InProcessMandate["mandate"];
  let issue: ReturnType<typeof createClient<typeof Issue>>;
  let authorize: ReturnType<typeof createClient<typeof Authorize>>;
  let publicBase: string;
  let agent: string;
  let subAgent: string;
  let acmeAgent: string;
  /** The agents by client id: their keys and secrets. */
  const agents = new Map<string, Agent>();
  /** Each tenant's token endpoint, as its agents discover it. */
  const endpoints = new Map<string, TokenEndpoint>();
  /** Who holds each exchanged token (whose key its DPoP proofs are signed with). */
  const holders = new Map<string, Agent>();

  beforeAll(async () => {
    const store = await engine.open();
    const stack = await startInProcess(["authorize", "introspect", "issue", "audit", "signer", "tenants"], {
      databaseUrl: store.url,
    });
    publicBase = stack.config.publicBaseUrl;
    running = stack.mandate;
    stop = async () => {
      await stack.stop();
      await store.dispose();
    };
    issue = running.clients.get(Issue);
    await running.clients.get(Tenants).createTenant({ tenant: "acme", displayName: "Acme" });
    const newAgent = async (tenant = "demo") => {
      const registered = await registerAgent(issue, { tenant, scope: "orders.read payments.create", resources: [API] });
      agents.set(registered.clientId, registered);
      return registered.clientId;
    };
    agent = await newAgent();
    subAgent = await newAgent();
    acmeAgent = await newAgent("acme");
    for (const tenant of ["demo", "acme"]) endpoints.set(tenant, await discover(issuerUrl(publicBase, tenant)));
    // A resource server of each tenant asks over native gRPC with its mandate:authorize token.
    authorize = createClient(Authorize, grpc(await bearer("demo")));
    const dirPolicy = mkdtempSync(join(tmpdir(), "mandate-decisions-policy-"));
    writeFileSync(join(dirPolicy, "authz.rego"), POLICY);
    const bundle = (await buildBundle(dirPolicy, { revision: "mandate-decisions" })).bytes;
    for (const tenant of ["demo", "acme"]) {
      await running.clients.get(Authorize).pushPolicy({ tenant, bundle, activate: true });
    }
  }, 120_000);

  afterAll(async () => {
    await stop?.();
  });

  function grpc(interceptors: Interceptor[] = []) {
    return createGrpcTransport({ baseUrl: `http://${HOST}:${running.grpcPort}`, interceptors });
  }

  async function bearer(tenant: string): Promise<Interceptor[]> {
    const { client, clientSecret } = await issue.createClient({
      tenant,
      metadata: { grantTypes: ["client_credentials"], scope: "mandate:authorize", resources: [publicBase] },
    });
    const response = await fetch(`${publicBase}/t/${tenant}/oauth2/token`, {
      method: "POST",
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        authorization: `Basic ${Buffer.from(`${client?.clientId}:${clientSecret}`).toString("base64")}`,
      },
      body: new URLSearchParams({ grant_type: "client_credentials", scope: "mandate:authorize", resource: publicBase }),
    });
    const { access_token } = (await response.json()) as { access_token: string };
    return [
      (next) => (request) => {
        request.header.set("authorization", `Bearer ${access_token}`);
        return next(request);
      },
    ];
  }

  function rootMandate(fields: Partial<MandateInit> = {}): MandateInit {
    return {
      principal: { id: "alice", kind: PartyKind.HUMAN },
      agent: { id: agent, kind: PartyKind.AGENT },
      scopes: ["orders.read", "payments.create"],
      resources: [API],
      authorizationDetails: [{ type: "payment_initiation", max_amount: 100, currency: "EUR" }],
      notBefore: timestampFromMs(Date.now() - 1000),
      expireTime: timestampFromMs(Date.now() + DAY),
      usageLimits: [
        { meter: "calls", maximum: 10 },
        { meter: "amount:EUR", maximum: 100 },
      ],
      maxDelegationDepth: 1,
      mayAct: [subAgent],
      ...fields,
    };
  }

  async function grant(fields: Partial<MandateInit> = {}, tenant = "demo") {
    const { mandate } = await issue.createMandate({ tenant, mandate: rootMandate(fields) });
    if (!mandate) throw new Error("no mandate");
    return mandate;
  }

  /** A sub-mandate of `parentId` from alice to the sub-agent, delegable no further; `fields` add to it. */
  async function grantSub(parentId: string, fields: Partial<MandateInit> = {}) {
    const { mandate } = await issue.createMandate({
      tenant: "demo",
      mandate: {
        parentMandateId: parentId,
        principal: { id: "alice", kind: PartyKind.HUMAN },
        agent: { id: subAgent, kind: PartyKind.AGENT },
        maxDelegationDepth: 0,
        ...fields,
      },
    });
    if (!mandate) throw new Error("no sub-mandate");
    return mandate;
  }

  /**
   * The token of the mandate's agent (`actors[0]`), from the real exchange of the mandate at the
   * tenant's token endpoint: sub the principal, act the chain of agents down to it.
   */
  async function tokenFor(mandateId: string, actors: string[], tenant = "demo"): Promise<string> {
    const holder = agents.get(actors[0] as string) as Agent;
    const { accessToken, claims } = await exchangeMandate(endpoints.get(tenant) as TokenEndpoint, holder, mandateId);
    expect(actorChain(claims.act as Record<string, unknown>).map((a) => a.sub)).toEqual(actors);
    holders.set(accessToken, holder);
    return accessToken;
  }

  /**
   * A token the server would never issue — the mandate's, acted on by an agent it was not granted
   * to — minted with the tenant's keys (as the exchange mints its tokens).
   */
  async function forgedToken(mandateId: string, actor: string): Promise<string> {
    const minted = await mintAccessToken(running.keys as NonNullable<typeof running.keys>, {
      tenant: "demo",
      issuer: issuerUrl(publicBase, "demo"),
      clientId: actor,
      subject: "alice",
      audience: [API],
      scope: ["orders.read", "payments.create"],
      ttlMs: 300_000,
      now: Date.now(),
      act: { sub: actor },
      mandateId,
    });
    return minted.token;
  }

  /** A check presenting `token`, with a fresh DPoP proof by its holder's key (a proof is single use). */
  async function withToken(token: string, fields: Partial<CheckInput> = {}): Promise<CheckInput> {
    const holder = holders.get(token);
    return {
      tenant: "demo",
      accessToken: token,
      ...(holder ? { dpop: await presentedProof(holder, token, "POST", `${API}payments`) } : {}),
      action: "payments.create",
      resource: { type: "payment_initiation", id: "p-1", attributes: { amount: 7, currency: "EUR" } },
      ...fields,
    };
  }

  /** A request naming the mandate itself (a resource server that verified the token on its own). */
  function naming(mandateId: string, fields: Partial<CheckInput> = {}): CheckInput {
    return {
      tenant: "demo",
      subject: { id: "alice", kind: PartyKind.HUMAN },
      actors: [{ id: agent, kind: PartyKind.AGENT }],
      client: { id: agent, kind: PartyKind.AGENT },
      action: "payments.create",
      resource: { type: "payment_initiation", id: "p-1" },
      token: { scopes: ["payments.create"], audiences: [API], mandateId },
      ...fields,
    };
  }

  async function check(request: CheckInput): Promise<Decision> {
    const { decision } = await authorize.check(request);
    if (!decision) throw new Error("no decision");
    return decision;
  }

  const seen = (decision: Decision) => decision.obligations.find((o) => o.type === "seen")?.parameters as JsonObject;
  const codes = (decision: Decision) => decision.reasons.map((r) => r.code);

  async function used(mandateId: string, meter: string, tenant = "demo"): Promise<number> {
    const standing = await running.store?.forTenant(tenant).use(MandateStandings).of(mandateId, Date.now());
    return standing?.counters.get(mandateId)?.find((c) => c.meter === meter && c.periodMs === 0)?.used ?? 0;
  }

  async function violation(call: Promise<unknown>) {
    const error = await call.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code, (error as ConnectError).message).toBe(Code.InvalidArgument);
    return (error as ConnectError).findDetails(BadRequestSchema)[0]?.fieldViolations[0];
  }

  let keys = 0;
  const key = () => `key-${++keys}-${randomBytes(4).toString("hex")}`;

  describe("input.mandate", () => {
    it("gives the policy the mandate's bounds, its chain and its remaining usage", async () => {
      const root = await grant();
      const decision = await check(await withToken(await tokenFor(root.id, [agent])));
      expect(decision.allow, JSON.stringify(decision.reasons)).toBe(true);
      const mandate = seen(decision).mandate as JsonObject;
      expect(mandate).toMatchObject({
        id: root.id,
        tenant: "demo",
        state: "active",
        principal: "alice",
        agent,
        parent_id: null,
        parents: [],
        depth: 0,
        max_delegation_depth: 1,
        scopes: ["orders.read", "payments.create"],
        resources: [API],
        authorization_details: [{ type: "payment_initiation", max_amount: 100, currency: "EUR" }],
        remaining: { calls: 10, "amount:EUR": 100 },
        uses_remaining: 10,
      });
      expect(mandate.limits).toEqual([
        { meter: "calls", maximum: 10, period_ms: 0, used: 0, remaining: 10 },
        { meter: "amount:EUR", maximum: 100, period_ms: 0, used: 0, remaining: 100 },
      ]);
      expect(mandate.expires_at).toBe(Number(root.expireTime?.seconds) * 1000 + (root.expireTime?.nanos ?? 0) / 1e6);
    });

    it("shows a sub-mandate with its parents, and what remains across the chain", async () => {
      const root = await grant();
      const sub = await grantSub(root.id, {
        usageLimits: [
          { meter: "calls", maximum: 5 },
          { meter: "amount:EUR", maximum: 50 },
        ],
        mayAct: [],
      });
      // The root spends 60 itself: 40 remain above the sub-mandate's own 50.
      const spent = await check(
        await withToken(await tokenFor(root.id, [agent]), {
          consume: { meter: "amount:EUR", amount: 60, idempotencyKey: key() },
        }),
      );
      expect(spent.allow).toBe(true);
      const decision = await check(await withToken(await tokenFor(sub.id, [subAgent, agent])));
      expect(decision.allow, JSON.stringify(decision.reasons)).toBe(true);
      expect(seen(decision).mandate).toMatchObject({
        id: sub.id,
        agent: subAgent,
        parent_id: root.id,
        parents: [root.id],
        depth: 1,
        remaining: { calls: 5, "amount:EUR": 40 },
      });
    });
  });

  describe("mandates refused before the policy", () => {
    it("refuses a revoked mandate (mandate_revoked), by token and by id", async () => {
      const root = await grant();
      const token = await tokenFor(root.id, [agent]);
      expect((await check(await withToken(token))).allow).toBe(true);
      await issue.revokeMandate({ tenant: "demo", mandateId: root.id, reason: "test" });
      const byId = await check(naming(root.id));
      expect(byId.allow).toBe(false);
      expect(codes(byId)).toEqual(["mandate_revoked"]);
      expect(byId.obligations).toEqual([]);
      // By token: the token's own revocation (introspection's answer) or the mandate's, whichever refuses first.
      const byToken = await check(await withToken(token));
      expect(byToken.allow).toBe(false);
      expect(["mandate_revoked", "token_invalid"]).toContain(codes(byToken)[0]);
    });

    it("refuses a revoked parent's sub-mandate too (the revocation cascades)", async () => {
      const root = await grant();
      const sub = await grantSub(root.id);
      await issue.revokeMandate({ tenant: "demo", mandateId: root.id, reason: "test" });
      const decision = await check(
        naming(sub.id, {
          actors: [
            { id: subAgent, kind: PartyKind.AGENT },
            { id: agent, kind: PartyKind.AGENT },
          ],
        }),
      );
      expect(codes(decision)).toEqual(["mandate_revoked"]);
    });

    it("refuses an expired mandate (mandate_expired)", async () => {
      const root = await grant({ expireTime: timestampFromMs(Date.now() + 1500) });
      expect((await check(naming(root.id))).allow).toBe(true);
      await new Promise((resolve) => setTimeout(resolve, 1600));
      const decision = await check(naming(root.id));
      expect(decision.allow).toBe(false);
      expect(codes(decision)).toEqual(["mandate_expired"]);
    });

    it("refuses an exhausted mandate (mandate_exhausted), even without a consumption", async () => {
      const root = await grant({ usageLimits: [{ meter: "calls", maximum: 2 }] });
      for (let i = 0; i < 2; i++) {
        expect((await check(naming(root.id, { consume: { amount: 1, idempotencyKey: key() } }))).allow).toBe(true);
      }
      const decision = await check(naming(root.id));
      expect(codes(decision)).toEqual(["mandate_exhausted"]);
      expect(decision.reasons[0]?.message).toContain("calls");
    });

    it("refuses a mandate that does not exist, or is another tenant's (mandate_not_found), charging nothing", async () => {
      expect(codes(await check(naming("mdt_000000000000nonexistentmandate00")))).toEqual(["mandate_not_found"]);
      const theirs = await grant({ agent: { id: acmeAgent, kind: PartyKind.AGENT }, mayAct: [] }, "acme");
      const crossing = await check(
        naming(theirs.id, {
          actors: [{ id: acmeAgent, kind: PartyKind.AGENT }],
          consume: { amount: 1, idempotencyKey: key() },
        }),
      );
      expect(codes(crossing)).toEqual(["mandate_not_found"]);
      expect(await used(theirs.id, "calls", "acme")).toBe(0);
      // Acme's token presented to demo's Authorize: not this tenant's token.
      const foreign = await check(
        await withToken(await tokenFor(theirs.id, [acmeAgent], "acme"), {
          consume: { amount: 1, idempotencyKey: key() },
        }),
      );
      expect(codes(foreign)).toEqual(["token_wrong_tenant"]);
      expect(await used(theirs.id, "calls", "acme")).toBe(0);
    });

    it("refuses a mandate that is not the subject's or not the acting agent's (mandate_mismatch)", async () => {
      const root = await grant();
      const bob = await check(naming(root.id, { subject: { id: "bob", kind: PartyKind.HUMAN } }));
      expect(codes(bob)).toEqual(["mandate_mismatch"]);
      const other = await check(naming(root.id, { actors: [{ id: subAgent, kind: PartyKind.AGENT }] }));
      expect(codes(other)).toEqual(["mandate_mismatch"]);
      const token = await forgedToken(root.id, subAgent);
      expect(codes(await check(await withToken(token)))).toEqual(["mandate_mismatch"]);
    });
  });

  describe("consumption per decision", () => {
    // A consumer that reads the mandate after the tenth use is refused before the policy (mandate_exhausted); one
    // that read it before is refused when its consumption would pass the limit (mandate_usage_exhausted).
    it("allows exactly 10 of 50 concurrent consumers of 10 uses; the others are refused as exhausted", async () => {
      const root = await grant();
      const token = await tokenFor(root.id, [agent]);
      const decisions = await Promise.all(
        Array.from({ length: 50 }, async () =>
          check(await withToken(token, { consume: { amount: 1, idempotencyKey: key() } })),
        ),
      );
      expect(decisions.filter((d) => d.allow)).toHaveLength(10);
      for (const denied of decisions.filter((d) => !d.allow)) {
        expect(["mandate_usage_exhausted", "mandate_exhausted"]).toContain(codes(denied)[0]);
      }
      expect(await used(root.id, "calls")).toBe(10);
      for (const allowed of decisions.filter((d) => d.allow)) {
        expect(allowed.consumption).toMatchObject({ mandateId: root.id, meter: "calls", amount: 1, replayed: false });
      }
    }, 60_000);

    it("never spends more than a 100 budget with 50 concurrent 7-unit spends", async () => {
      const root = await grant();
      const token = await tokenFor(root.id, [agent]);
      const decisions = await Promise.all(
        Array.from({ length: 50 }, async () =>
          check(await withToken(token, { consume: { meter: "amount:EUR", amount: 7, idempotencyKey: key() } })),
        ),
      );
      expect(decisions.filter((d) => d.allow)).toHaveLength(14);
      expect(await used(root.id, "amount:EUR")).toBe(98);
      const refused = decisions.find((d) => !d.allow) as Decision;
      expect(codes(refused)).toEqual(["mandate_usage_exhausted"]);
      expect(refused.reasons[0]?.message).toContain("amount:EUR");
    }, 60_000);

    it("counts a retry with the same key once, and refuses the key for another amount", async () => {
      const root = await grant();
      const token = await tokenFor(root.id, [agent]);
      const consume = { meter: "amount:EUR", amount: 30, idempotencyKey: key() };
      const first = await check(await withToken(token, { consume }));
      const again = await check(await withToken(token, { consume }));
      expect([first.allow, again.allow]).toEqual([true, true]);
      expect(first.consumption?.replayed).toBe(false);
      expect(again.consumption).toMatchObject({ replayed: true, amount: 30 });
      expect(again.consumption?.counters).toEqual(first.consumption?.counters);
      expect(first.decisionId).not.toBe(again.decisionId);
      expect(await used(root.id, "amount:EUR")).toBe(30);
      const conflict = await check(await withToken(token, { consume: { ...consume, amount: 31 } }));
      expect(codes(conflict)).toEqual(["consumption_conflict"]);
      expect(await used(root.id, "amount:EUR")).toBe(30);
    });

    it("charges a sub-mandate's consumption to its parent as well", async () => {
      const root = await grant();
      const sub = await grantSub(root.id, {
        usageLimits: [
          { meter: "calls", maximum: 5 },
          { meter: "amount:EUR", maximum: 50 },
        ],
      });
      const subId = sub.id;
      const decision = await check(
        await withToken(await tokenFor(subId, [subAgent, agent]), {
          consume: { meter: "amount:EUR", amount: 20, idempotencyKey: key() },
        }),
      );
      expect(decision.allow).toBe(true);
      expect(decision.consumption?.counters.map((c) => [c.mandateId, c.used, c.maximum])).toEqual([
        [root.id, 20, 100],
        [subId, 20, 50],
      ]);
      expect(await used(root.id, "amount:EUR")).toBe(20);
      expect(await used(subId, "amount:EUR")).toBe(20);
      // 31 more would pass the sub-mandate's 50 (the root's 100 has room): refused, nothing charged anywhere.
      const over = await check(
        await withToken(await tokenFor(subId, [subAgent, agent]), {
          consume: { meter: "amount:EUR", amount: 31, idempotencyKey: key() },
        }),
      );
      expect(codes(over)).toEqual(["mandate_usage_exhausted"]);
    });

    it("charges nothing when the policy denies, or when no mandate limits the meter", async () => {
      const root = await grant();
      const token = await tokenFor(root.id, [agent]);
      const denied = await check(
        await withToken(token, { action: "forbidden", consume: { amount: 1, idempotencyKey: key() } }),
      );
      expect(codes(denied)).toEqual(["forbidden"]);
      expect(denied.consumption).toBeUndefined();
      expect(await used(root.id, "calls")).toBe(0);
      const unlimited = await check(
        await withToken(token, { consume: { meter: "amount:USD", amount: 1, idempotencyKey: key() } }),
      );
      expect(codes(unlimited)).toEqual(["mandate_meter_unlimited"]);
      // only_if_limited: where no mandate limits the meter, the allow stands and nothing is counted.
      const uncounted = await check(
        await withToken(token, {
          consume: { meter: "amount:USD", amount: 1, idempotencyKey: key(), onlyIfLimited: true },
        }),
      );
      expect(uncounted.allow).toBe(true);
      expect(uncounted.consumption).toBeUndefined();
      expect(await used(root.id, "amount:USD")).toBe(0);
      const plain = await check(await withToken(token));
      expect(plain.allow).toBe(true);
      expect(plain.consumption).toBeUndefined();
      expect(await used(root.id, "calls")).toBe(0);
      // ...and where one does, only_if_limited counts as usual.
      const counted = await check(
        await withToken(token, { consume: { amount: 1, idempotencyKey: key(), onlyIfLimited: true } }),
      );
      expect(counted.consumption?.meter).toBe("calls");
      expect(await used(root.id, "calls")).toBe(1);
    });

    it("shows the policy the declared consumption as input.consume (calls by default)", async () => {
      const root = await grant();
      const idempotencyKey = key();
      const decision = await check(
        await withToken(await tokenFor(root.id, [agent]), { consume: { amount: 1, idempotencyKey } }),
      );
      expect(seen(decision).consume).toEqual({ meter: "calls", amount: 1, idempotency_key: idempotencyKey });
    });

    it("BatchCheck counts each check's consumption on its own", async () => {
      const root = await grant({ usageLimits: [{ meter: "calls", maximum: 2 }] });
      const token = await tokenFor(root.id, [agent]);
      const { decisions } = await authorize.batchCheck({
        tenant: "demo",
        checks: [
          await withToken(token, { consume: { amount: 1, idempotencyKey: key() } }),
          await withToken(token, { action: "forbidden", consume: { amount: 1, idempotencyKey: key() } }),
          await withToken(token, { consume: { amount: 1, idempotencyKey: key() } }),
          await withToken(token, { consume: { amount: 1, idempotencyKey: key() } }),
        ],
      });
      expect(decisions.map((d) => d.allow)).toEqual([true, false, true, false]);
      expect(codes(decisions[1] as Decision)).toEqual(["forbidden"]);
      expect(["mandate_usage_exhausted", "mandate_exhausted"]).toContain(codes(decisions[3] as Decision)[0]);
      expect(await used(root.id, "calls")).toBe(2);
    });

    it("logs the decision and the consumption in agreement: mandate.consumed.v1 names the allowing decision", async () => {
      const root = await grant();
      const decision = await check(
        await withToken(await tokenFor(root.id, [agent]), {
          consume: { meter: "amount:EUR", amount: 12, idempotencyKey: key() },
        }),
      );
      expect(decision.allow).toBe(true);
      const audit = running.clients.get(Audit);
      let types: string[] = [];
      let events: Awaited<ReturnType<typeof audit.query>>["entries"] = [];
      for (let i = 0; i < 100 && !(types.includes("mandate.consumed.v1") && types.includes("authz.decision.v1")); i++) {
        events = (await audit.query({ tenant: "demo", mandateId: root.id })).entries;
        types = events.map((e) => e.event?.type ?? "");
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const consumed = events.find((e) => e.event?.type === "mandate.consumed.v1")?.event;
      const logged = events.find((e) => e.event?.type === "authz.decision.v1")?.event;
      expect(consumed?.details).toMatchObject({
        amount: 12,
        meter: "amount:EUR",
        by: { decision_id: decision.decisionId },
      });
      expect(logged?.details).toMatchObject({
        decision_id: decision.decisionId,
        allow: true,
        input: { consume: { meter: "amount:EUR", amount: 12 } },
      });
    });
  });

  describe("invalid consumptions", () => {
    it("refuses invalid fields with INVALID_ARGUMENT naming the field", async () => {
      const root = await grant();
      const token = await tokenFor(root.id, [agent]);
      const cases: Array<[CheckInput["consume"], string]> = [
        [{ amount: 0, idempotencyKey: "k" }, "consume.amount"],
        [{ amount: -1, idempotencyKey: "k" }, "consume.amount"],
        [{ amount: Number.NaN, idempotencyKey: "k" }, "consume.amount"],
        [{ amount: Number.POSITIVE_INFINITY, idempotencyKey: "k" }, "consume.amount"],
        [{ amount: 1, idempotencyKey: "" }, "consume.idempotency_key"],
        [{ amount: 1, idempotencyKey: "k".repeat(129) }, "consume.idempotency_key"],
        [{ amount: 1, idempotencyKey: "with space" }, "consume.idempotency_key"],
        [{ amount: 1, idempotencyKey: "k", meter: "amount EUR" }, "consume.meter"],
        [{ amount: 1, idempotencyKey: "k", meter: "m".repeat(65) }, "consume.meter"],
      ];
      for (const [consume, field] of cases) {
        const found = await violation(authorize.check(await withToken(token, { consume })));
        expect(found?.field, JSON.stringify(consume)).toBe(field);
      }
      expect(await used(root.id, "calls")).toBe(0);
    });

    it("refuses a consumption without a mandate: INVALID_ARGUMENT, in a batch before any check is counted", async () => {
      const request = naming("", { token: { scopes: ["payments.create"], audiences: [API] } });
      const ruled = await violation(authorize.check({ ...request, consume: { amount: 1, idempotencyKey: key() } }));
      expect(ruled?.reason).toBe("check.consume_needs_mandate");
      // A verified token without mandate_id (client credentials).
      const plain = await issue.createClient({
        tenant: "demo",
        metadata: { grantTypes: ["client_credentials"], scope: "orders.read", resources: [API] },
      });
      const response = await fetch(`${publicBase}/t/demo/oauth2/token`, {
        method: "POST",
        headers: {
          "content-type": "application/x-www-form-urlencoded",
          authorization: `Basic ${Buffer.from(`${plain.client?.clientId}:${plain.clientSecret}`).toString("base64")}`,
        },
        body: new URLSearchParams({ grant_type: "client_credentials", resource: API }),
      });
      const { access_token } = (await response.json()) as { access_token: string };
      const single = await violation(
        authorize.check(await withToken(access_token, { consume: { amount: 1, idempotencyKey: key() } })),
      );
      expect(single?.field).toBe("consume");
      const root = await grant();
      const batch = await violation(
        authorize.batchCheck({
          tenant: "demo",
          checks: [
            await withToken(await tokenFor(root.id, [agent]), { consume: { amount: 1, idempotencyKey: key() } }),
            await withToken(access_token, { consume: { amount: 1, idempotencyKey: key() } }),
          ],
        }),
      );
      expect(batch?.field).toBe("checks[1].consume");
      expect(await used(root.id, "calls")).toBe(0);
    });
  });
});
