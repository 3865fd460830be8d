// Loading the conformance corpus: every file reads, every case has a query and either an
// expectation or an expected error, and the corpus's value encodings decode to OPA's JSON form.
import { globSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { compareRego, decode, loadCases } from "../../services/authorize/rego/conformance/cases.ts";

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
});
