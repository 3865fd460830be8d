// Every policy of policies/library/* and policies/default, end to end: built into a bundle with
// Mandate's own compiler, pushed and activated for a tenant of its own through Authorize.PushPolicy,
// fed its dynamic data through Authorize.SetPolicyData where that is how the policy takes it (RBAC
// role bindings, trusted tenants, time windows, the default policy's limits), and asked through
// Authorize.Check and BatchCheck over native gRPC against a real `mandate dev`. Each policy's own
// *_test.rego says what it decides for an input; this says the same decisions come out of the
// service, where the input is Authorize's mapping of a CheckRequest (decision-input.ts) and
// `context.time` is Authorize's clock, never the caller's.
import { join } from "node:path";
import { fromJson, type JsonObject, type JsonValue, type MessageInitShape } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  Authorize,
  type CheckRequest,
  type CheckRequestSchema,
  type Decision,
} from "../../gen/mandate/v1/authorize_pb.js";
import { PartyKind } from "../../gen/mandate/v1/common_pb.js";
import { Tenants } from "../../gen/mandate/v1/tenants_pb.js";
import { buildBundle } from "../../services/authorize/rego/bundle.ts";
import { adminClient } from "../helpers/admin.ts";
import { type OAuthServer, startOAuthServer } from "../helpers/oauth-server.ts";

/** A CheckRequest as a plain object (the init shape without the message type). */
type CheckInput = Exclude<MessageInitShape<typeof CheckRequestSchema>, CheckRequest>;
type Question = Omit<CheckInput, "tenant">;

const POLICIES = new URL("../../policies/", import.meta.url).pathname;
const API = "https://api.example.com/";

/** The policies under test: folder, and the tenant (and revision `lib-<name>`) each decides for. */
const LIBRARY = ["default", "rbac", "abac", "delegation", "time-windows", "step-up", "tenant-boundary"] as const;
type Name = (typeof LIBRARY)[number];
const tenantOf = (name: Name) => `lib-${name}`;
const revisionOf = (name: Name) => `lib-${name}`;
const dirOf = (name: Name) => (name === "default" ? join(POLICIES, "default") : join(POLICIES, "library", name));

// Time windows are decided at Authorize's now: days are picked around today in Europe/Berlin, so a
// window is open (yesterday, today, tomorrow) or closed (the other four days) whatever the hour.
const WEEKDAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const BERLIN = "Europe/Berlin";
const berlinDay = (ms: number) =>
  new Intl.DateTimeFormat("en-US", { timeZone: BERLIN, weekday: "long" }).format(new Date(ms));
const berlinClock = (ms: number) =>
  new Intl.DateTimeFormat("en-GB", { timeZone: BERLIN, hour: "2-digit", minute: "2-digit", hourCycle: "h23" }).format(
    new Date(ms),
  );
const today = WEEKDAYS.indexOf(berlinDay(Date.now()));
const NEAR_DAYS = [-1, 0, 1].map((d) => WEEKDAYS[(today + d + 7) % 7] as string);
const FAR_DAYS = WEEKDAYS.filter((d) => !NEAR_DAYS.includes(d));

/** Dynamic data documents per policy (SetPolicyData path → JSON), set before its first Check. */
const DATA: Partial<Record<Name, Record<string, JsonValue>>> = {
  // The bundle's limits.max_chain is 3 and it has no step_up configuration: both from documents.
  default: { "limits/max_chain": 1, "step_up/acr_values": "urn:example:acr:phr" },
  // Role bindings are dynamic: this document replaces the bundle's bindings (a list is not merged),
  // and one more role is added to the bundle's roles (objects are merged).
  rbac: {
    bindings: [
      { subject: "gina", role: "order_clerk" },
      { group: "finance", role: "billing" },
      { subject: "hank", role: "order_clerk", resource: { type: "order", id: "o-42" } },
      { subject: "zed", role: "auditor" },
    ],
    "roles/auditor": ["reports.*"],
  },
  "tenant-boundary": {
    "tenant_boundary/trusts": {
      "lib-tenant-boundary": ["partner-eu", { tenant: "globex", actions: ["orders.read", "catalog.*"] }],
    },
  },
  "time-windows": {
    "time_windows/actions": {
      "ops.*": [{ days: NEAR_DAYS, start: "00:00", end: "24:00" }],
      "ops.restart": [{ days: FAR_DAYS, start: "00:00", end: "24:00" }],
      "ops.broken": [
        { days: ["Funday"], start: "08:00", end: "18:00" },
        { days: WEEKDAYS, start: "00:00", end: "24:00" },
      ],
    },
  },
};

let server: OAuthServer;
const askers = new Map<string, ReturnType<typeof createClient<typeof Authorize>>>();

beforeAll(async () => {
  server = await startOAuthServer();
  const address = server.process.summary.grpc as string;
  const tenants = adminClient(Tenants, address, server.process.adminFile);
  const admin = adminClient(Authorize, address, server.process.adminFile);
  for (const name of LIBRARY) {
    const tenant = tenantOf(name);
    await tenants.createTenant({ tenant, displayName: `Library: ${name}` });
    const { bytes } = await buildBundle(dirOf(name), { revision: revisionOf(name) });
    const pushed = await admin.pushPolicy({ tenant, bundle: bytes, activate: true });
    expect(pushed.revision).toMatchObject({ revision: revisionOf(name), active: true });
    for (const [path, json] of Object.entries(DATA[name] ?? {})) {
      await admin.setPolicyData({ tenant, path, value: fromJson(ValueSchema, json) });
    }
    const caller = await server.caller("mandate:authorize", tenant);
    askers.set(
      tenant,
      createClient(Authorize, createGrpcTransport({ baseUrl: `http://${address}`, interceptors: [caller] })),
    );
  }
}, 60_000);

afterAll(async () => {
  await server?.stop();
});

function askerOf(name: Name) {
  const asker = askers.get(tenantOf(name));
  if (!asker) throw new Error(`no caller for ${name}`);
  return asker;
}

async function check(name: Name, question: Question): Promise<Decision> {
  const { decision } = await askerOf(name).check({ ...question, tenant: tenantOf(name) });
  if (!decision) throw new Error("no decision");
  return decision;
}

const reasonCodes = (decision: Decision) => decision.reasons.map((r) => r.code);
const obligationsOf = (decision: Decision) => decision.obligations.map((o) => [o.type, o.parameters]);

/** An allow by `name`'s revision, with no reasons. */
function expectAllowed(name: Name, decision: Decision): void {
  expect({ allow: decision.allow, reasons: reasonCodes(decision), revision: decision.policyRevision }).toEqual({
    allow: true,
    reasons: [],
    revision: revisionOf(name),
  });
}

/** A deny by `name`'s revision, with exactly these reason codes (sorted, as the policies sort them). */
function expectDenied(name: Name, decision: Decision, codes: string[]): void {
  expect({ allow: decision.allow, reasons: reasonCodes(decision), revision: decision.policyRevision }).toEqual({
    allow: false,
    reasons: codes,
    revision: revisionOf(name),
  });
}

const party = (id: string, kind: PartyKind, attributes: JsonObject = {}) => ({ id, kind, attributes });

describe("the policy library through Authorize over native gRPC", () => {
  // --- policies/default ---------------------------------------------------------------------------

  const defaultQuestion = (fields: Partial<Question> = {}): Question => ({
    subject: party("alice", PartyKind.HUMAN, { clearance: 1 }),
    actors: [party("agent-1", PartyKind.AGENT, { tenant: "lib-default" })],
    client: party("storefront", PartyKind.SERVICE),
    action: "orders.read",
    resource: { type: "order", id: "o-1", attributes: { audience: API } },
    token: { scopes: ["orders.read"], audiences: [API] },
    ...fields,
  });

  it("default: allows a request its token's scopes and audience cover", async () => {
    const decision = await check("default", defaultQuestion());
    expectAllowed("default", decision);
    expect(decision.obligations).toEqual([]);
    // A scope family (`orders.*`) covers the actions under it.
    expectAllowed(
      "default",
      await check("default", defaultQuestion({ token: { scopes: ["orders.*"], audiences: [API] } })),
    );
  });

  it("default: allows a classified resource with the step_up obligation, acr_values from the data document", async () => {
    const decision = await check(
      "default",
      defaultQuestion({
        subject: party("alice", PartyKind.HUMAN, { clearance: 3, amr: ["pwd"] }),
        resource: { type: "order", id: "o-2", attributes: { audience: API, classification: 3 } },
      }),
    );
    expectAllowed("default", decision);
    expect(obligationsOf(decision)).toEqual([["step_up", { acr_values: "urn:example:acr:phr" }]]);
  });

  it("default: denies scope_missing, audience_mismatch, actor_wrong_tenant and clearance_insufficient", async () => {
    const outOfScope = await check("default", defaultQuestion({ action: "orders.delete" }));
    expectDenied("default", outOfScope, ["scope_missing"]);
    expect(outOfScope.reasons[0]?.message).toBe("the action is outside the token's scopes");
    expectDenied(
      "default",
      await check("default", defaultQuestion({ token: { scopes: ["orders.read"], audiences: ["https://other/"] } })),
      ["audience_mismatch"],
    );
    expectDenied(
      "default",
      await check("default", defaultQuestion({ actors: [party("agent-x", PartyKind.AGENT, { tenant: "initech" })] })),
      ["actor_wrong_tenant"],
    );
    expectDenied(
      "default",
      await check(
        "default",
        defaultQuestion({ resource: { type: "order", id: "o-3", attributes: { audience: API, classification: 2 } } }),
      ),
      ["clearance_insufficient"],
    );
    // Several at once, sorted by code.
    expectDenied(
      "default",
      await check("default", defaultQuestion({ action: "orders.delete", token: { scopes: [], audiences: [] } })),
      ["audience_mismatch", "scope_missing"],
    );
  });

  it("default: denies chain_too_long past the data document's limits.max_chain (1), with audit_chain", async () => {
    const agent = party("agent-1", PartyKind.AGENT, { tenant: "lib-default" });
    const decision = await check("default", defaultQuestion({ actors: [agent, agent] }));
    expectDenied("default", decision, ["chain_too_long"]);
    expect(obligationsOf(decision)).toEqual([["audit_chain", undefined]]);
  });

  it("default: RFC 9396 authorization details narrow the scopes (authorization_details_mismatch)", async () => {
    const details = [{ type: "order", actions: ["orders.read"], locations: ["https://eu.orders"] }];
    const at = (location: string) =>
      defaultQuestion({
        token: { scopes: ["orders.read"], audiences: [API], authorizationDetails: details },
        resource: { type: "order", id: "o-1", attributes: { audience: API, location } },
      });
    expectAllowed("default", await check("default", at("https://eu.orders")));
    expectDenied("default", await check("default", at("https://us.orders")), ["authorization_details_mismatch"]);
  });

  // --- library/rbac -------------------------------------------------------------------------------

  const order = { type: "order", id: "o-1" };
  const rbacQuestion = (subject: ReturnType<typeof party>, action: string, resource = order): Question => ({
    subject,
    action,
    resource,
  });

  it("rbac: allows by a trait role, by the bound roles of the data document (subject, group, resource, new role)", async () => {
    const viewer = party("alice", PartyKind.HUMAN, { roles: ["viewer"] });
    expectAllowed("rbac", await check("rbac", rbacQuestion(viewer, "orders.read")));
    expectAllowed("rbac", await check("rbac", rbacQuestion(party("gina", PartyKind.HUMAN), "orders.write")));
    const frank = party("frank", PartyKind.HUMAN, { groups: ["finance"] });
    expectAllowed("rbac", await check("rbac", rbacQuestion(frank, "invoices.void", { type: "invoice", id: "i-1" })));
    const hank = party("hank", PartyKind.HUMAN);
    expectAllowed("rbac", await check("rbac", rbacQuestion(hank, "orders.write", { type: "order", id: "o-42" })));
    const zed = party("zed", PartyKind.HUMAN);
    expectAllowed("rbac", await check("rbac", rbacQuestion(zed, "reports.export", { type: "report", id: "r-1" })));
  });

  it("rbac: denies permission_missing and role_missing (a binding of another resource, a replaced binding)", async () => {
    const viewer = party("alice", PartyKind.HUMAN, { roles: ["viewer"] });
    const write = await check("rbac", rbacQuestion(viewer, "orders.write"));
    expectDenied("rbac", write, ["permission_missing"]);
    expect(write.reasons[0]?.message).toBe("no role of the subject (viewer) permits orders.write");
    const nobody = await check("rbac", rbacQuestion(party("mallory", PartyKind.HUMAN), "orders.read"));
    expectDenied("rbac", nobody, ["role_missing"]);
    expect(nobody.reasons[0]?.message).toBe("the subject has no role for this resource");
    const hank = party("hank", PartyKind.HUMAN);
    expectDenied("rbac", await check("rbac", rbacQuestion(hank, "orders.write", { type: "order", id: "o-43" })), [
      "role_missing",
    ]);
    // carol is bound in the bundle's data.json; the bindings document replaced that list.
    expectDenied("rbac", await check("rbac", rbacQuestion(party("carol", PartyKind.HUMAN), "orders.write")), [
      "role_missing",
    ]);
  });

  it("rbac: BatchCheck decides a mix of allows and denies in request order", async () => {
    const viewer = party("alice", PartyKind.HUMAN, { roles: ["viewer"] });
    const { decisions } = await askerOf("rbac").batchCheck({
      tenant: tenantOf("rbac"),
      checks: [
        { tenant: tenantOf("rbac"), ...rbacQuestion(viewer, "orders.read") },
        { tenant: tenantOf("rbac"), ...rbacQuestion(viewer, "orders.delete") },
        { tenant: tenantOf("rbac"), ...rbacQuestion(party("gina", PartyKind.HUMAN), "orders.delete") },
        { tenant: tenantOf("rbac"), ...rbacQuestion(party("mallory", PartyKind.HUMAN), "orders.read") },
      ],
    });
    expect(decisions).toHaveLength(4);
    const [first, second, third, fourth] = decisions as [Decision, Decision, Decision, Decision];
    expectAllowed("rbac", first);
    expectDenied("rbac", second, ["permission_missing"]);
    expectAllowed("rbac", third);
    expectDenied("rbac", fourth, ["role_missing"]);
    expect(new Set(decisions.map((d) => d.decisionId)).size).toBe(4);
  });

  // --- library/abac -------------------------------------------------------------------------------

  const doc = { owner: "alice", department: "sales", classification: "internal" };
  const alice = party("alice", PartyKind.HUMAN, { department: "sales", clearance: "internal" });
  const bob = party("bob", PartyKind.HUMAN, { department: "sales", clearance: "confidential" });
  const carol = party("carol", PartyKind.HUMAN, { department: "legal", clearance: "secret" });
  const abacQuestion = (subject: ReturnType<typeof party>, action: string, attributes: JsonObject = doc): Question => ({
    subject,
    action,
    resource: { type: "document", id: "d-1", attributes },
  });

  it("abac: allows the owner's actions and the department's reads", async () => {
    expectAllowed("abac", await check("abac", abacQuestion(alice, "documents.delete")));
    expectAllowed("abac", await check("abac", abacQuestion(bob, "documents.read")));
    expectAllowed("abac", await check("abac", abacQuestion(bob, "documents.comment")));
  });

  it("abac: denies owner_required, department_mismatch, clearance_insufficient, classification_unknown, action_not_covered", async () => {
    const del = await check("abac", abacQuestion(bob, "documents.delete"));
    expectDenied("abac", del, ["owner_required"]);
    expect(del.reasons[0]?.message).toBe("only the resource's owner may documents.delete");
    const read = await check("abac", abacQuestion(carol, "documents.read"));
    expectDenied("abac", read, ["department_mismatch"]);
    expect(read.reasons[0]?.message).toBe("documents.read is for members of the resource's department (or its owner)");
    const secret = await check("abac", abacQuestion(bob, "documents.read", { ...doc, classification: "secret" }));
    expectDenied("abac", secret, ["clearance_insufficient"]);
    expect(secret.reasons[0]?.message).toBe("the resource is classified 3, above the subject's clearance 2");
    expectDenied("abac", await check("abac", abacQuestion(bob, "documents.read", { ...doc, classification: "top" })), [
      "classification_unknown",
    ]);
    expectDenied("abac", await check("abac", abacQuestion(alice, "invoices.read")), ["action_not_covered"]);
  });

  // --- library/delegation -------------------------------------------------------------------------

  // The delegation policy allows only under `input.mandate`, which Authorize sets from the stored
  // mandate a token (or `token.mandate_id`) names (engine/mandate.ts; decisions on real mandates are
  // test/authorize/mandate-decisions.test.ts). A question naming no mandate is a deny
  // `mandate_missing`, with the reasons that do not need a mandate (the actors' tenants against
  // data.federation.trusted_tenants); one naming a mandate the tenant does not have is refused
  // before the policy runs.
  const delegationQuestion = (actors: ReturnType<typeof party>[]): Question => ({
    subject: party("alice", PartyKind.HUMAN),
    actors,
    action: "orders.read",
    resource: { type: "order", id: "o-1", attributes: { audience: "https://orders.acme" } },
    token: { scopes: ["orders.read"], audiences: ["https://orders.acme"] },
  });

  it("delegation: refuses a mandate the tenant does not have before the policy (mandate_not_found)", async () => {
    const shopper = party("agent:shopper", PartyKind.AGENT, { tenant: "lib-delegation" });
    const question = delegationQuestion([shopper]);
    const decision = await check("delegation", { ...question, token: { ...question.token, mandateId: "m-1" } });
    expect(decision.allow).toBe(false);
    expect(decision.reasons.map((r) => r.code)).toEqual(["mandate_not_found"]);
  });

  it("delegation: denies mandate_missing when no mandate applies", async () => {
    const shopper = party("agent:shopper", PartyKind.AGENT, { tenant: "lib-delegation" });
    const decision = await check("delegation", delegationQuestion([shopper]));
    expectDenied("delegation", decision, ["mandate_missing"]);
    expect(decision.reasons[0]?.message).toBe("no mandate applies to this request");
    expect(decision.obligations).toEqual([]);
    // Nobody acting: still only mandate_missing (agent_missing needs a mandate).
    expectDenied("delegation", await check("delegation", delegationQuestion([])), ["mandate_missing"]);
    // An actor of a federated tenant trusted in data.json adds nothing.
    const federated = party("agent:eu", PartyKind.AGENT, { tenant: "partner-eu" });
    expectDenied("delegation", await check("delegation", delegationQuestion([federated])), ["mandate_missing"]);
  });

  it("delegation: denies actor_untrusted_tenant for an actor of another tenant, or of none", async () => {
    const foreign = party("agent:x", PartyKind.AGENT, { tenant: "globex" });
    const decision = await check("delegation", delegationQuestion([foreign]));
    expectDenied("delegation", decision, ["actor_untrusted_tenant", "mandate_missing"]);
    expect(decision.reasons[0]?.message).toBe(
      "actor agent:x belongs to globex, which is neither lib-delegation nor a trusted federated tenant",
    );
    const stateless = party("agent:y", PartyKind.AGENT);
    const none = await check("delegation", delegationQuestion([stateless]));
    expectDenied("delegation", none, ["actor_untrusted_tenant", "mandate_missing"]);
    expect(none.reasons[0]?.message).toBe(
      "actor agent:y belongs to no tenant, which is neither lib-delegation nor a trusted federated tenant",
    );
  });

  // --- library/time-windows -----------------------------------------------------------------------

  const timeQuestion = (action: string): Question => ({
    subject: party("alice", PartyKind.HUMAN),
    action,
    resource: { type: "operation", id: "op-1" },
  });

  it("time-windows: allows in an open window (the data document's, the bundle's `*`), at Authorize's now", async () => {
    expectAllowed("time-windows", await check("time-windows", timeQuestion("ops.deploy")));
    expectAllowed("time-windows", await check("time-windows", timeQuestion("orders.read")));
    // A caller's context.time is replaced by Authorize's: a Sunday-night instant changes nothing.
    expectAllowed(
      "time-windows",
      await check("time-windows", { ...timeQuestion("ops.deploy"), context: { time: 1717927200000 } }),
    );
  });

  it("time-windows: denies outside_time_window (the exact pattern decides alone), in Europe/Berlin time", async () => {
    const before = Date.now();
    const decision = await check("time-windows", timeQuestion("ops.restart"));
    const after = Date.now();
    expectDenied("time-windows", decision, ["outside_time_window"]);
    const said = [before, after].map(
      (ms) =>
        `ops.restart is allowed only within its time windows (Europe/Berlin); it is ${berlinDay(ms)} ${berlinClock(ms)} there`,
    );
    expect(said).toContain(decision.reasons[0]?.message);
  });

  it("time-windows: denies time_window_invalid for an unreadable window", async () => {
    const decision = await check("time-windows", timeQuestion("ops.broken"));
    expectDenied("time-windows", decision, ["time_window_invalid"]);
    expect(decision.reasons[0]?.message).toBe("time window 0 of ops.broken is invalid");
  });

  it("time-windows: decides the bundle's working hours (payments.*: Monday-Friday 08:00-18:00 Berlin) as the clock says", async () => {
    const open = (ms: number) => {
      const day = berlinDay(ms);
      const clock = berlinClock(ms);
      return !["Saturday", "Sunday"].includes(day) && clock >= "08:00" && clock < "18:00";
    };
    for (let attempt = 0; attempt < 3; attempt++) {
      const before = Date.now();
      const decision = await check("time-windows", timeQuestion("payments.create"));
      const after = Date.now();
      if (open(before) !== open(after)) continue; // on the boundary: ask again
      if (open(before)) expectAllowed("time-windows", decision);
      else expectDenied("time-windows", decision, ["outside_time_window"]);
      return;
    }
    throw new Error("the clock kept crossing a window boundary");
  });

  // --- library/step-up ----------------------------------------------------------------------------

  const now = () => Math.floor(Date.now() / 1000);
  const stepUpQuestion = (action: string, attributes: JsonObject): Question => ({
    subject: party("alice", PartyKind.HUMAN, attributes),
    action,
    resource: { type: "payment", id: "p-1" },
  });
  const challenge = ["step_up", { acr_values: "urn:mandate:acr:mfa", max_age: 300 }];

  it("step-up: allows a sensitive action after a strong, fresh authentication, and anything not sensitive", async () => {
    const mfa = { acr: "urn:mandate:acr:mfa", amr: ["pwd", "otp", "mfa"], auth_time: now() - 60 };
    const decision = await check("step-up", stepUpQuestion("payments.create", mfa));
    expectAllowed("step-up", decision);
    expect(decision.obligations).toEqual([]);
    expectAllowed("step-up", await check("step-up", stepUpQuestion("orders.read", {})));
  });

  it("step-up: denies step_up_required and authentication_too_old with the step_up obligation (acr_values, max_age)", async () => {
    const password = { acr: "urn:mandate:acr:pwd", amr: ["pwd"], auth_time: now() - 60 };
    const weak = await check("step-up", stepUpQuestion("payments.create", password));
    expectDenied("step-up", weak, ["step_up_required"]);
    expect(weak.reasons[0]?.message).toBe("payments.create needs a stronger authentication (urn:mandate:acr:mfa)");
    expect(obligationsOf(weak)).toEqual([challenge]);

    const stale = { acr: "urn:mandate:acr:mfa", amr: ["mfa"], auth_time: now() - 3600 };
    const old = await check("step-up", stepUpQuestion("payments.create", stale));
    expectDenied("step-up", old, ["authentication_too_old"]);
    expect(old.reasons[0]?.message).toBe("payments.create needs an authentication within the last 300 seconds");
    expect(obligationsOf(old)).toEqual([challenge]);

    const nothing = await check("step-up", stepUpQuestion("admin.users.delete", {}));
    expectDenied("step-up", nothing, ["authentication_too_old", "step_up_required"]);
    expect(obligationsOf(nothing)).toEqual([challenge]);
  });

  // --- library/tenant-boundary --------------------------------------------------------------------

  const member = (id: string, kind: PartyKind, tenant?: string) =>
    party(id, kind, tenant === undefined ? {} : { tenant });
  const boundaryQuestion = (fields: Partial<Question> = {}): Question => ({
    subject: member("alice", PartyKind.HUMAN, "lib-tenant-boundary"),
    actors: [member("agent-1", PartyKind.AGENT, "lib-tenant-boundary")],
    client: member("app", PartyKind.SERVICE, "lib-tenant-boundary"),
    action: "orders.write",
    resource: { type: "order", id: "o-1", attributes: { tenant: "lib-tenant-boundary" } },
    ...fields,
  });

  it("tenant-boundary: allows parties of the tenant, and of tenants its trusts document trusts (for the action)", async () => {
    expectAllowed("tenant-boundary", await check("tenant-boundary", boundaryQuestion()));
    const eu = [member("agent-eu", PartyKind.AGENT, "partner-eu")];
    expectAllowed("tenant-boundary", await check("tenant-boundary", boundaryQuestion({ actors: eu })));
    const globex = [member("agent-g", PartyKind.AGENT, "globex")];
    expectAllowed(
      "tenant-boundary",
      await check("tenant-boundary", boundaryQuestion({ actors: globex, action: "orders.read" })),
    );
  });

  it("tenant-boundary: denies actor_, subject_ and resource_foreign_tenant, and tenant_unknown", async () => {
    const globex = [member("agent-g", PartyKind.AGENT, "globex")];
    const write = await check("tenant-boundary", boundaryQuestion({ actors: globex }));
    expectDenied("tenant-boundary", write, ["actor_foreign_tenant"]);
    expect(write.reasons[0]?.message).toBe(
      "actor agent-g belongs to globex, which is not lib-tenant-boundary and not trusted by the resource's tenant",
    );
    const foreign = member("mallory", PartyKind.HUMAN, "initech");
    expectDenied("tenant-boundary", await check("tenant-boundary", boundaryQuestion({ subject: foreign })), [
      "subject_foreign_tenant",
    ]);
    // acme (the bundle's data.json) trusts acme-eu and globex, not this tenant.
    const acmes = await check(
      "tenant-boundary",
      boundaryQuestion({ resource: { type: "order", id: "o-1", attributes: { tenant: "acme" } } }),
    );
    expectDenied("tenant-boundary", acmes, ["resource_foreign_tenant"]);
    expect(acmes.reasons[0]?.message).toBe("the resource belongs to acme, which does not trust lib-tenant-boundary");
    const unknown = await check("tenant-boundary", boundaryQuestion({ client: member("app", PartyKind.SERVICE) }));
    expectDenied("tenant-boundary", unknown, ["tenant_unknown"]);
    expect(unknown.reasons[0]?.message).toBe("the client app has no tenant");
  });
});
