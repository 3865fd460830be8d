// Loading the conformance corpora: every file reads, every case has a query and either an
// expectation or an expected error, the regorus corpus's value encodings decode to OPA's JSON form,
// and OPA's case format is read and judged as OPA's runner judges it.
import { globSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import {
  type ConformanceCase,
  compareRego,
  decode,
  formatOf,
  loadCases,
  type OpaExpectation,
} from "../../services/authorize/rego/conformance/cases.ts";
import { runCase } from "../../services/authorize/rego/conformance/run.ts";

const corpus = (name: string) => fileURLToPath(new URL(`../../third_party/${name}/cases`, import.meta.url));

/** An OPA-format case: package test, the query `data.test.p = x`, the given expectation. */
function opaCase(module: string, opa: Partial<OpaExpectation>, strict = false): ConformanceCase {
  return {
    file: "inline.yaml",
    note: "inline",
    modules: [`package test\n\n${module}\n`],
    data: {},
    inputs: undefined,
    query: "data.test.p = x",
    want: undefined,
    noResult: false,
    error: opa.errorCode ?? opa.errorText,
    skip: false,
    allowSuccess: false,
    strict,
    opa: {
      bindings: undefined,
      errorCode: undefined,
      errorText: undefined,
      defined: undefined,
      sortBindings: false,
      ignoreGeneratedVars: false,
      inputTerm: undefined,
      ...opa,
    },
  };
}

describe("conformance cases", () => {
  it("loads the whole corpus into typed cases", () => {
    const files = globSync(new URL("../../third_party/rego-conformance/cases/**/*.yaml", import.meta.url).pathname);
    const cases = files.flatMap((file) => loadCases(file));
    expect(files.length).toBeGreaterThan(90);
    expect(cases.length).toBeGreaterThan(650);
    for (const c of cases) {
      expect(c.query, c.note).not.toBe("");
      expect(c.want !== undefined || c.error !== undefined || c.noResult || c.skip, c.note).toBe(true);
    }
    const many = cases.find((c) => c.note === "input-multiple-1");
    expect(many?.inputs).toEqual([{ x: 1 }, { x: 5 }]);
    expect(many?.want?.results).toHaveLength(2);
  });

  it("decodes set! to arrays in Rego order without duplicates, object! keys to their JSON text", () => {
    expect(decode({ "set!": ["b", 2, null, [1], "a", 2, true, { k: 1 }] })).toEqual([
      null,
      true,
      2,
      "a",
      "b",
      [1],
      { k: 1 },
    ]);
    expect(
      decode({
        "object!": [
          { key: 1, value: "one" },
          { key: "s", value: { "set!": [2, 1] } },
        ],
      }),
    ).toEqual({
      "1": "one",
      s: [1, 2],
    });
    expect(decode({ x: [{ "set!": [] }] })).toEqual({ x: [[]] });
    expect(compareRego([1, 2], [1, 2, 0])).toBeLessThan(0);
    expect(compareRego({ a: 1 }, { a: 2 })).toBeLessThan(0);
  });

  it("reads OPA's corpus in OPA's format, as its conformance.yaml declares", () => {
    expect(formatOf(corpus("opa-conformance"))).toBe("opa");
    expect(formatOf(corpus("rego-conformance"))).toBe("regorus");
    const files = globSync(`${corpus("opa-conformance")}/**/*.yaml`);
    const cases = files.flatMap((file) => loadCases(file));
    expect(cases.length).toBeGreaterThan(400);
    for (const c of cases) {
      expect(c.query, c.note).not.toBe("");
      const { bindings, errorCode, errorText, defined } = c.opa ?? {};
      expect(
        bindings !== undefined || errorCode !== undefined || errorText !== undefined || defined !== undefined,
      ).toBe(true);
    }
    const sorted = cases.find((c) => c.note === "walkbuiltin/arrays");
    expect(sorted?.opa?.sortBindings).toBe(true);
    const strict = cases.find((c) => c.note === "strings/split_n/non_integer_n");
    expect([strict?.strict, strict?.opa?.errorCode]).toEqual([true, "eval_type_error"]);
  });

  it("judges OPA cases as OPA's runner: bindings as a set, sort_bindings, error codes and text", async () => {
    const value = (module: string, bindings: Array<Record<string, unknown>>, sortBindings = false) =>
      runCase(opaCase(module, { bindings, sortBindings }), { optimize: false });
    expect((await value("p := 1 + 1", [{ x: 2 }])).outcome).toBe("pass");
    expect((await value("p := 1 + 1", [{ x: 3 }])).outcome).toBe("fail");
    expect((await value("p := 1 if false", [])).outcome).toBe("pass");
    expect((await value("p := 1", [])).outcome).toBe("fail");
    // A set is an array in Rego order; sort_bindings sorts the answer, not the expectation.
    expect((await value("p := {3, 1, 2}", [{ x: [1, 2, 3] }])).outcome).toBe("pass");
    expect((await value("p := [3, 1, 2]", [{ x: [1, 2, 3] }], true)).outcome).toBe("pass");
    expect((await value("p := [3, 1, 2]", [{ x: [1, 2, 3] }])).outcome).toBe("fail");
    const conflict = "p := 1\n\np := 2";
    const error = (opa: Partial<OpaExpectation>) => runCase(opaCase(conflict, opa), { optimize: false });
    expect((await error({ errorCode: "eval_conflict_error" })).outcome).toBe("pass");
    expect((await error({ errorCode: "eval_type_error" })).outcome).toBe("fail");
    expect((await error({ errorCode: "eval_conflict_error", errorText: "no such text" })).outcome).toBe("fail");
    const typeError = runCase(opaCase('p := 1 + "a"', { errorCode: "rego_type_error" }), { optimize: false });
    expect((await typeError).outcome).toBe("pass");
    const unsupported = await runCase(opaCase("p := opa.runtime()", { bindings: [] }), { optimize: false });
    expect(unsupported.outcome).toBe("unsupported");
  }, 60_000);
});
