// The COAZ-MCP mapping stage end to end, without a server: every default mapping, pass-through and
// unknown methods, declared envelopes and their errors, and the anchoring the issue insists on — the
// subject to the designated token claim and the acting agent to the token — before any PDP call.
import type { JsonObject } from "@bufbuild/protobuf";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  CoazMethodDenied,
  compileMapping,
  expandEvaluations,
  MAPPED_METHODS,
  type MapOptions,
  mapMessage,
} from "../../services/mcp/coaz/index.ts";
import {
  type AuthzenEvaluation,
  type AuthzenEvaluations,
  CoazMappingError,
  JSONRPC_ACCESS_DENIED,
  type JsonRpcRequest,
} from "../../services/mcp/types.ts";

const RESOURCE = "https://mcp.example.com/mcp";
const ALICE = "alice";
const AGENT = "https://agent.example/client.json";
// A Mandate token exchanged from a mandate: the human in sub, the agent in act.sub and client_id.
const token = {
  iss: "https://as.example/t/demo",
  sub: ALICE,
  aud: ["https://other.example", RESOURCE],
  client_id: AGENT,
  act: { sub: AGENT },
  mandate_id: "mdt_1",
  exp: 1_900_000_000,
};
const request = (method: string, params?: JsonObject): JsonRpcRequest =>
  ({ jsonrpc: "2.0", id: 1, method, ...(params ? { params } : {}) }) as JsonRpcRequest;
/** A JSON-RPC notification: no `id`. */
const notification = (method: string, params?: JsonObject): JsonRpcRequest =>
  ({ jsonrpc: "2.0", method, ...(params ? { params } : {}) }) as JsonRpcRequest;
const map = (message: JsonRpcRequest, options: Partial<MapOptions> = {}, claims: Record<string, unknown> = token) =>
  mapMessage(message, claims, { resource: RESOURCE, ...options });
const evaluationOf = (message: JsonRpcRequest, options?: Partial<MapOptions>, claims?: Record<string, unknown>) => {
  const mapped = map(message, options, claims);
  if (mapped.kind !== "evaluation") throw new Error(`expected an evaluation, got ${mapped.kind}`);
  return mapped.request;
};
const declaring =
  (mapping: unknown): MapOptions["declared"] =>
  (name) =>
    name === "tool" ? mapping : undefined;
const call = (args: JsonObject = {}) => request("tools/call", { name: "tool", arguments: args });

describe("default mappings", () => {
  const shared = { subject: { type: "identity", id: ALICE }, context: { agent: AGENT } };
  const server = { type: "mcp_server", id: RESOURCE };
  const cases: Array<[string, JsonObject | undefined, Partial<AuthzenEvaluation>]> = [
    [
      "initialize",
      { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "c", version: "1" } },
      { resource: server, context: { agent: AGENT, protocol_version: "2025-11-25" } },
    ],
    ["tools/list", undefined, { resource: server }],
    ["tools/call", { name: "echo", arguments: { text: "hi" } }, { resource: { type: "tool", id: "echo" } }],
    ["resources/list", {}, { resource: server }],
    ["resources/read", { uri: "file:///a.txt" }, { resource: { type: "resource", id: "file:///a.txt" } }],
    ["resources/subscribe", { uri: "file:///a.txt" }, { resource: { type: "resource", id: "file:///a.txt" } }],
    ["resources/unsubscribe", { uri: "file:///a.txt" }, { resource: { type: "resource", id: "file:///a.txt" } }],
    ["prompts/list", { cursor: "c1" }, { resource: server }],
    ["prompts/get", { name: "greet", arguments: {} }, { resource: { type: "prompt", id: "greet" } }],
    [
      "completion/complete",
      { ref: { type: "ref/prompt", name: "greet" }, argument: { name: "n", value: "a" } },
      { resource: { type: "prompt", id: "greet" } },
    ],
    [
      "completion/complete",
      { ref: { type: "ref/resource", uri: "file:///{x}" }, argument: { name: "x", value: "a" } },
      { resource: { type: "resource", id: "file:///{x}" } },
    ],
    ["logging/setLevel", { level: "debug" }, { resource: server, context: { agent: AGENT, level: "debug" } }],
    ["tasks/get", { taskId: "t1" }, { resource: { type: "task", id: "t1" } }],
    ["tasks/result", { taskId: "t1" }, { resource: { type: "task", id: "t1" } }],
    ["tasks/cancel", { taskId: "t1" }, { resource: { type: "task", id: "t1" } }],
    ["tasks/list", {}, { resource: server }],
  ];

  it("maps every method the binding lists, resource.id of the server being its configured identifier", () => {
    expect(new Set(cases.map(([method]) => method))).toEqual(new Set(MAPPED_METHODS));
    for (const [method, params, expected] of cases)
      expect(evaluationOf(request(method, params)), method).toEqual({
        ...shared,
        action: { name: method },
        ...expected,
      });
  });

  it("leaves the agent out when the token names none", () => {
    const user = { sub: ALICE, aud: RESOURCE };
    expect(evaluationOf(request("tools/list"), {}, user)).toEqual({
      subject: { type: "identity", id: ALICE },
      action: { name: "tools/list" },
      resource: { type: "mcp_server", id: RESOURCE },
      context: {},
    });
  });

  it("is a mapping error when a parameter the mapping selects is missing", () => {
    for (const [method, params] of [
      ["initialize", {}],
      ["tools/call", {}],
      ["resources/read", { url: "x" }],
      ["prompts/get", undefined],
      ["logging/setLevel", {}],
      ["tasks/get", { id: "t1" }],
      ["completion/complete", { ref: { type: "ref/prompt" } }],
    ] as const)
      expect(() => map(request(method, params as JsonObject | undefined)), method).toThrow(CoazMappingError);
    // JSON-RPC by-position params are not MCP's: no field can be selected from them.
    expect(() => map(request("tools/call", ["echo"] as unknown as JsonObject))).toThrow(CoazMappingError);
    // A tool name that is not a string is no resource id.
    expect(() => map(request("tools/call", { name: 7 }))).toThrow(/resource\.id is not a non-empty string/);
  });

  it("reads the designated on-behalf-of claim as the subject everywhere", () => {
    const agentToken = { sub: AGENT, client_id: AGENT, obo: ALICE, "https://example.com/user": "bob" };
    expect(evaluationOf(request("tools/list"), { subjectClaim: "obo" }, agentToken).subject).toEqual({
      type: "identity",
      id: ALICE,
    });
    expect(
      evaluationOf(request("tools/list"), { subjectClaim: "https://example.com/user" }, agentToken).subject.id,
    ).toBe("bob");
    // A declared `$token.sub` reads as the designated claim too (binding "The Subject-Identity Claim").
    const declared = declaring({
      evaluation: { subject: { id: "$token.sub" }, action: { name: "x" }, resource: { type: "t", id: "1" } },
    });
    expect(evaluationOf(call(), { subjectClaim: "obo", declared }, agentToken).subject.id).toBe(ALICE);
    // A token without the designated claim cannot be anchored.
    expect(() => map(request("tools/list"), { subjectClaim: "obo" })).toThrow(/no subject-identity claim "obo"/);
  });
});

describe("pass-through and unknown methods", () => {
  it("passes ping and notifications without a mapping", () => {
    expect(map(request("ping"))).toEqual({ kind: "pass_through" });
    expect(map(notification("notifications/initialized"))).toEqual({ kind: "pass_through" });
    expect(map(notification("notifications/cancelled", { requestId: 1 }))).toEqual({ kind: "pass_through" });
    // A response (or anything without a method) is no request to pass.
    const response = { jsonrpc: "2.0", id: 1, result: {} } as unknown as JsonRpcRequest;
    expect(() => map(response)).toThrow(/not a JSON-RPC request/);
    // Pass-through needs no token claim at all.
    expect(mapMessage(request("ping"), {}, { resource: RESOURCE })).toEqual({ kind: "pass_through" });
  });

  it("denies (-32001) any other method, notifications/* sent as a request and server-initiated methods", () => {
    for (const message of [
      request("tools/delete", { name: "x" }),
      request("resources/templates/list"),
      request("sampling/createMessage", { messages: [] }),
      request("elicitation/create"),
      request("roots/list"),
      request("notifications/initialized"),
      request("constructor"),
      request("__proto__"),
    ]) {
      let error: unknown;
      try {
        map(message);
      } catch (caught) {
        error = caught;
      }
      expect(error, message.method).toBeInstanceOf(CoazMethodDenied);
      expect((error as CoazMethodDenied).code).toBe(JSONRPC_ACCESS_DENIED);
    }
  });
});

describe("declared mappings", () => {
  it("override tools/call for their own tool only", () => {
    const declared = declaring({
      evaluation: { action: { name: "read" }, resource: { type: "doc", id: "$params.arguments.doc" } },
    });
    expect(evaluationOf(call({ doc: "d1" }), { declared })).toEqual({
      subject: { type: "identity", id: ALICE },
      action: { name: "read" },
      resource: { type: "doc", id: "d1" },
      context: { agent: AGENT },
    });
    const other = request("tools/call", { name: "other", arguments: {} });
    expect(evaluationOf(other, { declared }).action).toEqual({ name: "tools/call" });
    expect(evaluationOf(request("tools/list"), { declared }).action).toEqual({ name: "tools/list" });
  });

  it("fill an omitted subject.id and subject.type, and keep subject properties", () => {
    const declared = declaring({
      evaluation: {
        subject: { properties: { department: "$params.arguments.dept" } },
        action: { name: "a" },
        resource: { type: "r", id: "1" },
      },
    });
    expect(evaluationOf(call({ dept: "sales" }), { declared }).subject).toEqual({
      type: "identity",
      id: ALICE,
      properties: { department: "sales" },
    });
  });

  it("refuse a malformed envelope", () => {
    const resource = { type: "r", id: "1" };
    const action = { name: "a" };
    const malformed: Array<[unknown, RegExp]> = [
      [{}, /exactly one envelope, not 0/],
      [{ evaluation: { action, resource }, evaluations: { evaluations: [{ action, resource }] } }, /not 2 members/],
      [{ access: { action, resource } }, /"access" is not an envelope/],
      ["$params.mapping", /a mapping is a JSON object/],
      [[{ evaluation: { action, resource } }], /a mapping is a JSON object/],
      [{ evaluation: "x" }, /evaluation envelope is not an object/],
      [{ evaluation: { action } }, /has no resource/],
      [{ evaluation: { resource } }, /has no action/],
      [{ evaluation: { action, resource, decision: true } }, /unknown member "decision"/],
      [{ evaluations: { action, resource } }, /non-empty evaluations array/],
      [{ evaluations: { action, resource, evaluations: [] } }, /non-empty evaluations array/],
      [{ evaluations: { evaluations: [{ action }] } }, /evaluations\[0\] has no resource/],
      [{ evaluations: { evaluations: ["x"] } }, /evaluations\[0\] is not an object/],
      [{ evaluations: { evaluations: Array.from({ length: 101 }, () => ({ action, resource })) } }, /more than 100/],
      [{ evaluation: { action, resource: { type: "r", id: "$params.(" } } }, /expression '\$params\.\(' failed/],
    ];
    for (const [mapping, message] of malformed) {
      const run = () => map(call(), { declared: declaring(mapping) });
      expect(run, JSON.stringify(mapping)).toThrow(CoazMappingError);
      expect(run, JSON.stringify(mapping)).toThrow(message);
    }
  });

  it("refuse a subject inside an evaluations entry", () => {
    const mapping = {
      evaluations: {
        evaluations: [
          { action: { name: "read" }, resource: { type: "r", id: "1" } },
          {
            subject: { type: "identity", id: "$token.sub" },
            action: { name: "write" },
            resource: { type: "r", id: "2" },
          },
        ],
      },
    };
    expect(() => compileMapping(mapping)).toThrow(/evaluations\[1\] sets a subject/);
    expect(() => map(call(), { declared: declaring(mapping) })).toThrow(CoazMappingError);
  });

  it("refuse absent or null required fields and non-AuthZEN shapes", () => {
    const errors: Array<[JsonObject, RegExp]> = [
      [{ action: { name: "a" }, resource: { type: "r", id: "$params.?arguments.?id" } }, /resource\.id is required/],
      [{ action: { name: "a" }, resource: { type: "r", id: "$params.arguments.nothing" } }, /resource\.id is required/],
      [
        { action: "$params.?arguments.?action", resource: { type: "r", id: "1" } },
        /action is required but its mapping yielded absent/,
      ],
      [{ action: null, resource: { type: "r", id: "1" } }, /action is required but its mapping yielded null/],
      [
        { action: { name: "a" }, resource: { type: "r", id: "$params.arguments.n" } },
        /resource\.id is not a non-empty string/,
      ],
      [
        { action: { name: "a" }, resource: { type: "r", id: "1", owner: "x" } },
        /resource\.owner is not an AuthZEN member/,
      ],
      [
        { action: { name: "a", properties: "x" }, resource: { type: "r", id: "1" } },
        /action\.properties is not an object/,
      ],
      [
        { action: { name: "a" }, resource: { type: "r", id: "1" }, context: "$params.arguments.n" },
        /context is not an object/,
      ],
      [
        { subject: "$params.arguments.n", action: { name: "a" }, resource: { type: "r", id: "1" } },
        /subject is not an object/,
      ],
    ];
    for (const [evaluation, message] of errors) {
      const run = () => map(call({ nothing: null, n: 3 }), { declared: declaring({ evaluation }) });
      expect(run, JSON.stringify(evaluation)).toThrow(CoazMappingError);
      expect(run, JSON.stringify(evaluation)).toThrow(message);
    }
  });

  it("send an evaluations envelope with its defaults, entries overriding them, and allowed options", () => {
    const mapping = {
      evaluations: {
        action: { name: "read" },
        context: { reason: "$params.arguments.reason" },
        evaluations: [
          { resource: { type: "doc", id: "$params.arguments.from" } },
          { action: { name: "write" }, resource: { type: "doc", id: "$params.arguments.to" }, context: { step: 2 } },
        ],
        options: { evaluations_semantic: "deny_on_first_deny" },
      },
    };
    const mapped = map(call({ from: "a", to: "b", reason: "copy" }), { declared: declaring(mapping) });
    expect(mapped).toEqual({
      kind: "evaluations",
      request: {
        subject: { type: "identity", id: ALICE },
        action: { name: "read" },
        context: { reason: "copy", agent: AGENT },
        evaluations: [
          { resource: { type: "doc", id: "a" } },
          { action: { name: "write" }, resource: { type: "doc", id: "b" }, context: { step: 2, agent: AGENT } },
        ],
        options: { evaluations_semantic: "deny_on_first_deny" },
      },
    });
    if (mapped.kind !== "evaluations") throw new Error("unreachable");
    expect(expandEvaluations(mapped.request)).toEqual([
      {
        subject: { type: "identity", id: ALICE },
        action: { name: "read" },
        resource: { type: "doc", id: "a" },
        context: { reason: "copy", agent: AGENT },
      },
      {
        subject: { type: "identity", id: ALICE },
        action: { name: "write" },
        resource: { type: "doc", id: "b" },
        context: { step: 2, agent: AGENT },
      },
    ]);
    // The binding allows a message only if every decision permits: permit_on_first_permit is refused.
    const permitFirst = structuredClone(mapping);
    permitFirst.evaluations.options.evaluations_semantic = "permit_on_first_permit";
    expect(() => map(call({ from: "a", to: "b", reason: "r" }), { declared: declaring(permitFirst) })).toThrow(
      /evaluations_semantic/,
    );
  });

  it("compile once per mapping object", () => {
    const mapping = { evaluation: { action: { name: "a" }, resource: { type: "r", id: "1" } } };
    expect(compileMapping(mapping)).toBe(compileMapping(mapping));
    expect(compileMapping(mapping, "obo")).not.toBe(compileMapping(mapping));
  });

  it("turn a declared-mapping lookup that throws into a mapping error", () => {
    const declared = () => {
      throw new Error("boom");
    };
    expect(() => map(call(), { declared })).toThrow(CoazMappingError);
  });
});

describe("subject anchoring: subject.id is the token's designated claim, or no PDP call", () => {
  const smuggled: Array<[string, JsonObject]> = [
    ["a literal", { type: "identity", id: "bob" }],
    ["an argument", { type: "identity", id: "$params.arguments.user" }],
    ["another claim", { type: "identity", id: "$token.client_id" }],
    ["an expression", { type: "identity", id: "$token.sub + 'x'" }],
  ];

  it("refuses a declared subject.id that is not the claim (evaluation envelope)", () => {
    for (const [source, subject] of smuggled) {
      const declared = declaring({ evaluation: { subject, action: { name: "a" }, resource: { type: "r", id: "1" } } });
      expect(() => map(call({ user: "bob" }), { declared }), source).toThrow(
        /subject\.id is not the token's "sub" claim/,
      );
    }
  });

  it("refuses it under the evaluations envelope too", () => {
    for (const [source, subject] of smuggled) {
      const declared = declaring({
        evaluations: { subject, evaluations: [{ action: { name: "a" }, resource: { type: "r", id: "1" } }] },
      });
      expect(() => map(call({ user: "bob" }), { declared }), source).toThrow(CoazMappingError);
    }
  });

  it("accepts an argument that happens to equal the claim: the value is what is anchored", () => {
    const declared = declaring({
      evaluation: {
        subject: { id: "$params.arguments.user" },
        action: { name: "a" },
        resource: { type: "r", id: "1" },
      },
    });
    expect(evaluationOf(call({ user: ALICE }), { declared }).subject.id).toBe(ALICE);
  });

  it("allows the binding's override case only when configured, with a warning", () => {
    const warnings: string[] = [];
    const declared = declaring({
      evaluation: {
        subject: { id: "$params.arguments.user" },
        action: { name: "a" },
        resource: { type: "r", id: "1" },
      },
    });
    const message = call({ user: "bob" });
    const mapped = evaluationOf(message, {
      declared,
      onUnanchoredSubject: (warning, which) => {
        expect(which).toBe(message);
        warnings.push(warning);
      },
    });
    expect(mapped.subject.id).toBe("bob");
    expect(warnings).toEqual([
      expect.stringMatching(/subject\.id is not the token's "sub" claim; allowed by configuration/),
    ]);
  });

  it("holds for any smuggled identifier (property)", () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), (user) => {
        fc.pre(user !== ALICE);
        const declared = declaring({
          evaluation: {
            subject: { id: "$params.arguments.user" },
            action: { name: "a" },
            resource: { type: "r", id: "1" },
          },
        });
        expect(() => map(call({ user }), { declared })).toThrow(CoazMappingError);
      }),
    );
  });
});

describe("agent anchoring: context.agent is the token's acting agent", () => {
  const withAgent = (agent: unknown) =>
    declaring({ evaluation: { action: { name: "a" }, resource: { type: "r", id: "1" }, context: { agent } } });

  it("refuses an agent from a literal, an argument or another claim", () => {
    for (const agent of [
      "https://evil.example/agent",
      "$params.arguments.agent",
      "$token.sub",
      "$token.?nothing.orValue(1)",
    ])
      expect(
        () => map(call({ agent: "https://evil.example/agent" }), { declared: withAgent(agent) }),
        String(agent),
      ).toThrow(/context\.agent is not the token's acting agent/);
  });

  it("accepts client_id or act.sub, and fills an omitted agent from the token", () => {
    expect(evaluationOf(call(), { declared: withAgent("$token.client_id") }).context).toEqual({ agent: AGENT });
    expect(evaluationOf(call(), { declared: withAgent("$token.act.sub") }).context).toEqual({ agent: AGENT });
    const declared = declaring({ evaluation: { action: { name: "a" }, resource: { type: "r", id: "1" } } });
    expect(evaluationOf(call(), { declared }).context).toEqual({ agent: AGENT });
  });

  it("refuses an agent when the token names none", () => {
    expect(() => map(call(), { declared: withAgent("x") }, { sub: ALICE, aud: RESOURCE })).toThrow(/acting agent/);
  });

  it("refuses a smuggled agent in an evaluations entry's context", () => {
    const declared = declaring({
      evaluations: {
        evaluations: [
          { action: { name: "a" }, resource: { type: "r", id: "1" }, context: { agent: "$params.arguments.a" } },
        ],
      },
    });
    expect(() => map(call({ a: "other" }), { declared })).toThrow(/evaluations\[0\]\.context\.agent/);
  });

  it("follows the designated agent claims", () => {
    const sub = { sub: ALICE, client_id: "b", act: { sub: "b", act: { sub: "a" } } };
    expect(() => map(call(), { declared: withAgent("$token.act.act.sub") }, sub)).toThrow(/acting agent/);
    expect(
      evaluationOf(call(), { declared: withAgent("$token.act.act.sub"), agentClaims: ["act.act.sub"] }, sub).context,
    ).toEqual({ agent: "a" });
  });
});

describe("expandEvaluations (AuthZEN §7.1.1)", () => {
  const entity = (type: string) =>
    fc.record({ type: fc.constant(type), id: fc.string({ minLength: 1, maxLength: 5 }) }) as fc.Arbitrary<{
      type: string;
      id: string;
    }>;
  const action = fc.record({ name: fc.string({ minLength: 1, maxLength: 5 }) });
  const context = fc.dictionary(fc.string({ maxLength: 3 }), fc.jsonValue({ maxDepth: 1 }), {
    maxKeys: 2,
  }) as fc.Arbitrary<JsonObject>;
  const entry = fc.record({ action, resource: entity("r"), context }, { requiredKeys: [] }) as fc.Arbitrary<
    Partial<AuthzenEvaluation>
  >;

  it("gives each entry the defaults it does not override, whole", () => {
    fc.assert(
      fc.property(
        entity("s"),
        fc.option(action, { nil: undefined }),
        fc.option(entity("r"), { nil: undefined }),
        fc.option(context, { nil: undefined }),
        fc.array(entry, { minLength: 1, maxLength: 5 }),
        (subject, topAction, topResource, topContext, entries) => {
          const request = {
            subject,
            ...(topAction ? { action: topAction } : {}),
            ...(topResource ? { resource: topResource } : {}),
            ...(topContext ? { context: topContext } : {}),
            evaluations: entries,
          } as AuthzenEvaluations;
          const complete = entries.every((e) => (e.action ?? topAction) && (e.resource ?? topResource));
          if (!complete) {
            expect(() => expandEvaluations(request)).toThrow(CoazMappingError);
            return;
          }
          const expanded = expandEvaluations(request);
          expect(expanded).toHaveLength(entries.length);
          expanded.forEach((evaluation, index) => {
            const own = entries[index] as Partial<AuthzenEvaluation>;
            expect(evaluation.subject).toBe(subject);
            expect(evaluation.action).toBe(own.action ?? topAction);
            expect(evaluation.resource).toBe(own.resource ?? topResource);
            const expectedContext = own.context ?? topContext;
            if (expectedContext === undefined) expect(evaluation).not.toHaveProperty("context");
            else expect(evaluation.context).toBe(expectedContext);
          });
        },
      ),
    );
  });

  it("reads an empty list as the single evaluation of the top level (§7.1)", () => {
    const top = { subject: { type: "s", id: "1" }, action: { name: "a" }, resource: { type: "r", id: "1" } };
    expect(expandEvaluations({ ...top, evaluations: [] })).toEqual([top]);
    expect(() => expandEvaluations({ subject: top.subject, evaluations: [] })).toThrow(/no action/);
  });

  it("lets an entry's own subject override the default, as AuthZEN defines for any client", () => {
    const request = {
      subject: { type: "s", id: "1" },
      action: { name: "a" },
      resource: { type: "r", id: "1" },
      evaluations: [{}, { subject: { type: "s", id: "2" } }],
    } as unknown as AuthzenEvaluations;
    expect(expandEvaluations(request).map((e) => e.subject.id)).toEqual(["1", "2"]);
  });
});

describe("cost of mapping a tools/call with a declared mapping (printed, never asserted)", () => {
  it("measures", () => {
    const declared = declaring({
      evaluation: {
        subject: { type: "identity", id: "$token.sub" },
        action: { name: "$params.arguments.amount > 10000 ? 'large_transfer' : 'transfer'" },
        resource: {
          type: "account",
          id: "$params.arguments.from",
          properties: { currency: "$params.arguments.currency" },
        },
        context: { agent: "$token.?client_id", to: "$params.arguments.to" },
      },
    });
    const message = call({ from: "acc-1", to: "acc-2", amount: 20_000, currency: "EUR" });
    for (let i = 0; i < 2_000; i++) map(message, { declared });
    const runs = 20_000;
    const start = process.hrtime.bigint();
    for (let i = 0; i < runs; i++) map(message, { declared });
    const micros = Number(process.hrtime.bigint() - start) / 1_000 / runs;
    console.log(`mapMessage(tools/call, declared evaluation mapping): ${micros.toFixed(2)} µs per call`);
    expect(micros).toBeGreaterThan(0);
  });
});
