// The Rego conformance corpora as the compiler suites read them: the cases of YAML files and each
// case's modules parsed as the conformance runner parses them.
import { globSync, readFileSync } from "node:fs";
import { parse } from "yaml";
import type { Module } from "../../services/authorize/rego/ast.ts";
import { parseModule } from "../../services/authorize/rego/parser.ts";

/** The cases of every YAML file matching `pattern` (relative to test/helpers/, the same depth as the suites). */
export function corpusCases<Case>(pattern: string): Case[] {
  return globSync(new URL(pattern, import.meta.url).pathname).flatMap(
    (file) => (parse(readFileSync(file, "utf8")) as { cases?: Case[] }).cases ?? [],
  );
}

/** A case's modules as the conformance runner (and regorus) read them: v0 unless written in v1 syntax (undefined when one does not parse). */
export function caseModules(testCase: { modules?: string[] }): Module[] | undefined {
  try {
    return (testCase.modules ?? []).map((source, i) => {
      try {
        return parseModule(source, { file: `m${i}.rego`, v0: true });
      } catch {
        return parseModule(source, { file: `m${i}.rego` });
      }
    });
  } catch {
    return undefined;
  }
}
