// Property tests: the policies Mandate ships, compiled to Wasm and run through opa-wasm, decide
// exactly as a straightforward hand-written evaluation of the same rules (bench/authz-reference.ts)
// on generated decision inputs — including missing fields, where Rego's undefined semantics apply —
// down to the structured reasons ({code, message}, sorted by code) and obligations (step_up with its
// acr_values, then audit_chain).
import { loadPolicy } from "@open-policy-agent/opa-wasm";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { referenceDecision } from "../../bench/authz-reference.ts";
import { readPolicyDir } from "../../services/authorize/rego/bundle.ts";
import { compileRego } from "../../services/authorize/rego/compile.ts";
import { hostBuiltins } from "../../services/authorize/rego/host-builtins.ts";

type Policy = Awaited<ReturnType<typeof loadPolicy>>;
let policy: Policy;
let data: Record<string, unknown>;

beforeAll(async () => {
  const dir = readPolicyDir(new URL("../../policies/default", import.meta.url).pathname);
  data = dir.data;
  const { wasm } = compileRego({ modules: dir.modules, entrypoints: ["mandate/authz/decision"] });
  policy = await loadPolicy(wasm, undefined, hostBuiltins);
});

const optional = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined, freq: 5 });
const actions = ["orders.read", "orders.write", "orders.delete", "invoices.read", "admin"];
const scopes = [...actions, "orders.*", "invoices.*", "*"];
const tenants = ["acme", "globex"];
const audiences = ["https://orders", "https://invoices"];
const locations = ["https://eu.orders", "https://us.orders"];

const actor = fc.record(
  {
    id: fc.string({ maxLength: 4 }),
    kind: fc.constantFrom("agent", "service"),
    attributes: fc.record({ tenant: optional(fc.constantFrom(...tenants)) }),
  },
  { requiredKeys: ["id", "kind"] },
);
const detail = fc.record(
  {
    type: fc.constantFrom("order", "invoice"),
    actions: fc.subarray(actions),
    locations: optional(fc.subarray(locations)),
  },
  { requiredKeys: ["type", "actions"] },
);
const decisionInput = fc.record(
  {
    version: fc.constant(1),
    tenant: fc.constantFrom(...tenants),
    subject: fc.record({
      id: fc.string({ maxLength: 4 }),
      kind: fc.constantFrom("human", "agent"),
      attributes: fc.record(
        { clearance: fc.integer({ min: 0, max: 5 }), amr: fc.subarray(["pwd", "mfa", "hwk"]) },
        { requiredKeys: [] },
      ),
    }),
    actors: fc.array(actor, { maxLength: 5 }),
    action: fc.constantFrom(...actions),
    resource: fc.record({
      type: fc.constantFrom("order", "invoice"),
      id: fc.string({ maxLength: 4 }),
      attributes: fc.record(
        {
          audience: fc.constantFrom(...audiences),
          classification: fc.integer({ min: 0, max: 5 }),
          location: fc.constantFrom(...locations),
        },
        { requiredKeys: [] },
      ),
    }),
    token: fc.record(
      {
        scopes: fc.subarray(scopes),
        aud: fc.subarray(audiences),
        authorization_details: fc.array(detail, { maxLength: 3 }),
      },
      { requiredKeys: ["scopes"] },
    ),
    mandate: fc.record(
      { expires_at: fc.integer({ min: 0, max: 3000 }), uses_remaining: fc.integer({ min: -1, max: 3 }) },
      { requiredKeys: [] },
    ),
    context: fc.record({ time: fc.integer({ min: 0, max: 3000 }) }),
  },
  { requiredKeys: ["version", "tenant", "subject", "action", "resource", "token", "context"] },
);

describe("policies/default: compiled decision = reference decision", () => {
  it("on generated decision inputs", () => {
    fc.assert(
      fc.property(decisionInput, (input) => {
        const rows = policy.evaluate(input, "mandate/authz/decision") as Array<{ result: unknown }>;
        expect(rows).toEqual([{ result: referenceDecision(input, data) }]);
      }),
      { numRuns: 1000 },
    );
  });

  it("with other data (the chain limit and the step-up acr come from data)", () => {
    const acr = optional(fc.constantFrom("urn:mandate:acr:mfa", "urn:example:acr:phr", "2"));
    fc.assert(
      fc.property(decisionInput, fc.integer({ min: 0, max: 4 }), acr, (input, maxChain, acrValues) => {
        const other = {
          limits: { max_chain: maxChain },
          ...(acrValues === undefined ? {} : { step_up: { acr_values: acrValues } }),
        };
        policy.setData(other);
        const rows = policy.evaluate(input, "mandate/authz/decision") as Array<{ result: unknown }>;
        expect(rows).toEqual([{ result: referenceDecision(input, other) }]);
      }),
      { numRuns: 300 },
    );
    policy.setData(data);
  });
});
