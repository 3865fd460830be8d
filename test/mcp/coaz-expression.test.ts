// The COAZ literal/expression rule (framework "Literals and Expressions", "The Expression Contract";
// binding "Expressions and Literals") and the `$token.aud` resolution of the binding's default mappings.
import type { JsonObject } from "@bufbuild/protobuf";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  ABSENT,
  compileExpression,
  compileTemplate,
  type ExpressionInput,
  resolveServerAudience,
} from "../../services/mcp/coaz/index.ts";
import { CoazMappingError } from "../../services/mcp/types.ts";

const input = (params: JsonObject = {}, token: Record<string, unknown> = {}): ExpressionInput => ({
  params,
  token,
  serverAudience: () => "https://mcp.example.com",
});
const resolve = (value: unknown, params?: JsonObject, token?: Record<string, unknown>) =>
  compileTemplate(value)(input(params, token));

describe("literals and expressions", () => {
  it("takes `$$` as a literal `$` and any string not starting with `$` verbatim", () => {
    expect(resolve("$$50")).toBe("$50");
    expect(resolve("$$token.sub", {}, { sub: "alice" })).toBe("$token.sub");
    expect(resolve("$$")).toBe("$");
    expect(resolve("price: $5")).toBe("price: $5");
    fc.assert(
      fc.property(fc.string(), (text) => {
        expect(resolve(`$$${text}`)).toBe(`$${text}`);
        if (!text.startsWith("$")) expect(resolve(text)).toBe(text);
      }),
    );
  });

  it("keeps numbers, booleans and null as literals and walks objects and lists to their leaves", () => {
    expect(resolve(10)).toBe(10);
    expect(resolve(true)).toBe(true);
    expect(resolve(null)).toBe(null);
    expect(resolve({ a: ["$params.x", "$$y", 1], "$not-an-expression": "$params.x" }, { x: "X" })).toEqual({
      a: ["X", "$y", 1],
      "$not-an-expression": "X",
    });
    // "__proto__" is a member like any other (fast-check found it): never the result's prototype.
    const proto = resolve(JSON.parse('{"__proto__": ["$params.x"]}'), { x: "X" }) as object;
    expect(Object.getPrototypeOf(proto)).toBe(Object.prototype);
    expect(Object.getOwnPropertyDescriptor(proto, "__proto__")?.value).toEqual(["X"]);
    const viaCel = resolve("$params.o", { o: JSON.parse('{"__proto__": {"a": 1}}') }) as object;
    expect(Object.getPrototypeOf(viaCel)).toBe(Object.prototype);
    expect(Object.getOwnPropertyDescriptor(viaCel, "__proto__")?.value).toEqual({ a: 1 });
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        // Any JSON without a leading `$` in its strings is its own resolution (every leading `$` goes:
        // "$$$x" less one is "$$x", an escaped literal — fast-check found it).
        const plain = JSON.parse(JSON.stringify(value, (_k, v) => (typeof v === "string" ? v.replace(/^\$+/, "") : v)));
        expect(resolve(plain)).toEqual(plain);
      }),
    );
  });

  it("evaluates CEL over params and token: selection, index, exists, conditionals, maps and lists", () => {
    const params = { name: "n", arguments: { "customer-id": "c1", amount: 12_000, tags: ["a", "b"] } };
    const token = { sub: "alice", roles: ["treasury"], exp: 1_750_000_000 };
    expect(resolve("$params.arguments['customer-id']", params)).toBe("c1");
    expect(resolve("$token.roles.exists(r, r == 'treasury')", params, token)).toBe(true);
    expect(resolve("$params.arguments.amount > 10000 ? 'high' : 'standard'", params)).toBe("high");
    expect(resolve("$'urn:doc:' + params.name", params)).toBe("urn:doc:n");
    expect(resolve("$params.arguments.tags", params)).toEqual(["a", "b"]);
    expect(resolve("$params.arguments.tags.map(t, t + '!')", params)).toEqual(["a!", "b!"]);
    expect(resolve("$({'who': token.sub, 'n': 1, 'ok': true})", params, token)).toEqual({
      who: "alice",
      n: 1,
      ok: true,
    });
    expect(resolve("$token.exp", params, token)).toBe(1_750_000_000);
    expect(resolve("$size(params.arguments.tags)", params)).toBe(2);
    expect(resolve("$params.arguments", params)).toEqual(params.arguments);
  });

  it("omits a field when optional selection finds nothing, and keeps a present value", () => {
    const token = { client_id: "agent-1", act: { sub: "agent-1" } };
    expect(resolve("$token.?client_id", {}, token)).toBe("agent-1");
    expect(resolve("$token.?client_id", {}, {})).toBe(ABSENT);
    expect(resolve("$token.?act.?sub", {}, token)).toBe("agent-1");
    expect(resolve("$token.?act.?sub", {}, {})).toBe(ABSENT);
    expect(resolve("$token.?nope.orValue('fallback')", {}, token)).toBe("fallback");
    expect(resolve({ agent: "$token.?client_id", case: "$params.?case" }, {}, token)).toEqual({ agent: "agent-1" });
    // A present null is a value, not an absence.
    expect(resolve({ note: "$params.?note" }, { note: null })).toEqual({ note: null });
  });

  it("refuses plain selection of a missing key, bad CEL, unknown variables and non-JSON results", () => {
    const cases: Array<[string, RegExp]> = [
      ["$params.arguments.region", /expression '\$params\.arguments\.region' failed: .*region/],
      ["$params.name +", /expression '\$params\.name \+' failed/],
      ["$request.path", /expression '\$request\.path' failed: .*request/],
      ["$b'bytes'", /not a JSON value/],
      ["$1u", /not a JSON value/],
      ["$timestamp('2020-01-01T00:00:00Z')", /not a JSON value/],
      ["$1.0 / 0.0", /not a JSON number/],
      ["$9223372036854775807", /beyond the integers JSON keeps exactly/],
      ["$[optional.none()]", /optional value inside a list/],
      ["$params.constructor", /failed/],
    ];
    for (const [expression, message] of cases) {
      const run = () => resolve(expression, { arguments: {} });
      expect(run, expression).toThrow(CoazMappingError);
      expect(run, expression).toThrow(message);
    }
    expect(() => compileTemplate(["$token.?nope"])(input())).toThrow(/absent value inside a list/);
    expect(() => compileTemplate({ when: new Date() })).toThrow(CoazMappingError);
  });

  it("compiles each expression once", () => {
    expect(compileExpression("params.name == 'x'")).toBe(compileExpression("params.name == 'x'"));
  });

  it("never reads the prototype of the input objects", () => {
    const params = JSON.parse('{"__proto__": {"polluted": "yes"}}') as JsonObject;
    expect(() => resolve("$params.polluted", params)).toThrow(CoazMappingError);
    expect(() => resolve("$params.toString", {})).toThrow(CoazMappingError);
  });
});

describe("$token.aud: one value identifying this server (binding 'Default Mappings')", () => {
  it("uses the configured resource identifier", () => {
    expect(resolveServerAudience(["https://other.example", "https://mcp.example.com"], "https://mcp.example.com")).toBe(
      "https://mcp.example.com",
    );
    expect(resolveServerAudience("https://mcp.example.com", "https://mcp.example.com")).toBe("https://mcp.example.com");
  });

  it("without one, takes a string aud or an array of exactly one member, and refuses anything else", () => {
    expect(resolveServerAudience("https://mcp.example.com")).toBe("https://mcp.example.com");
    expect(resolveServerAudience(["https://mcp.example.com"])).toBe("https://mcp.example.com");
    for (const aud of [["a", "b"], [], [7], "", undefined, 42, { a: 1 }])
      expect(() => resolveServerAudience(aud), JSON.stringify(aud)).toThrow(CoazMappingError);
  });

  it("is what `$token.aud` resolves to, never the raw array", () => {
    expect(compileTemplate("$token.aud")(input({}, { aud: ["x", "y"] }))).toBe("https://mcp.example.com");
    // Inside a larger expression the claim is the claim.
    expect(compileTemplate("$size(token.aud)")(input({}, { aud: ["x", "y"] }))).toBe(2);
  });
});
