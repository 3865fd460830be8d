// The AuthZEN request checks, batch semantics and search pagination without a server: the schema
// Mandate validates with is the specification's (third_party/authzen), defaults merge as §7.1.1
// says, the three semantics stop where §7.1.2.1 says, and pages follow §8.2.
import { describe, expect, it } from "vitest";
import { Evaluator, type PolicyDecision } from "../../services/authorize/authzen/evaluate.ts";
import { MAX_EVALUATIONS } from "../../services/authorize/authzen/handler.ts";
import { pdpMetadata } from "../../services/authorize/authzen/metadata.ts";
import {
  BadRequest,
  type Evaluation,
  evaluationRequest,
  evaluationsRequest,
  type JsonObject,
  type SearchKind,
  searchRequest,
} from "../../services/authorize/authzen/requests.ts";
import { type EntitySchema, EVALUATION_REQUEST_SCHEMA, schemaFault } from "../../services/authorize/authzen/schema.ts";
import { DEFAULT_PAGE_SIZE, searchPage } from "../../services/authorize/authzen/search.ts";
import { createLogger } from "../../services/shared/logger.ts";
import { vendoredSchema } from "./authzen-server.ts";

/** A vendored schema with only its validation keywords (what schema.ts interprets). */
const vendored = vendoredSchema;

const alice = { type: "user", id: "alice" };
const read = { name: "read" };
const record1 = { type: "record", id: "record-1" };

describe("the specification's JSON schemas", () => {
  it("are the schema Mandate validates requests with", () => {
    expect(EVALUATION_REQUEST_SCHEMA).toEqual(vendored("evaluation-request.schema.json"));
  });

  it("use only the keywords schema.ts interprets", () => {
    const keywords = new Set<string>();
    const walk = (schema: EntitySchema) => {
      for (const key of Object.keys(schema)) keywords.add(key);
      for (const member of Object.values(schema.properties ?? {})) walk(member);
    };
    walk(vendored("evaluation-request.schema.json"));
    walk(vendored("evaluation-response.schema.json"));
    expect([...keywords].sort()).toEqual(["properties", "required", "type"]);
  });

  it("name the first violation by its path", () => {
    const request = vendored("evaluation-request.schema.json");
    expect(schemaFault(request, { subject: alice, action: read, resource: record1 }, "")).toBeUndefined();
    expect(schemaFault(request, { action: read, resource: record1 }, "")).toBe("subject is required");
    expect(schemaFault(request, { subject: { id: "alice" }, action: read, resource: record1 }, "")).toBe(
      "subject.type is required",
    );
    expect(schemaFault(request, { subject: alice, action: { name: 123 }, resource: record1 }, "")).toBe(
      "action.name must be a string, not a number",
    );
    expect(schemaFault(request, { subject: "alice", action: read, resource: record1 }, "")).toBe(
      "subject must be an object, not a string",
    );
    expect(schemaFault(request, [], "")).toBe("the request body must be an object, not an array");
  });
});

describe("Access Evaluation request (§6.1)", () => {
  it("keeps the four members and ignores unknown ones (§10.1.1)", () => {
    const evaluation = evaluationRequest({ subject: alice, action: read, resource: record1, foo: "bar" });
    expect(evaluation).toEqual({ subject: alice, action: read, resource: record1 });
  });

  it.each([
    [{ subject: alice, action: read }, "resource is required"],
    [{ subject: alice, action: read, resource: { type: "record" } }, "resource.id is required"],
    [{ subject: alice, action: read, resource: record1, context: "now" }, "context must be an object, not a string"],
    [
      { subject: { ...alice, properties: [] }, action: read, resource: record1 },
      "subject.properties must be an object",
    ],
  ])("refuses %j: %s", (body, message) => {
    expect(() => evaluationRequest(body)).toThrow(BadRequest);
    expect(() => evaluationRequest(body)).toThrow(message);
  });
});

describe("Access Evaluations request (§7.1)", () => {
  it("is a single evaluation without evaluations, or with an empty array", () => {
    for (const evaluations of [undefined, []]) {
      expect(evaluationsRequest({ subject: alice, action: read, resource: record1, evaluations }, 100)).toEqual({
        kind: "single",
        evaluation: { subject: alice, action: read, resource: record1 },
      });
    }
  });

  it("merges the top-level defaults into each item, an item's member replacing the default whole (§7.1.1)", () => {
    const archived = { type: "record", id: "record-2", properties: { status: "archived" } };
    const request = evaluationsRequest(
      {
        subject: alice,
        action: { name: "write" },
        resource: { ...record1, properties: { status: "active" } },
        context: { time: "2025-06-27T18:03-07:00" },
        evaluations: [{}, { resource: archived, context: { source: "override" } }],
      },
      100,
    );
    expect(request).toEqual({
      kind: "batch",
      semantic: "execute_all",
      items: [
        {
          subject: alice,
          action: { name: "write" },
          resource: { ...record1, properties: { status: "active" } },
          context: { time: "2025-06-27T18:03-07:00" },
        },
        { subject: alice, action: { name: "write" }, resource: archived, context: { source: "override" } },
      ],
    });
  });

  it("makes an item that cannot be evaluated a fault of that item only (§7.2.1)", () => {
    const request = evaluationsRequest(
      { subject: alice, action: read, evaluations: [{ resource: record1 }, {}, 7, { resource: { type: "x" } }] },
      100,
    );
    expect(request.kind === "batch" && request.items).toEqual([
      { subject: alice, action: read, resource: record1 },
      { fault: "evaluations[1].resource is required: neither the evaluation nor the request's defaults give one" },
      { fault: "evaluations[2] must be an object, not a number" },
      { fault: "evaluations[3].resource.id is required" },
    ]);
  });

  it.each([
    [{ evaluations: {} }, "evaluations must be an array, not an object"],
    [{ subject: { type: "user" }, evaluations: [{}] }, "subject.id is required (a top-level subject is the default"],
    [{ options: { evaluations_semantic: "first" }, evaluations: [{}] }, "options.evaluations_semantic must be one of"],
    [{ options: [], evaluations: [{}] }, "options must be an object, not an array"],
    [{ evaluations: Array.from({ length: MAX_EVALUATIONS + 1 }, () => ({})) }, "at most 100 are accepted"],
  ])("refuses %j as a whole", (body, message) => {
    expect(() => evaluationsRequest(body, MAX_EVALUATIONS)).toThrow(message);
  });

  it("reads the semantic from options, execute_all by default (§7.1.2.1)", () => {
    const semantic = (options?: unknown) => {
      const request = evaluationsRequest(
        { subject: alice, action: read, options, evaluations: [{ resource: record1 }] },
        5,
      );
      return request.kind === "batch" ? request.semantic : undefined;
    };
    expect(semantic()).toBe("execute_all");
    expect(semantic({ another_option: 1 })).toBe("execute_all");
    expect(semantic({ evaluations_semantic: "deny_on_first_deny" })).toBe("deny_on_first_deny");
    expect(semantic({ evaluations_semantic: "permit_on_first_permit" })).toBe("permit_on_first_permit");
  });
});

describe("Search requests (§8.4–§8.6)", () => {
  const typeOnly = { subject: { type: "user" }, action: read, resource: { type: "record" } };
  it.each([
    ["subject", typeOnly, "resource.id is required"],
    ["resource", typeOnly, "subject.id is required"],
    ["action", { subject: { type: "user" }, resource: record1 }, "subject.id is required"],
    ["subject", { subject: { type: "user" }, resource: record1 }, "action is required"],
    ["resource", { action: read, resource: { type: "record" } }, "subject is required"],
    ["action", { subject: alice }, "resource is required"],
  ] as Array<[SearchKind, JsonObject, string]>)("%s search refuses %j", (kind, body, message) => {
    expect(() => searchRequest(kind, body)).toThrow(message);
  });

  it("ignores the searched entity's id, and an action search's action", () => {
    const subject = searchRequest("subject", { subject: alice, action: read, resource: record1 });
    expect(subject.subject).toEqual({ type: "user" });
    const resource = searchRequest("resource", { subject: alice, action: read, resource: record1 });
    expect(resource.resource).toEqual({ type: "record" });
    const action = searchRequest("action", { subject: alice, action: { name: 5 }, resource: record1 });
    expect(action.action).toBeUndefined();
  });

  it.each([
    [{ limit: -1 }, "page.limit must be a non-negative integer"],
    [{ limit: 1.5 }, "page.limit must be a non-negative integer"],
    [{ token: 5 }, "page.token must be a string"],
    ["next", "page must be an object"],
  ])("refuses page %j", (page, message) => {
    expect(() => searchRequest("subject", { ...typeOnly, resource: record1, page })).toThrow(message);
  });
});

describe("search pages (§8.2)", () => {
  const users = Array.from({ length: 250 }, (_, i) => ({ type: "user", id: `u${String(i).padStart(3, "0")}` }));
  const data = { subjects: [...users, { type: "group", id: "g1" }, { type: "user" }, users[0]], actions: "read" };
  const even = async (evaluation: Evaluation) => Number(evaluation.subject.id.slice(1)) % 2 === 0;
  const body = (page?: JsonObject) => ({ subject: { type: "user" }, action: read, resource: record1, page });

  async function allPages(page: JsonObject | undefined, allowed = even) {
    const pages = [];
    let token: string | undefined;
    do {
      const response = await searchPage("demo", searchRequest("subject", body({ ...page, token })), data, allowed);
      pages.push(response);
      token = response.page.next_token || undefined;
    } while (token && pages.length < 100);
    return pages;
  }

  it("answers every allowed candidate of the searched type once, across pages of the default size", async () => {
    const pages = await allPages(undefined, async () => true);
    expect(pages.map((p) => p.page.count)).toEqual([DEFAULT_PAGE_SIZE, DEFAULT_PAGE_SIZE, 50]);
    expect(pages.at(-1)?.page.next_token).toBe("");
    expect(pages.flatMap((p) => p.results)).toEqual(users);
  });

  it("keeps the limit of the first request when later ones send only the token", async () => {
    const pages = await allPages({ limit: 40 });
    expect(pages.map((p) => p.results.length)).toEqual([40, 40, 40, 5]);
    expect(pages.flatMap((p) => p.results)).toEqual(users.filter((_, i) => i % 2 === 0));
    // One more allowed candidate exists exactly when next_token is not empty.
    expect(pages.slice(0, -1).every((p) => p.page.next_token !== "")).toBe(true);
  });

  it("refuses a token replayed with other entities, and one it did not issue", async () => {
    const first = await searchPage("demo", searchRequest("subject", body({ limit: 1 })), data, even);
    const token = first.page.next_token;
    const changed = { ...body({ token }), resource: { type: "record", id: "record-2" } };
    await expect(searchPage("demo", searchRequest("subject", changed), data, even)).rejects.toThrow(
      "page.token belongs to another search",
    );
    await expect(searchPage("other", searchRequest("subject", body({ token })), data, even)).rejects.toThrow(
      "page.token belongs to another search",
    );
    await expect(searchPage("demo", searchRequest("subject", body({ token: "x!" })), data, even)).rejects.toThrow(
      "page.token is not a token this PDP issued",
    );
  });

  it("finds nothing, without an error, when the policy lists no candidates of the kind or type", async () => {
    for (const candidates of [undefined, {}, { subjects: "alice" }, data]) {
      const request = searchRequest("subject", { ...body(), subject: { type: "spaceship" } });
      expect(await searchPage("demo", request, candidates, even)).toEqual({
        page: { next_token: "", count: 0 },
        results: [],
      });
    }
  });

  it("puts a candidate's properties over the searched entity's for its evaluation", async () => {
    const seen: Evaluation[] = [];
    const request = searchRequest("resource", {
      subject: alice,
      action: { name: "write" },
      resource: { type: "record", properties: { status: "active", owner: "bob" } },
    });
    const resources = [{ type: "record", id: "record-2", properties: { status: "archived" } }];
    await searchPage("demo", request, { resources }, async (e) => Boolean(seen.push(e)));
    expect(seen[0]?.resource).toEqual({
      type: "record",
      id: "record-2",
      properties: { status: "archived", owner: "bob" },
    });
  });
});

describe("batch semantics (§7.1.2.1) and decision context (§5.5.1)", () => {
  const logger = createLogger("silent");
  const decisions: Record<string, boolean> = { "1": true, "2": false, "3": true };
  const policy = {
    async decide(_tenant: string, input: JsonObject): Promise<PolicyDecision> {
      const id = (input.resource as { id: string }).id;
      if (id === "boom") throw new Error("engine bug");
      const allow = decisions[id] ?? false;
      return {
        allow,
        reasons: allow ? [] : [{ code: "not_owner", message: "alice does not own it" }],
        obligations: allow ? [{ type: "log", parameters: { level: "info" } }] : [],
        decisionId: `d-${id}`,
        policyRevision: "rev-1",
      };
    },
    searchCandidates: async () => undefined,
  };
  const evaluator = new Evaluator({
    policy,
    tenant: "demo",
    requestId: "r-1",
    callerRequestId: true,
    now: () => 1,
    logger,
  });
  const items = ["1", "2", "3"].map((id) => ({ subject: alice, action: read, resource: { type: "document", id } }));
  const response = vendored("evaluation-response.schema.json");

  it("execute_all answers every item in order; the short-circuits stop at the first deny or permit", async () => {
    type Items = Parameters<Evaluator["decideAll"]>[0];
    const decided = async (semantic: Parameters<Evaluator["decideAll"]>[1], list: Items = items) =>
      (await evaluator.decideAll(list, semantic)).map((d) => d.decision);
    expect(await decided("execute_all")).toEqual([true, false, true]);
    expect(await decided("deny_on_first_deny")).toEqual([true, false]);
    expect(await decided("permit_on_first_permit")).toEqual([true]);
    expect(await decided("permit_on_first_permit", [items[1], items[2]] as Evaluation[])).toEqual([false, true]);
    expect(await decided("deny_on_first_deny", [{ fault: "bad" }, items[0] as Evaluation])).toEqual([false]);
  });

  it("answers decisions with the spec's response schema, the id, revision, reasons and obligations", async () => {
    const [allowed, denied] = await evaluator.decideAll(items.slice(0, 2), "execute_all");
    expect(allowed).toEqual({
      decision: true,
      context: { id: "d-1", policy_revision: "rev-1", obligations: [{ type: "log", parameters: { level: "info" } }] },
    });
    expect(denied).toEqual({
      decision: false,
      context: {
        id: "d-2",
        policy_revision: "rev-1",
        reasons: [{ code: "not_owner", message: "alice does not own it" }],
        reason_admin: { "403": "alice does not own it" },
      },
    });
    for (const decision of [allowed, denied]) expect(schemaFault(response, decision, "")).toBeUndefined();
  });

  it("denies, never throws, when the engine fails", async () => {
    const failed = await evaluator.decide({ subject: alice, action: read, resource: { type: "document", id: "boom" } });
    expect(failed).toEqual({
      decision: false,
      context: { error: { status: 500, message: "the decision could not be made" } },
    });
  });
});

describe("PDP metadata (§9.1)", () => {
  it("names the tenant's PDP and its endpoints under it", () => {
    expect(pdpMetadata("https://mandate.example.com", "acme")).toEqual({
      policy_decision_point: "https://mandate.example.com/t/acme",
      access_evaluation_endpoint: "https://mandate.example.com/t/acme/access/v1/evaluation",
      access_evaluations_endpoint: "https://mandate.example.com/t/acme/access/v1/evaluations",
      search_subject_endpoint: "https://mandate.example.com/t/acme/access/v1/search/subject",
      search_resource_endpoint: "https://mandate.example.com/t/acme/access/v1/search/resource",
      search_action_endpoint: "https://mandate.example.com/t/acme/access/v1/search/action",
    });
  });
});
