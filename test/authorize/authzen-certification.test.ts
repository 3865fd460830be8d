// The OpenID AuthZEN Authorization API 1.0 certification scenario (authorization-api-1_0-scenario),
// level by level, against a running `mandate dev` whose tenant decides with the scenario's fixture
// (policies/examples/authzen-certification, pushed as a bundle through Authorize.PushPolicy): every
// request of the scenario with what it expects — decision values only where the fixture mandates
// them (C.1.4, C.1.5), the response structure everywhere (C.2.3, C.3.3, C.4.2–C.4.5, C.5, C.6.5).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type EntitySchema, schemaFault } from "../../services/authorize/authzen/schema.ts";
import { buildBundle } from "../../services/authorize/rego/bundle.ts";
import { type Answer, type AuthzenServer, startAuthzenServer, vendoredSchema } from "./authzen-server.ts";

const TENANT = "cert";
let server: AuthzenServer;
let response: EntitySchema;

beforeAll(async () => {
  server = await startAuthzenServer();
  const { bytes } = await buildBundle("policies/examples/authzen-certification");
  await server.pushPolicy(TENANT, bytes);
  response = vendoredSchema("evaluation-response.schema.json");
}, 120_000);

afterAll(async () => {
  await server?.stop();
});

type Endpoint = "evaluation" | "evaluations" | "search/subject" | "search/resource" | "search/action";
type Entity = { type: string; id: string } | { name: string };
/** A decision the harness checks (a boolean), or only its structure ("any"). */
type Expected = boolean | "any";

type Expectation =
  | { status: 400 }
  | { decision: Expected }
  | { evaluations: Expected[] }
  | { results: Entity[]; type?: string }
  | { empty: true };

interface Case {
  id: string;
  title: string;
  endpoint: Endpoint;
  body: unknown;
  expect: Expectation;
}

const alice = { type: "user", id: "alice" };
const bob = { type: "user", id: "bob" };
const bobAdmin = { ...bob, properties: { role: "admin" } };
const read = { name: "read" };
const write = { name: "write" };
const record1 = { type: "record", id: "record-1" };
const record2Archived = { type: "record", id: "record-2", properties: { status: "archived" } };
const context = { time: "2025-06-27T18:03-07:00", ip: "192.168.1.1" };

/** C.2 Basic, Core: the fixture decisions on identifiers only, and the structural cases. */
const BASIC_CORE: Case[] = [
  {
    id: "C.2.2.1",
    title: "fixture permit (rule 1)",
    endpoint: "evaluation",
    body: { subject: alice, action: read, resource: record1 },
    expect: { decision: true },
  },
  {
    id: "C.2.2.2",
    title: "fixture deny (rule 4)",
    endpoint: "evaluation",
    body: { subject: bob, action: write, resource: record1 },
    expect: { decision: false },
  },
  {
    id: "C.2.2.3",
    title: "optional context",
    endpoint: "evaluation",
    body: { subject: alice, action: read, resource: record1, context },
    expect: { decision: true },
  },
  {
    id: "C.2.2.8",
    title: "additional properties",
    endpoint: "evaluation",
    body: {
      subject: { ...alice, properties: { department: "Sales", role: "manager" } },
      action: { name: "read", properties: { method: "GET" } },
      resource: { ...record1, properties: { status: "active", owner: "bob" } },
    },
    expect: { decision: true },
  },
  {
    id: "C.2.2.9",
    title: "unknown fields",
    endpoint: "evaluation",
    body: { subject: alice, action: read, resource: record1, foo: "bar", futureField: { nested: true } },
    expect: { decision: true },
  },
  ...[
    ["C.2.4.1", "missing subject", { action: read, resource: record1 }],
    ["C.2.4.1", "missing action", { subject: alice, resource: record1 }],
    ["C.2.4.1", "missing resource", { subject: alice, action: read }],
    ["C.2.4.2", "subject missing type", { subject: { id: "alice" }, action: read, resource: record1 }],
    ["C.2.4.2", "subject missing id", { subject: { type: "user" }, action: read, resource: record1 }],
    ["C.2.4.2", "action missing name", { subject: alice, action: {}, resource: record1 }],
    ["C.2.4.2", "resource missing type", { subject: alice, action: read, resource: { id: "record-1" } }],
    ["C.2.4.2", "resource missing id", { subject: alice, action: read, resource: { type: "record" } }],
    ["C.2.4.6", "subject is a string", { subject: "alice", action: read, resource: record1 }],
    ["C.2.4.6", "action.name is a number", { subject: alice, action: { name: 123 }, resource: record1 }],
  ].map(([id, title, body]) => ({
    id: id as string,
    title: title as string,
    endpoint: "evaluation" as const,
    body,
    expect: { status: 400 as const },
  })),
];

/** C.2 Basic, Properties: rules 5–8. */
const BASIC_PROPERTIES: Case[] = [
  {
    id: "C.2.2.4",
    title: "deny on resource properties (rule 5)",
    endpoint: "evaluation",
    body: { subject: alice, action: write, resource: record2Archived },
    expect: { decision: false },
  },
  {
    id: "C.2.2.5",
    title: "permit on subject properties (rule 6)",
    endpoint: "evaluation",
    body: { subject: bobAdmin, action: write, resource: record2Archived },
    expect: { decision: true },
  },
  {
    id: "C.2.2.6",
    title: "permit on action properties (rule 7)",
    endpoint: "evaluation",
    body: { subject: alice, action: { name: "delete", properties: { soft: true } }, resource: record1 },
    expect: { decision: true },
  },
  {
    id: "C.2.2.7",
    title: "deny on action properties (rule 8)",
    endpoint: "evaluation",
    body: { subject: alice, action: { name: "delete", properties: { soft: false } }, resource: record1 },
    expect: { decision: false },
  },
];

/** C.3 Batch, Core. */
const BATCH_CORE: Case[] = [
  {
    id: "C.3.2.1",
    title: "evaluations array (structure)",
    endpoint: "evaluations",
    body: {
      subject: alice,
      action: read,
      evaluations: [{ resource: record1 }, { resource: { ...record1, id: "record-2" } }],
    },
    expect: { evaluations: ["any", "any"] },
  },
  {
    id: "C.3.2.2",
    title: "fixture decisions, in order (rules 3, 4)",
    endpoint: "evaluations",
    body: { subject: bob, resource: record1, evaluations: [{ action: read }, { action: write }] },
    expect: { evaluations: [true, false] },
  },
  {
    id: "C.3.2.5",
    title: "fully specified evaluations, no defaults",
    endpoint: "evaluations",
    body: {
      evaluations: [
        { subject: alice, action: read, resource: record1 },
        { subject: bob, action: write, resource: record1 },
      ],
    },
    expect: { evaluations: [true, false] },
  },
  {
    id: "C.3.2.6",
    title: "context inheritance",
    endpoint: "evaluations",
    body: {
      subject: alice,
      action: read,
      context: { time: "2025-06-27T18:03-07:00" },
      evaluations: [
        { resource: record1 },
        {
          resource: { type: "record", id: "record-2" },
          context: { time: "2025-06-27T19:00-07:00", source: "batch-override" },
        },
      ],
    },
    expect: { evaluations: ["any", "any"] },
  },
  {
    id: "C.3.4.1",
    title: "an item missing a required field is denied in place (execute_all)",
    endpoint: "evaluations",
    body: {
      subject: alice,
      action: read,
      options: { evaluations_semantic: "execute_all" },
      evaluations: [{ resource: record1 }, {}],
    },
    expect: { evaluations: [true, false] },
  },
  {
    id: "C.3.4.2",
    title: "no evaluations array: a single decision",
    endpoint: "evaluations",
    body: { subject: alice, action: read, resource: record1 },
    expect: { decision: true },
  },
  {
    id: "C.3.4.3",
    title: "empty evaluations array: a single decision",
    endpoint: "evaluations",
    body: { subject: alice, action: read, resource: record1, evaluations: [] },
    expect: { decision: true },
  },
];

/** C.3 Batch, Properties: per-item properties and whole-entity defaults. */
const BATCH_PROPERTIES: Case[] = [
  {
    id: "C.3.2.3",
    title: "resource properties per item (rules 2, 5)",
    endpoint: "evaluations",
    body: {
      subject: alice,
      action: write,
      evaluations: [{ resource: { ...record1, properties: { status: "active" } } }, { resource: record2Archived }],
    },
    expect: { evaluations: [true, false] },
  },
  {
    id: "C.3.2.4",
    title: "subject properties per item (rules 5, 6)",
    endpoint: "evaluations",
    body: { action: write, resource: record2Archived, evaluations: [{ subject: alice }, { subject: bobAdmin }] },
    expect: { evaluations: [false, true] },
  },
  {
    id: "C.3.2.7",
    title: "top-level defaults inherited whole, overridden whole",
    endpoint: "evaluations",
    body: {
      subject: alice,
      action: write,
      resource: { ...record1, properties: { status: "active" } },
      evaluations: [{}, { resource: record2Archived }],
    },
    expect: { evaluations: [true, false] },
  },
];

const subjectSearch = { subject: { type: "user" }, action: read, resource: record1 };
const resourceSearch = { subject: alice, action: read, resource: { type: "record" } };
const actionSearch = { subject: alice, resource: record1 };
const users = { results: [alice, bob], type: "user" };
const records = { results: [record1], type: "record" };
const readWrite = { results: [{ name: "read" }, { name: "write" }] };

/** C.4 Search, Core. */
const SEARCH_CORE: Case[] = [
  { id: "C.4.2.1", title: "subject search (S1)", endpoint: "search/subject", body: subjectSearch, expect: users },
  {
    id: "C.4.2.2",
    title: "subject search with context",
    endpoint: "search/subject",
    body: { ...subjectSearch, context },
    expect: users,
  },
  {
    id: "C.4.2.3",
    title: "subject search ignores subject.id",
    endpoint: "search/subject",
    body: { ...subjectSearch, subject: alice },
    expect: users,
  },
  { id: "C.4.3.1", title: "resource search (S2)", endpoint: "search/resource", body: resourceSearch, expect: records },
  {
    id: "C.4.3.2",
    title: "resource search with context",
    endpoint: "search/resource",
    body: { ...resourceSearch, context },
    expect: records,
  },
  {
    id: "C.4.3.3",
    title: "resource search ignores resource.id",
    endpoint: "search/resource",
    body: { ...resourceSearch, resource: record1 },
    expect: records,
  },
  { id: "C.4.4.1", title: "action search (S3)", endpoint: "search/action", body: actionSearch, expect: readWrite },
  {
    id: "C.4.4.2",
    title: "action search with context",
    endpoint: "search/action",
    body: { ...actionSearch, context },
    expect: readWrite,
  },
  {
    id: "C.4.5.1",
    title: "page limit accepted",
    endpoint: "search/subject",
    body: { ...subjectSearch, page: { limit: 1 } },
    expect: { results: [], type: "user" },
  },
  {
    id: "C.4.6.1",
    title: "unknown subject id: empty results",
    endpoint: "search/action",
    body: { subject: { type: "user", id: "nonexistent-user" }, resource: record1 },
    expect: { empty: true },
  },
  {
    id: "C.4.6.2",
    title: "unknown subject type: empty results",
    endpoint: "search/subject",
    body: { ...subjectSearch, subject: { type: "spaceship" } },
    expect: { empty: true },
  },
  {
    id: "C.4.6",
    title: "unknown resource type: empty results",
    endpoint: "search/resource",
    body: { ...resourceSearch, resource: { type: "spaceship" } },
    expect: { empty: true },
  },
  ...(
    [
      ["C.4.7.1", "subject search missing action", "search/subject", { subject: { type: "user" }, resource: record1 }],
      ["C.4.7.1", "resource search missing subject", "search/resource", { action: read, resource: { type: "record" } }],
      ["C.4.7.1", "action search missing resource", "search/action", { subject: alice }],
      [
        "C.4.7.2",
        "subject search, resource without id",
        "search/subject",
        { ...subjectSearch, resource: { type: "record" } },
      ],
      [
        "C.4.7.2",
        "resource search, subject without id",
        "search/resource",
        { ...resourceSearch, subject: { type: "user" } },
      ],
      ["C.4.7.2", "action search, subject without id", "search/action", { ...actionSearch, subject: { type: "user" } }],
    ] as Array<[string, string, Endpoint, unknown]>
  ).map(([id, title, endpoint, body]) => ({ id, title, endpoint, body, expect: { status: 400 as const } })),
];

/** C.4 Search, Properties (S4–S6). */
const SEARCH_PROPERTIES: Case[] = [
  {
    id: "C.4.2.4",
    title: "subject search on resource properties (S4)",
    endpoint: "search/subject",
    body: { subject: { type: "user" }, action: write, resource: record2Archived },
    expect: { results: [bob], type: "user" },
  },
  {
    id: "C.4.3.4",
    title: "resource search on subject properties (S5)",
    endpoint: "search/resource",
    body: { subject: bobAdmin, action: write, resource: { type: "record" } },
    expect: { results: [{ type: "record", id: "record-2" }], type: "record" },
  },
  {
    id: "C.4.4.3",
    title: "action search on properties (S6)",
    endpoint: "search/action",
    body: { subject: bobAdmin, resource: record2Archived },
    expect: { results: [{ name: "write" }] },
  },
];

function post(endpoint: Endpoint, body: unknown): Promise<Answer> {
  return server.post(TENANT, endpoint, body);
}

/** C.2.3, C.3.3, C.4.2–C.4.5, C.5: what the harness checks of each answer. */
async function check(c: Case): Promise<void> {
  const answer = await post(c.endpoint, c.body);
  if ("status" in c.expect) {
    expect(answer.status, JSON.stringify(answer.body)).toBe(400);
    return;
  }
  expect(answer.status, JSON.stringify(answer.body)).toBe(200);
  expect(answer.headers.get("content-type")).toMatch(/^application\/json/);
  if ("decision" in c.expect) checkDecision(answer.body, c.expect.decision);
  else if ("evaluations" in c.expect) checkEvaluations(answer.body, c.expect.evaluations);
  else checkSearch(c, answer.body);
}

function checkDecision(body: unknown, expected: Expected): void {
  expect(schemaFault(response, body, "")).toBeUndefined();
  if (expected !== "any") expect((body as { decision: boolean }).decision).toBe(expected);
}

function checkEvaluations(body: unknown, expected: Expected[]): void {
  const { evaluations } = body as { evaluations: unknown[] };
  expect(evaluations).toHaveLength(expected.length);
  for (const [index, item] of evaluations.entries()) checkDecision(item, expected[index] as Expected);
}

function checkSearch(c: Case, body: unknown): void {
  const { results, page } = body as { results: Entity[]; page?: { next_token?: unknown } };
  expect(Array.isArray(results)).toBe(true);
  if (page !== undefined) expect(typeof page.next_token).toBe("string");
  if ("empty" in c.expect) {
    expect(results).toEqual([]);
    return;
  }
  const { results: included, type } = c.expect as { results: Entity[]; type?: string };
  for (const result of results) {
    if (c.endpoint === "search/action") expect(typeof (result as { name: unknown }).name).toBe("string");
    else expect(result).toEqual({ type, id: expect.any(String) });
  }
  for (const entity of included) expect(results).toContainEqual(entity);
}

const LEVELS: Array<[string, Case[]]> = [
  ["Basic Core", BASIC_CORE],
  ["Basic Properties", BASIC_PROPERTIES],
  ["Batch Core", BATCH_CORE],
  ["Batch Properties", BATCH_PROPERTIES],
  ["Search Core", SEARCH_CORE],
  ["Search Properties", SEARCH_PROPERTIES],
];

describe.each(LEVELS)("%s", (_level, cases) => {
  it.each(cases.map((c) => [`${c.id} ${c.title}`, c] as const))("%s", async (_name, c) => {
    await check(c);
  });
});

describe("Basic Core: transport and headers (C.2.4, C.2.5, C.2.6, C.5)", () => {
  const valid = JSON.stringify({ subject: alice, action: read, resource: record1 });

  it.each([
    ["C.2.4.3 another content type", { "content-type": "text/plain" }, valid],
    ["C.2.4.3 no content type", {}, valid],
    ["C.2.4.4 malformed JSON", { "content-type": "application/json" }, '{"subject": {"type": "user", '],
    ["C.2.4.5 empty body", { "content-type": "application/json" }, ""],
    ["C.5 a body that is not an object", { "content-type": "application/json" }, "[]"],
  ])("%s: 400", async (_name, headers, raw) => {
    const answer = await server.send(TENANT, "evaluation", { headers, raw });
    expect(answer.status).toBe(400);
    expect(answer.body).toEqual({ error: "invalid_request", error_description: expect.any(String) });
  });

  it("C.2.5.1 echoes X-Request-ID, on answers and refusals", async () => {
    const id = "bfe9eb29-ab87-4ca3-be83-a1d5d8305716";
    const headers = { "content-type": "application/json", "x-request-id": id };
    expect((await server.send(TENANT, "evaluation", { headers, raw: valid })).headers.get("x-request-id")).toBe(id);
    expect((await server.send(TENANT, "evaluation", { headers, raw: "{" })).headers.get("x-request-id")).toBe(id);
    expect(
      (await server.send(TENANT, "evaluation", { headers, raw: valid, token: null })).headers.get("x-request-id"),
    ).toBe(id);
  });

  it("C.2.5.2 answers without X-Request-ID, giving one of its own", async () => {
    const answer = await post("evaluation", { subject: alice, action: read, resource: record1 });
    expect(answer.status).toBe(200);
    expect(answer.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("C.2.6 answers the same decision every time", async () => {
    for (const c of [BASIC_CORE[0], BASIC_CORE[1]] as Case[]) {
      const decisions = [];
      for (let i = 0; i < 5; i++)
        decisions.push(((await post("evaluation", c.body)).body as { decision: boolean }).decision);
      expect(new Set(decisions).size).toBe(1);
    }
  });

  it("C.2.3.2 gives each decision a context object naming the decision and the policy revision", async () => {
    const answer = await post("evaluation", { subject: bob, action: write, resource: record1 });
    expect(answer.body).toEqual({
      decision: false,
      context: {
        id: expect.stringMatching(/^[0-9a-f-]{36}$/),
        policy_revision: expect.any(String),
        reasons: [{ code: "admin_write_live_record", message: "admins write archived records only" }],
        reason_admin: { "403": "admins write archived records only" },
      },
    });
  });
});

describe("Batch Core: the evaluation semantics (§7.1.2.1)", () => {
  const items = [
    { subject: alice, action: read, resource: record1 },
    { subject: bob, action: write, resource: record1 },
    { subject: bob, action: read, resource: record1 },
  ];
  const decisions = async (semantic: string, evaluations = items) =>
    (
      (await post("evaluations", { options: { evaluations_semantic: semantic }, evaluations })).body as {
        evaluations: Array<{ decision: boolean }>;
      }
    ).evaluations.map((e) => e.decision);

  it("execute_all answers every evaluation, in order, without a top-level decision (C.3.3)", async () => {
    const answer = await post("evaluations", { evaluations: items });
    expect(Object.keys(answer.body as object)).toEqual(["evaluations"]);
    expect(await decisions("execute_all")).toEqual([true, false, true]);
  });

  it("deny_on_first_deny stops at the first deny", async () => {
    expect(await decisions("deny_on_first_deny")).toEqual([true, false]);
  });

  it("permit_on_first_permit stops at the first permit", async () => {
    expect(await decisions("permit_on_first_permit", [items[1], items[0], items[2]] as typeof items)).toEqual([
      false,
      true,
    ]);
  });
});

describe("Search Core: pagination (C.4.5)", () => {
  it("pages through the subjects one at a time and ends with an empty next_token", async () => {
    const seen: Entity[] = [];
    let token: string | undefined;
    let first = true;
    for (let pages = 0; pages < 10; pages++) {
      const page = first ? { limit: 1 } : { token };
      const answer = await post("search/subject", { ...subjectSearch, page });
      expect(answer.status, JSON.stringify(answer.body)).toBe(200);
      const body = answer.body as { results: Entity[]; page: { next_token: string; count: number } };
      expect(body.results.length).toBeLessThanOrEqual(1);
      expect(body.page.count).toBe(body.results.length);
      seen.push(...body.results);
      first = false;
      token = body.page.next_token;
      if (!token) break;
    }
    expect(token).toBe("");
    expect(seen).toContainEqual(alice);
    expect(seen).toContainEqual(bob);
    expect(new Set(seen.map((s) => JSON.stringify(s))).size).toBe(seen.length);
  });

  it("refuses a page token sent with other entities (§8.2)", async () => {
    const first = await post("search/subject", { ...subjectSearch, page: { limit: 1 } });
    const token = (first.body as { page: { next_token: string } }).page.next_token;
    expect(token).not.toBe("");
    const answer = await post("search/subject", { ...subjectSearch, action: write, page: { token } });
    expect(answer.status).toBe(400);
  });
});

describe("Discovery (C.6)", () => {
  it.each([
    [
      "the well-known URI inserted before the tenant's path",
      (base: string) => `${base}/.well-known/authzen-configuration/t/${TENANT}`,
    ],
    [
      "the well-known URI under the tenant's path",
      (base: string) => `${base}/t/${TENANT}/.well-known/authzen-configuration`,
    ],
  ])("serves the PDP metadata at %s", async (_name, url) => {
    const answer = await fetch(url(server.base));
    expect(answer.status).toBe(200);
    expect(answer.headers.get("content-type")).toMatch(/^application\/json/);
    const metadata = (await answer.json()) as Record<string, string>;
    const pdp = `${server.base}/t/${TENANT}`;
    expect(metadata.policy_decision_point).toBe(pdp);
    expect(metadata).toEqual({
      policy_decision_point: pdp,
      access_evaluation_endpoint: `${pdp}/access/v1/evaluation`,
      access_evaluations_endpoint: `${pdp}/access/v1/evaluations`,
      search_subject_endpoint: `${pdp}/access/v1/search/subject`,
      search_resource_endpoint: `${pdp}/access/v1/search/resource`,
      search_action_endpoint: `${pdp}/access/v1/search/action`,
    });
    for (const value of Object.values(metadata)) expect(new URL(value).search).toBe("");
  });

  it("serves the API at the endpoints the metadata names", async () => {
    const metadata = (await (
      await fetch(`${server.base}/t/${TENANT}/.well-known/authzen-configuration`)
    ).json()) as Record<string, string>;
    const answer = await server.postUrl(metadata.access_evaluation_endpoint as string, {
      subject: alice,
      action: read,
      resource: record1,
    });
    expect(answer.body).toMatchObject({ decision: true });
  });
});
