// The architecture's import rules, checked on every module under services/: shared code depends on
// nothing above it; a service reaches another only through that service's client module (only the
// composition roots, runtime and cli, assemble services directly); and no module imports itself
// through a cycle, type-only imports included.
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import {
  boundaryViolations,
  codeShape,
  importCycles,
  type ParsedModule,
  parseModule,
  sourceFiles,
} from "../../scripts/code-shape.ts";

const root = resolve(import.meta.dirname, "../..");
const shape = codeShape(root);

/** A made-up module importing `to` from `from`, for checking the rules themselves. */
function importing(from: string, ...to: string[]): ParsedModule {
  return {
    file: from,
    lines: 1,
    functions: [],
    imports: to.map((target) => ({ from, to: target, line: 1, typeOnly: false })),
  };
}

describe("module boundaries", () => {
  it("finds every module under services/ and its imports", () => {
    expect(shape.modules.length).toBeGreaterThan(100);
    const server = shape.modules.find((m) => m.file === "services/issue/oauth/server.ts");
    expect(server?.imports.map((i) => i.to)).toContain("services/issue/oauth/endpoints/token.ts");
    // Type-only and dynamic imports count: they are dependencies a reader follows too.
    const cli = parseModule(root, "services/cli/main.ts");
    expect(cli.imports.length).toBeGreaterThan(0);
  });

  it("has no import from shared code into a service, nor between services except through their clients", () => {
    expect(shape.violations.map((v) => `${v.from}:${v.line} → ${v.to}: ${v.rule}`)).toEqual([]);
  });

  it("has no import cycles", () => {
    expect(shape.cycles).toEqual([]);
  });

  it("refuses what the rules forbid", () => {
    const rules = (m: ParsedModule) => boundaryViolations([m]).map((v) => v.rule);
    expect(rules(importing("services/shared/deps.ts", "services/signer/keys.ts"))).toEqual([
      "shared code depends on nothing above it (imports services/signer)",
    ]);
    expect(rules(importing("services/issue/service.ts", "services/tenants/directory.ts"))).toEqual([
      "services reach services/tenants only through its client.ts",
    ]);
    expect(rules(importing("services/audit/log.ts", "services/runtime/start.ts"))).toEqual([
      "services do not import the composition root services/runtime",
    ]);
    // Allowed: a service's client, shared code, gen/, and anything from a composition root.
    expect(
      rules(
        importing(
          "services/audit/checkpoints.ts",
          "services/signer/client.ts",
          "services/shared/clock.ts",
          "gen/mandate/v1/audit_pb.js",
        ),
      ),
    ).toEqual([]);
    expect(rules(importing("services/runtime/start.ts", "services/signer/keys.ts"))).toEqual([]);
  });

  it("finds cycles, including through type-only imports", () => {
    const a = importing("services/issue/a.ts", "services/issue/b.ts");
    const b: ParsedModule = {
      ...importing("services/issue/b.ts"),
      imports: [{ from: "services/issue/b.ts", to: "services/issue/a.ts", line: 1, typeOnly: true }],
    };
    const c = importing("services/issue/c.ts", "services/issue/c.ts");
    expect(importCycles([a, b, c])).toEqual([["services/issue/a.ts", "services/issue/b.ts"], ["services/issue/c.ts"]]);
    expect(importCycles([a, importing("services/issue/b.ts")])).toEqual([]);
  });

  it("reads every module (a file the parser cannot read would escape the rules)", () => {
    expect(sourceFiles(root).length).toBe(shape.modules.length);
  });
});
