// The policies Mandate ships — policies/default, the library (policies/library/*) and the examples
// (policies/examples/*) — each pass their own `test_*` rules as `mandate policy test` runs them, have
// some, and build into an OPA bundle whose one entrypoint is `mandate/authz/decision`, which answers
// with the decision document of docs/design/authorize.md (allow, reasons {code, message} with
// snake_case codes, obligations {type, ...}).
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { buildBundle, loadBundle } from "../../services/authorize/rego/bundle.ts";
import { runPolicyTests } from "../../services/authorize/rego/policy-test.ts";

const POLICIES = fileURLToPath(new URL("../../policies", import.meta.url));

const subdirectories = (dir: string): string[] =>
  readdirSync(dir)
    .filter((name) => statSync(join(dir, name)).isDirectory())
    .sort()
    .map((name) => join(dir, name));

const bundles = [
  join(POLICIES, "default"),
  ...subdirectories(join(POLICIES, "library")),
  ...subdirectories(join(POLICIES, "examples")),
];

/** A decision input with every collection present, as Authorize builds it. */
const input = {
  version: 1,
  tenant: "acme",
  subject: { id: "alice", kind: "human", attributes: {} },
  actors: [{ id: "agent-1", kind: "agent", attributes: { tenant: "acme" } }],
  action: "orders.read",
  resource: { type: "order", id: "o-1", attributes: {} },
  token: { scopes: [], aud: [], authorization_details: [] },
  context: { time: 1_700_000_000_000 },
};

/** Every field of the wrong type: the library and examples still answer (deny or not), never throw. */
const malformed = {
  version: 1,
  tenant: "acme",
  subject: { id: 7, kind: "human", attributes: { roles: "admin", clearance: "x", amr: "mfa", tenant: 3 } },
  actors: [{ id: null, attributes: null }],
  action: 42,
  resource: { type: 1, id: [], attributes: { tenant: {}, classification: [1] } },
  token: { scopes: "orders.read", aud: "x", authorization_details: [1, "x"] },
  mandate: { id: "m", scopes: "x", resources: "x", authorization_details: [1] },
  context: { time: "now" },
};

interface Decision {
  allow: unknown;
  reasons: Array<{ code: unknown; message: unknown }>;
  obligations: Array<{ type: unknown }>;
}

describe("the shipped policies", () => {
  it("are the default, the six library patterns and the examples", () => {
    const names = bundles.map((dir) => dir.slice(POLICIES.length + 1));
    expect(names).toEqual(
      expect.arrayContaining([
        "default",
        "library/rbac",
        "library/abac",
        "library/delegation",
        "library/time-windows",
        "library/step-up",
        "library/tenant-boundary",
        "examples/authzen-certification",
        "examples/todo",
      ]),
    );
  });

  describe.each(bundles.map((dir) => [dir.slice(POLICIES.length + 1), dir]))("%s", (_name, dir) => {
    it("passes its policy tests", async () => {
      const results = await runPolicyTests(dir);
      expect(results.length).toBeGreaterThan(0);
      expect(results.filter((r) => r.outcome !== "pass")).toEqual([]);
    }, 60_000);

    it("builds a bundle with the entrypoint mandate/authz/decision, answering a decision document", async () => {
      const { bytes, bundle } = await buildBundle(dir);
      expect(bundle.manifest.wasm?.map((w) => w.entrypoint)).toEqual(["mandate/authz/decision"]);
      const { policy } = await loadBundle(bytes);
      // policies/default predates the library and keeps its behaviour: a scope list that is not a
      // list is an evaluation error there (a deny with policy_error once Authorize decides).
      const inputs = dir.endsWith("default") ? [input, {}] : [input, {}, malformed];
      for (const given of inputs) {
        const rows = policy.evaluate(given, "mandate/authz/decision") as Array<{ result: Decision }>;
        expect(rows).toHaveLength(1);
        expectDecisionDocument(rows[0]?.result as Decision);
      }
    }, 60_000);
  });
});

function expectDecisionDocument(decision: Decision): void {
  expect(typeof decision.allow).toBe("boolean");
  expect(Array.isArray(decision.reasons) && Array.isArray(decision.obligations)).toBe(true);
  for (const reason of decision.reasons) {
    expect(reason.code).toMatch(/^[a-z][a-z0-9]*(_[a-z0-9]+)*$/);
    expect(typeof reason.message).toBe("string");
  }
  for (const obligation of decision.obligations) expect(obligation.type).toMatch(/^[a-z][a-z0-9_]*$/);
  // A deny always says why.
  if (decision.allow === false) expect(decision.reasons.length).toBeGreaterThan(0);
}
