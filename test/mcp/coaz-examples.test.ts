// Every example of the COAZ-MCP binding draft (third_party/authzen-coaz/examples.json, copied from the
// draft) through the mapping stage: the draft's request and token in, exactly the draft's AuthZEN
// requests out; and the default mappings the code holds are the draft's, method by method.
import { readFileSync } from "node:fs";
import type { JsonObject } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import {
  ABSENT,
  compileTemplate,
  declaredMappingOf,
  declaredMappingsFromToolsList,
  defaultMapping,
  mapMessage,
} from "../../services/mcp/coaz/index.ts";
import type { JsonRpcRequest } from "../../services/mcp/types.ts";

interface Examples {
  figures: Record<string, JsonObject>;
  defaultMappings: Record<string, JsonObject>;
}
const examples = JSON.parse(
  readFileSync(new URL("../../third_party/authzen-coaz/examples.json", import.meta.url), "utf8"),
) as Examples;
const figure = (name: string) => {
  const value = examples.figures[name];
  if (!value) throw new Error(`no figure ${name}`);
  return structuredClone(value);
};

const RESOURCE = "https://mcp.example.com";
const toolsCall = figure("fig-tools-call") as unknown as JsonRpcRequest;
const token = figure("fig-token-claims");
const toolsList = figure("fig-tools-list");
const declared = declaredMappingsFromToolsList(toolsList);

describe("the binding's examples", () => {
  it("resolves the expressions of fig-cel-resolution as the table says", () => {
    const input = { params: toolsCall.params ?? {}, token, serverAudience: () => RESOURCE };
    const table: Array<[unknown, unknown]> = [
      ["$params.name", "get_customer"],
      ["$params.arguments.id", "cust-12345"],
      ["$token.sub", "alice@example.com"],
      ["$token.?client_id", "http://agentprovider.com/agent-app-id"],
      ["customer", "customer"],
    ];
    for (const [value, expected] of table) expect(compileTemplate(value)(input)).toEqual(expected);
    expect(compileTemplate("$token.?nope")(input)).toBe(ABSENT);
  });

  it("maps fig-tools-call with get_customer's declared mapping (fig-tools-list) to fig-authzen-single", () => {
    expect([...declared.keys()]).toEqual(["get_customer"]);
    const mapped = mapMessage(toolsCall, token, { resource: RESOURCE, declared: (name) => declared.get(name) });
    expect(mapped).toEqual({ kind: "evaluation", request: figure("fig-authzen-single") });
  });

  it("maps get_local_weather, which declares nothing, with the default tools/call mapping", () => {
    const tools = toolsList.tools as JsonObject[];
    expect(declaredMappingOf(tools[1])).toBeUndefined();
    const call = { jsonrpc: "2.0", id: 3, method: "tools/call", params: { name: "get_local_weather", arguments: {} } };
    const mapped = mapMessage(call as JsonRpcRequest, token, {
      resource: RESOURCE,
      declared: (name) => declared.get(name),
    });
    expect(mapped).toEqual({
      kind: "evaluation",
      request: {
        subject: { type: "identity", id: "alice@example.com" },
        context: { agent: "http://agentprovider.com/agent-app-id" },
        action: { name: "tools/call" },
        resource: { type: "tool", id: "get_local_weather" },
      },
    });
  });

  it("maps copy_object (fig-coaz-multi) to the Access Evaluations request of fig-authzen-multi", () => {
    const tool = figure("fig-coaz-multi");
    const call = {
      jsonrpc: "2.0",
      id: 4,
      method: "tools/call",
      params: {
        name: "copy_object",
        arguments: { source: "/bucket/reports/q1.pdf", destination: "/bucket/archive/q1.pdf" },
      },
    } as JsonRpcRequest;
    const mapped = mapMessage(call, token, { resource: RESOURCE, declared: () => declaredMappingOf(tool) });
    expect(mapped).toEqual({ kind: "evaluations", request: figure("fig-authzen-multi") });
  });

  it("maps transfer_funds (fig-coaz-conditions) through its CEL conditionals", () => {
    const tool = figure("fig-coaz-conditions");
    const call = (amount: number, currency: string) =>
      ({
        jsonrpc: "2.0",
        id: 5,
        method: "tools/call",
        params: { name: "transfer_funds", arguments: { from_account: "acc-1", to_account: "acc-2", amount, currency } },
      }) as JsonRpcRequest;
    const options = { resource: RESOURCE, declared: () => declaredMappingOf(tool) };
    expect(mapMessage(call(20_000, "USD"), { ...token, roles: ["treasury"] }, options)).toEqual({
      kind: "evaluation",
      request: {
        subject: { type: "treasury_user", id: "alice@example.com" },
        action: { name: "domestic_transfer" },
        resource: { type: "account", id: "acc-1", properties: { sensitivity: "high" } },
        context: { agent: "http://agentprovider.com/agent-app-id", target_account: "acc-2" },
      },
    });
    const low = mapMessage(call(10, "EUR"), { ...token, roles: ["clerk"] }, options);
    expect(low).toMatchObject({
      request: {
        subject: { type: "standard_user" },
        action: { name: "international_transfer" },
        resource: { properties: { sensitivity: "standard" } },
      },
    });
    // Plain selection of a missing claim is an evaluation error (binding "Expressions and Literals").
    expect(() => mapMessage(call(10, "EUR"), token, options)).toThrow(/expression '\$token\.roles\.exists/);
  });

  it("holds exactly the draft's default mappings (fig-default-envelope's shared subject and context)", () => {
    const shared = figure("fig-default-envelope").evaluation as JsonObject;
    for (const [method, mapping] of Object.entries(examples.defaultMappings)) {
      const evaluation = mapping.evaluation as JsonObject;
      if (method === "completion/complete") {
        // Erratum: the draft writes `$params` inside the expression; only the leading `$` is COAZ syntax.
        const resource = evaluation.resource as JsonObject;
        resource.id = (resource.id as string).replace(/ \$params/g, " params");
      }
      expect(defaultMapping(method), method).toEqual(mapping);
      expect(evaluation.subject).toEqual(shared.subject);
      expect((evaluation.context as JsonObject).agent).toEqual((shared.context as JsonObject).agent);
    }
    // "resources/subscribe and resources/unsubscribe use the same shape; only action.name differs", and so
    // do tasks/result and tasks/cancel with tasks/get.
    const same = (method: string, like: string) => {
      const expected = structuredClone(examples.defaultMappings[like]) as { evaluation: JsonObject };
      expected.evaluation.action = { name: method };
      expect(defaultMapping(method), method).toEqual(expected);
    };
    same("resources/subscribe", "resources/read");
    same("resources/unsubscribe", "resources/read");
    same("tasks/result", "tasks/get");
    same("tasks/cancel", "tasks/get");
  });

  it("answers fig-mapping-error's case: a missing argument names the expression that failed", () => {
    const mapping = {
      evaluation: {
        action: { name: "get_sales" },
        resource: { type: "region", id: "$params.arguments.region" },
      },
    };
    const call = { jsonrpc: "2.0", id: 456, method: "tools/call", params: { name: "get_sales", arguments: {} } };
    const error = figure("fig-mapping-error").error as JsonObject;
    expect(error.code).toBe(-32602);
    expect(() => mapMessage(call as JsonRpcRequest, token, { resource: RESOURCE, declared: () => mapping })).toThrow(
      /^COAZ mapping error: expression '\$params\.arguments\.region' failed: .*region/,
    );
  });
});
