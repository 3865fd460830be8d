// The policy's result set as a decision: exactly one object with a boolean `allow`; string reasons
// and obligations expanded; anything else a deny with `policy_result_invalid` (fail closed).
import { describe, expect, it } from "vitest";
import { MAX_DECISION_ITEMS, normaliseResult } from "../../services/authorize/engine/normalise.ts";

const result = (value: unknown) => [{ result: value }];

describe("policy result normalisation", () => {
  it("keeps a well-formed decision, expanding string reasons and obligations", () => {
    expect(
      normaliseResult(
        result({
          allow: true,
          reasons: ["looks fine", { code: "scope_ok", message: "the scope covers it" }, { code: "bare" }],
          obligations: ["audit_chain", { type: "step_up", acr_values: "urn:mandate:acr:mfa", max_age: 300 }],
        }),
      ),
    ).toEqual({
      ok: true,
      decision: {
        allow: true,
        reasons: [
          { code: "policy", message: "looks fine" },
          { code: "scope_ok", message: "the scope covers it" },
          { code: "bare", message: "" },
        ],
        obligations: [
          { type: "audit_chain" },
          { type: "step_up", parameters: { acr_values: "urn:mandate:acr:mfa", max_age: 300 } },
        ],
      },
    });
  });

  it("treats absent reasons and obligations as none", () => {
    expect(normaliseResult(result({ allow: false }))).toEqual({
      ok: true,
      decision: { allow: false, reasons: [], obligations: [] },
    });
  });

  it.each([
    ["no result (undefined decision)", []],
    ["not a result set", { allow: true }],
    ["several results", [{ result: { allow: true } }, { result: { allow: true } }]],
    ["a result entry without result", [{ other: 1 }]],
    ["a string decision", result("allow")],
    ["a boolean decision", result(true)],
    ["an array decision", result([{ allow: true }])],
    ["null", result(null)],
    ["allow missing", result({ reasons: [] })],
    ["allow a string", result({ allow: "true" })],
    ["allow a number", result({ allow: 1 })],
    ["reasons not a list", result({ allow: true, reasons: "fine" })],
    ["a reason of the wrong shape", result({ allow: true, reasons: [42] })],
    ["a reason without a code", result({ allow: true, reasons: [{ message: "m" }] })],
    ["a reason whose message is no string", result({ allow: true, reasons: [{ code: "c", message: 1 }] })],
    ["obligations not a list", result({ allow: true, obligations: { type: "x" } })],
    ["an obligation without a type", result({ allow: true, obligations: [{ acr_values: "x" }] })],
    ["an empty obligation type", result({ allow: true, obligations: [""] })],
    ["too many obligations", result({ allow: true, obligations: Array(MAX_DECISION_ITEMS + 1).fill("x") })],
  ])("refuses %s as policy_result_invalid", (_name, resultSet) => {
    const normalised = normaliseResult(resultSet);
    expect(normalised.ok).toBe(false);
    if (!normalised.ok) {
      expect(normalised.reason.code).toBe("policy_result_invalid");
      expect(normalised.reason.message).toMatch(/^the (policy|decision)/);
    }
  });

  it("never lets an allow through with an obligation it could not read", () => {
    const normalised = normaliseResult(result({ allow: true, obligations: ["ok", 7] }));
    expect(normalised).toMatchObject({ ok: false, reason: { code: "policy_result_invalid" } });
  });
});
