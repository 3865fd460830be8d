// Issue.CreateMandate / GetMandate / ListMandates / RevokeMandate against a running `mandate dev`
// over native gRPC (the last engine of the run: PostgreSQL under test:postgres): administrative
// grants naming the principal, checks against the agent client, sub-mandates that may only narrow
// (a negative per dimension), revoked and unknown parents, tenants and callers kept apart, states
// computed on read (EXPIRED, EXHAUSTED), cascading revocation, the audit trail by mandate id, and the
// `mandate mandates` CLI round trip.
import type { MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BadRequestSchema, ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { Audit } from "../../gen/mandate/v1/audit_pb.js";
import { PartyKind } from "../../gen/mandate/v1/common_pb.js";
import { Issue, type Mandate, type MandateSchema, MandateState } from "../../gen/mandate/v1/issue_pb.js";
import { Tenants } from "../../gen/mandate/v1/tenants_pb.js";
import { adminClient } from "../helpers/admin.ts";
import { runMandate } from "../helpers/mandate-process.ts";
import { type OAuthServer, registerKeylessAgent, startOAuthServer } from "../helpers/oauth-server.ts";
import { rpcError } from "../helpers/rpc-error.ts";
import { consumeCalls } from "../helpers/store.ts";

/** A Mandate as a plain object (the init shape without the message type). */
type MandateInit = Exclude<MessageInitShape<typeof MandateSchema>, Mandate>;

const API = "https://api.example.com/";
const PAY = "https://pay.example.com/";
const DAY = 86_400_000;

let server: OAuthServer;
let address: string;
let issue: ReturnType<typeof createClient<typeof Issue>>;
let agent: string;
let subAgent: string;
let narrowAgent: string;
/** A client that is not an agent. */
let application: string;

function grpc(interceptors: Interceptor[] = []) {
  return createGrpcTransport({ baseUrl: `http://${address}`, interceptors });
}

beforeAll(async () => {
  server = await startOAuthServer();
  address = server.process.summary.grpc as string;
  issue = server.issue;
  // Agents (clients of kind agent): an owner who answers for them and a key their tokens are bound to.
  const register = (scope: string, resources: string[]) => registerKeylessAgent(server, { scope, resources });
  agent = await register("orders.read orders.write payments.create", [API, PAY]);
  subAgent = await register("orders.read orders.write payments.create", [API, PAY]);
  narrowAgent = await register("orders.read", [API]);
  application = (await server.register({ grantTypes: ["client_credentials"], scope: "orders.read", resources: [API] }))
    .clientId;
  await adminClient(Tenants, address, server.process.adminFile).createTenant({ tenant: "acme", displayName: "Acme" });
}, 60_000);

afterAll(async () => {
  await server?.stop();
});

/** A root mandate from alice to the agent, with every dimension set (sub-mandates can narrow each). */
function rootMandate(fields: Partial<MandateInit> = {}): MandateInit {
  return {
    principal: { id: "alice", kind: PartyKind.HUMAN },
    agent: { id: agent, kind: PartyKind.AGENT },
    scopes: ["orders.read", "payments.create"],
    resources: [API, PAY],
    authorizationDetails: [
      { type: "payment_initiation", max_amount: 100, currency: "EUR" },
      { type: "data_access", datasets: ["orders"], actions: ["read"], locations: [`${API}orders/*`] },
    ],
    notBefore: timestampFromMs(Date.now()),
    expireTime: timestampFromMs(Date.now() + 30 * DAY),
    maxTokenLifetime: durationFromMs(300_000),
    usageLimits: [{ meter: "calls", maximum: 100 }],
    maxDelegationDepth: 2,
    mayAct: [subAgent],
    ...fields,
  };
}

async function create(mandate: MandateInit, tenant = "demo") {
  const { mandate: created } = await issue.createMandate({ tenant, mandate });
  if (!created) throw new Error("no mandate");
  return created;
}

async function violation(call: Promise<unknown>) {
  const error = await rpcError(call);
  expect(error.code, error.message).toBe(Code.InvalidArgument);
  return error.findDetails(BadRequestSchema)[0]?.fieldViolations[0];
}

describe("CreateMandate, GetMandate, ListMandates", () => {
  it("grants a mandate naming the principal and reads it back, active", async () => {
    const created = await create(rootMandate());
    expect(created.id).toMatch(/^mdt_[0-9a-f]{12}[A-Za-z0-9_-]{22}$/);
    expect(created).toMatchObject({
      tenant: "demo",
      principal: { id: "alice", kind: PartyKind.HUMAN },
      agent: { id: agent, kind: PartyKind.AGENT },
      scopes: ["orders.read", "payments.create"],
      state: MandateState.ACTIVE,
      maxDelegationDepth: 2,
      mayAct: [subAgent],
      parentMandateId: "",
    });
    expect(created.authorizationDetails[0]).toEqual({ type: "payment_initiation", max_amount: 100, currency: "EUR" });
    const { mandate } = await issue.getMandate({ tenant: "demo", mandateId: created.id });
    expect(mandate).toEqual(created);
  });

  it("lists by principal, agent and state, page by page", async () => {
    const ids = [];
    for (let i = 0; i < 3; i++)
      ids.push((await create(rootMandate({ principal: { id: "bob", kind: PartyKind.HUMAN } }))).id);
    const seen: string[] = [];
    let pageToken = "";
    do {
      const page = await issue.listMandates({ tenant: "demo", principalId: "bob", page: { pageSize: 2, pageToken } });
      expect(page.mandates.length).toBeLessThanOrEqual(2);
      seen.push(...page.mandates.map((m) => m.id));
      pageToken = page.nextPageToken;
    } while (pageToken);
    expect(seen.sort()).toEqual([...ids].sort());
    const byAgent = await issue.listMandates({ tenant: "demo", agentId: agent, states: [MandateState.ACTIVE] });
    expect(byAgent.mandates.map((m) => m.id)).toEqual(expect.arrayContaining(ids));
    const revoked = await issue.listMandates({ tenant: "demo", principalId: "bob", states: [MandateState.REVOKED] });
    expect(revoked.mandates).toEqual([]);
  });

  it("computes EXPIRED past expire_time and EXHAUSTED when a lifetime limit is used up", async () => {
    const brief = await create(rootMandate({ notBefore: undefined, expireTime: timestampFromMs(Date.now() + 1500) }));
    const limited = await create(rootMandate({ usageLimits: [{ meter: "calls", maximum: 2 }] }));
    await consumeCalls(server.database, limited.id, ["a", "b"]);
    expect((await issue.getMandate({ tenant: "demo", mandateId: limited.id })).mandate?.state).toBe(
      MandateState.EXHAUSTED,
    );
    await new Promise((resolve) => setTimeout(resolve, 1600));
    expect((await issue.getMandate({ tenant: "demo", mandateId: brief.id })).mandate?.state).toBe(MandateState.EXPIRED);
    const expired = await issue.listMandates({
      tenant: "demo",
      states: [MandateState.EXPIRED, MandateState.EXHAUSTED],
    });
    expect(expired.mandates.map((m) => m.id)).toEqual(expect.arrayContaining([brief.id, limited.id]));
    const active = await issue.listMandates({ tenant: "demo", states: [MandateState.ACTIVE] });
    expect(active.mandates.map((m) => m.id)).not.toContain(limited.id);
  });

  it("refuses a client that is not an agent, as the agent and in may_act", async () => {
    const asAgent = await violation(
      issue.createMandate({
        tenant: "demo",
        mandate: rootMandate({ agent: { id: application, kind: PartyKind.AGENT }, mayAct: [] }),
      }),
    );
    expect(asAgent?.field).toBe("mandate.agent.id");
    expect(asAgent?.description).toContain("not an agent");
    const inMayAct = await violation(
      issue.createMandate({ tenant: "demo", mandate: rootMandate({ mayAct: [application] }) }),
    );
    expect(inMayAct?.field).toBe("mandate.may_act[0]");
  });

  it.each<[string, Partial<MandateInit>, string]>([
    [
      "an agent that is not a client of the tenant",
      { agent: { id: "no-such-client", kind: PartyKind.AGENT } },
      "mandate.agent.id",
    ],
    ["a scope the agent's client may not obtain", { scopes: ["admin.all"] }, "mandate.scopes[0]"],
    [
      "a resource the agent's client may not target",
      { resources: ["https://elsewhere.example/"] },
      "mandate.resources[0]",
    ],
    ["no expiry", { expireTime: undefined }, "mandate.expire_time"],
    ["an expiry in the past", { expireTime: timestampFromMs(Date.now() - 1000) }, "mandate.expire_time"],
    [
      "a principal that is not a human",
      { principal: { id: "svc", kind: PartyKind.SERVICE } },
      "mandate.principal.kind",
    ],
    ["no principal", { principal: undefined }, "mandate.principal"],
    [
      "an authorization detail without a type",
      { authorizationDetails: [{ max_amount: 5 }] },
      "mandate.authorization_details[0].type",
    ],
    ["a may_act naming no client", { mayAct: ["ghost"] }, "mandate.may_act[0]"],
    [
      "two limits of one meter and period",
      {
        usageLimits: [
          { meter: "calls", maximum: 1 },
          { meter: "calls", maximum: 2 },
        ],
      },
      "mandate.usage_limits[1]",
    ],
    ["too deep a delegation", { maxDelegationDepth: 17 }, "mandate.max_delegation_depth"],
  ])("refuses %s with INVALID_ARGUMENT naming the field", async (_name, fields, field) => {
    expect((await violation(issue.createMandate({ tenant: "demo", mandate: rootMandate(fields) })))?.field).toBe(field);
  });
});

describe("sub-mandates", () => {
  let parent: Awaited<ReturnType<typeof create>>;
  const sub = (fields: Partial<MandateInit> = {}): MandateInit => ({
    principal: { id: "alice", kind: PartyKind.HUMAN },
    agent: { id: subAgent, kind: PartyKind.AGENT },
    parentMandateId: parent.id,
    maxDelegationDepth: 1,
    ...fields,
  });

  beforeAll(async () => {
    parent = await create(rootMandate());
  });

  it("inherit what they leave unset and may narrow every dimension", async () => {
    const inherited = await create(sub());
    expect(inherited).toMatchObject({
      parentMandateId: parent.id,
      scopes: parent.scopes,
      resources: parent.resources,
      authorizationDetails: parent.authorizationDetails,
      expireTime: parent.expireTime,
      maxTokenLifetime: parent.maxTokenLifetime,
      usageLimits: parent.usageLimits,
      mayAct: parent.mayAct,
      maxDelegationDepth: 1,
    });
    const narrowed = await create(
      sub({
        scopes: ["orders.read"],
        resources: [API],
        authorizationDetails: [
          { type: "data_access", datasets: ["orders"], actions: ["read"], locations: [`${API}orders/42`] },
        ],
        expireTime: timestampFromMs(Date.now() + DAY),
        maxTokenLifetime: durationFromMs(60_000),
        usageLimits: [
          { meter: "calls", maximum: 10, period: durationFromMs(DAY) },
          { meter: "calls", maximum: 50 },
        ],
        maxDelegationDepth: 0,
      }),
    );
    expect(narrowed.state).toBe(MandateState.ACTIVE);
  });

  it.each<[string, Partial<MandateInit>, string, string]>([
    ["a scope the parent lacks", { scopes: ["orders.write"] }, "mandate.scopes[0]", "widening:scopes"],
    [
      "a resource the parent lacks",
      { resources: [API, "https://files.example/"] },
      "mandate.resources[1]",
      "widening:resources",
    ],
    [
      "a larger max_amount",
      { authorizationDetails: [{ type: "payment_initiation", max_amount: 101, currency: "EUR" }] },
      "mandate.authorization_details[0].max_amount",
      "widening:authorization_details",
    ],
    [
      "a location outside the parent's",
      {
        authorizationDetails: [
          { type: "data_access", datasets: ["orders"], actions: ["read"], locations: [`${API}*`] },
        ],
      },
      "mandate.authorization_details[0].locations",
      "widening:authorization_details",
    ],
    [
      "an earlier not_before",
      { notBefore: timestampFromMs(Date.now() - 30_000) },
      "mandate.not_before",
      "widening:not_before",
    ],
    [
      "a later expiry",
      { expireTime: timestampFromMs(Date.now() + 31 * DAY) },
      "mandate.expire_time",
      "widening:expires_at",
    ],
    [
      "a longer token lifetime",
      { maxTokenLifetime: durationFromMs(600_000) },
      "mandate.max_token_lifetime",
      "widening:max_token_ttl",
    ],
    [
      "a larger usage limit",
      { usageLimits: [{ meter: "calls", maximum: 101 }] },
      "mandate.usage_limits[calls]",
      "widening:usage_limits",
    ],
    [
      "as much depth as the parent",
      { maxDelegationDepth: 2 },
      "mandate.max_delegation_depth",
      "widening:max_delegation_depth",
    ],
  ])("refuse %s, naming the field and the dimension", async (_name, fields, field, reason) => {
    // The parent started a little earlier: an explicit not_before must not predate it.
    const found = await violation(issue.createMandate({ tenant: "demo", mandate: sub(fields) }));
    expect(found?.field).toBe(field);
    expect(found?.reason).toBe(reason);
  });

  it("refuse a may_act beyond the parent's, naming the field and the dimension", async () => {
    const found = await violation(
      issue.createMandate({ tenant: "demo", mandate: sub({ mayAct: [subAgent, narrowAgent] }) }),
    );
    expect(found).toMatchObject({ field: "mandate.may_act[1]", reason: "widening:may_act" });
  });

  it("refuse an agent the parent's may_act does not name, and another principal", async () => {
    const notNamed = await violation(
      issue.createMandate({ tenant: "demo", mandate: sub({ agent: { id: narrowAgent, kind: PartyKind.AGENT } }) }),
    );
    expect(notNamed).toMatchObject({ field: "mandate.agent.id", reason: "widening:may_act" });
    const otherPrincipal = await violation(
      issue.createMandate({ tenant: "demo", mandate: sub({ principal: { id: "mallory", kind: PartyKind.HUMAN } }) }),
    );
    expect(otherPrincipal?.field).toBe("mandate.principal.id");
  });

  it("refuse a parent with no depth left, an unknown parent, and a revoked one", async () => {
    const leaf = await create(sub({ maxDelegationDepth: 0, mayAct: [] }));
    const deeper = await violation(
      issue.createMandate({ tenant: "demo", mandate: sub({ parentMandateId: leaf.id, maxDelegationDepth: 0 }) }),
    );
    expect(deeper).toMatchObject({ field: "mandate.max_delegation_depth", reason: "widening:max_delegation_depth" });
    const unknown = await rpcError(
      issue.createMandate({ tenant: "demo", mandate: sub({ parentMandateId: "mdt_nope" }) }),
    );
    expect(unknown.code).toBe(Code.NotFound);
    const doomed = await create(rootMandate());
    await issue.revokeMandate({ tenant: "demo", mandateId: doomed.id, reason: "test" });
    const revoked = await rpcError(
      issue.createMandate({ tenant: "demo", mandate: sub({ parentMandateId: doomed.id }) }),
    );
    expect(revoked.code).toBe(Code.FailedPrecondition);
    expect(revoked.findDetails(ErrorInfoSchema)[0]?.reason).toBe("PARENT_MANDATE_REVOKED");
  });
});

describe("RevokeMandate and the audit trail", () => {
  it("revokes a mandate and its sub-mandates at once; Audit.Query by id shows each one's grant and revocation", async () => {
    const root = await create(rootMandate());
    const child = await create({
      principal: { id: "alice", kind: PartyKind.HUMAN },
      agent: { id: subAgent, kind: PartyKind.AGENT },
      parentMandateId: root.id,
      maxDelegationDepth: 1,
    });
    const { mandate } = await issue.revokeMandate({ tenant: "demo", mandateId: root.id, reason: "agent retired" });
    expect(mandate).toMatchObject({ id: root.id, state: MandateState.REVOKED });
    expect(mandate?.revokeTime).toBeDefined();
    expect((await issue.getMandate({ tenant: "demo", mandateId: child.id })).mandate?.state).toBe(MandateState.REVOKED);
    // Revoking again changes nothing.
    const again = await issue.revokeMandate({ tenant: "demo", mandateId: root.id });
    expect(again.mandate?.revokeTime).toEqual(mandate?.revokeTime);

    const audit = createClient(Audit, grpc([await server.caller("mandate:audit.read")]));
    const trail = async (mandateId: string, count: number) => {
      for (let i = 0; i < 100; i++) {
        const { entries } = await audit.query({ tenant: "demo", mandateId });
        if (entries.length >= count) return entries.map((e) => e.event);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      throw new Error(`the audit log has no ${count} entries for ${mandateId}`);
    };
    const rootTrail = await trail(root.id, 2);
    expect(rootTrail.map((e) => e?.type)).toEqual(["mandate.granted.v1", "mandate.revoked.v1"]);
    expect(rootTrail[0]).toMatchObject({ mandateId: root.id, client: { id: agent } });
    expect(rootTrail[0]?.subject?.id).not.toBe("alice"); // the human only as a salted reference
    expect(rootTrail[0]?.details).toMatchObject({
      mandate_id: root.id,
      scopes: root.scopes,
      consent: { method: "administrative" },
    });
    expect(rootTrail[1]?.details).toMatchObject({ reason: "agent retired", by: { tenant: "platform" } });
    const childTrail = await trail(child.id, 2);
    expect(childTrail.map((e) => e?.type)).toEqual(["mandate.granted.v1", "mandate.revoked.v1"]);
    expect(childTrail[1]?.details).toMatchObject({ cascade_from: root.id, reason: "agent retired" });
  });

  it("answers NOT_FOUND for a mandate that does not exist", async () => {
    expect((await rpcError(issue.revokeMandate({ tenant: "demo", mandateId: "mdt_nope" }))).code).toBe(Code.NotFound);
    expect((await rpcError(issue.getMandate({ tenant: "demo", mandateId: "mdt_nope" }))).code).toBe(Code.NotFound);
  });
});

describe("who may call", () => {
  it("keeps tenants apart", async () => {
    const mine = await create(rootMandate());
    expect((await rpcError(issue.getMandate({ tenant: "acme", mandateId: mine.id }))).code).toBe(Code.NotFound);
    expect((await rpcError(issue.revokeMandate({ tenant: "acme", mandateId: mine.id }))).code).toBe(Code.NotFound);
    expect((await issue.listMandates({ tenant: "acme" })).mandates).toEqual([]);
    // The agent is a client of demo, not of acme.
    expect((await violation(issue.createMandate({ tenant: "acme", mandate: rootMandate() })))?.field).toBe(
      "mandate.agent.id",
    );
    // An administrator of acme cannot reach demo's mandates.
    const acmeAdmin = createClient(Issue, grpc([await server.caller("mandate:tenant-admin", "acme")]));
    expect((await rpcError(acmeAdmin.getMandate({ tenant: "demo", mandateId: mine.id }))).code).toBe(
      Code.PermissionDenied,
    );
    expect((await acmeAdmin.listMandates({ tenant: "acme" })).mandates).toEqual([]);
  });

  it("refuses callers without credentials or without mandate:tenant-admin", async () => {
    const anonymous = createClient(Issue, grpc());
    expect((await rpcError(anonymous.listMandates({ tenant: "demo" }))).code).toBe(Code.Unauthenticated);
    const checker = createClient(Issue, grpc([await server.caller("mandate:authorize")]));
    const denied = await rpcError(checker.createMandate({ tenant: "demo", mandate: rootMandate() }));
    expect(denied.code).toBe(Code.PermissionDenied);
    const demoAdmin = createClient(Issue, grpc([await server.caller("mandate:tenant-admin")]));
    expect((await demoAdmin.createMandate({ tenant: "demo", mandate: rootMandate() })).mandate?.state).toBe(
      MandateState.ACTIVE,
    );
  });
});

describe("the mandate mandates CLI", () => {
  const cli = (args: string[]) =>
    runMandate([...args, "--address", address], { MANDATE_ADMIN_FILE: server.process.adminFile });

  it("creates, gets, lists and revokes, with --json", async () => {
    const created = await cli([
      "mandates",
      "create",
      "--tenant",
      "demo",
      "--principal",
      "carol",
      "--agent",
      agent,
      "--scope",
      "orders.read payments.create",
      "--resource",
      PAY,
      "--detail",
      '{"type":"payment_initiation","max_amount":50,"currency":"EUR"}',
      "--expires",
      "30d",
      "--max-token-ttl",
      "5m",
      "--uses",
      "10",
      "--budget",
      "amount:EUR:500/30d",
      "--depth",
      "1",
      "--may-act",
      subAgent,
      "--json",
    ]);
    expect(created.code, created.stderr).toBe(0);
    const mandate = JSON.parse(created.stdout) as Record<string, unknown> & { id: string };
    expect(mandate).toMatchObject({
      state: "MANDATE_STATE_ACTIVE",
      principal: { id: "carol" },
      scopes: ["orders.read", "payments.create"],
      maxTokenLifetime: "300s",
      usageLimits: [
        { meter: "calls", maximum: 10 },
        { meter: "amount:EUR", maximum: 500, period: "2592000s" },
      ],
      maxDelegationDepth: 1,
      mayAct: [subAgent],
    });
    const sub = await cli([
      "mandates",
      "create",
      "--tenant",
      "demo",
      "--principal",
      "carol",
      "--agent",
      subAgent,
      "--parent",
      mandate.id,
      "--uses",
      "3",
    ]);
    expect(sub.code, sub.stderr).toBe(0);
    expect(sub.stdout).toContain(`parent         ${mandate.id}`);
    const shown = await cli(["mandates", "get", mandate.id, "--tenant", "demo"]);
    expect(shown.stdout).toMatch(/state\s+active/);
    const listed = await cli([
      "mandates",
      "list",
      "--tenant",
      "demo",
      "--principal",
      "carol",
      "--state",
      "active",
      "--json",
    ]);
    expect((JSON.parse(listed.stdout) as Array<{ id: string }>).map((m) => m.id)).toHaveLength(2);
    const revoked = await cli(["mandates", "revoke", mandate.id, "--tenant", "demo", "--reason", "done"]);
    expect(revoked.stdout).toContain(`revoked mandate ${mandate.id}`);
    const after = await cli(["mandates", "list", "--tenant", "demo", "--principal", "carol", "--state", "revoked"]);
    expect(after.stdout.trim().split("\n")).toHaveLength(3); // the header and both mandates
    const widened = await cli([
      "mandates",
      "create",
      "--tenant",
      "demo",
      "--principal",
      "carol",
      "--agent",
      subAgent,
      "--parent",
      mandate.id,
    ]);
    expect(widened.code).toBe(1);
  });

  it("explains itself with --help and refuses a malformed limit", async () => {
    const help = await runMandate(["mandates", "create", "--help"]);
    expect(help.stdout).toContain("--budget <meter:max[/period]>");
    expect(help.stdout).toContain("--may-act <client-id>");
    const bad = await cli([
      "mandates",
      "create",
      "--tenant",
      "demo",
      "--principal",
      "p",
      "--agent",
      agent,
      "--budget",
      "EUR",
    ]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain("METER:MAX[/PERIOD]");
  });
});
