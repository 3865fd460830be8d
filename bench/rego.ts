// The Rego compiler and its policies:
//   compile    a generated 200-rule policy set (8 packages: complete, default, partial set and
//              object rules, functions, comprehensions, `every`, `not`), compileRego wall time
//              (median of 5, binaryen optimiser on). Target < 2 s.
//   compile with  the same 200 rules and, beside each, a test rule replacing what it reads with
//              `with` (input, base data, rules, functions and built-ins, by values and by mock
//              functions), compiled with every test rule an entrypoint as `mandate policy test` does:
//              each with context plans its own copies of the rules it affects. Target < 2 s.
//   decision   policies/default's `mandate/authz/decision` through @open-policy-agent/opa-wasm for a
//              realistic input (3-actor chain, scopes, RFC 9396 authorization details, resource
//              attributes), p50/p99 per decision, against the same decision written by hand in
//              TypeScript (bench/authz-reference.ts) in the same run. Target p99 < 100 µs.
//
//   npm run bench:rego            table, also written to bench/results/rego.json
//   node bench/rego.ts --json     JSON only
//   BENCH_DECISIONS=50000 npm run bench:rego
import { performance } from "node:perf_hooks";
import { isDeepStrictEqual } from "node:util";
import { loadPolicy } from "@open-policy-agent/opa-wasm";
import { readPolicyDir } from "../services/authorize/rego/bundle.ts";
import { compileRego, parseModules } from "../services/authorize/rego/compile.ts";
import { hostBuiltins } from "../services/authorize/rego/host-builtins.ts";
import { referenceDecision } from "./authz-reference.ts";
import { percentile, positiveNumber, round, table, writeReport } from "./lib.ts";

const DECISIONS = positiveNumber("BENCH_DECISIONS", 20_000);
const ROUNDS = 3;
const json = process.argv.includes("--json");
const log = (line: string) => (json ? undefined : process.stderr.write(`${line}\n`));

/** 200 rules (plus the defaults and extra definitions some of them need) over 8 packages. */
export function ruleSet(): Record<string, string> {
  const modules: Record<string, string> = {};
  for (let p = 0; p < 8; p++) {
    const rules: string[] = [`package gen.p${p}`, "", "import rego.v1", ""];
    for (let r = 0; r < 25; r++) {
      const n = p * 25 + r;
      switch (r % 8) {
        case 0:
          rules.push(
            `default allow_${n} := false`,
            `allow_${n} if {`,
            `\tinput.action == "a${n}"`,
            `\tsome s in input.token.scopes`,
            `\tstartswith(s, "s${n % 7}")`,
            "}",
          );
          break;
        case 1:
          rules.push(
            `deny_${n} contains msg if {`,
            `\tsome actor in input.actors`,
            `\tactor.attributes.level < ${n % 5}`,
            `\tmsg := concat(":", ["low", actor.id])`,
            "}",
          );
          break;
        case 2:
          rules.push(
            `by_type_${n}[t] := count(xs) if {`,
            `\tsome t in {"order", "invoice"}`,
            `\txs := [x | some x in input.items; x.type == t]`,
            "}",
          );
          break;
        case 3:
          rules.push(
            `f_${n}(x) := y if {`,
            `\ty := x * ${(n % 9) + 1}`,
            "}",
            `f_${n}(x) := 0 if x < 0`,
            `uses_${n} := f_${n}(count(input.actors))`,
          );
          break;
        case 4:
          rules.push(
            `all_ok_${n} if {`,
            `\tevery d in input.token.authorization_details {`,
            `\t\td.type in {"order", "invoice"}`,
            "\t}",
            `\tnot input.blocked_${n}`,
            "}",
          );
          break;
        case 5:
          rules.push(`label_${n} := "high" if input.resource.attributes.classification > ${n % 4} else := "low"`);
          break;
        case 6:
          rules.push(`index_${n} := {a.id: a.kind | some a in input.actors}`);
          break;
        default:
          rules.push(
            `ok_${n} if {`,
            `\tallow_${n - 7}`,
            `\tcount(deny_${n - 6}) == 0`,
            `\tobject.get(input.resource.attributes, "owner", "") != ""`,
            "}",
          );
      }
      rules.push("");
    }
    modules[`gen/p${p}.rego`] = rules.join("\n");
  }
  return modules;
}

/** A test rule per rule of ruleSet(), each replacing what that rule reads with `with`. */
export function withTestSet(): Record<string, string> {
  const modules: Record<string, string> = {};
  for (let p = 0; p < 8; p++) {
    const pkg = `data.gen.p${p}`;
    const rules: string[] = [`package gen.p${p}`, "", "import rego.v1", ""];
    rules.push('mock_concat(_, _) := "m"', 'mock_get(_, _, _) := "x"', "mock_f(x) := x + 1", "");
    for (let r = 0; r < 25; r++) {
      const n = p * 25 + r;
      const test = (body: string) => rules.push(`test_${n} if {`, `\t${body}`, "}", "");
      switch (r % 8) {
        case 0:
          test(`allow_${n} with input.action as "a${n}" with input.token.scopes as ["s${n % 7}x"]`);
          break;
        case 1:
          test(
            `count(deny_${n}) == 1 with input.actors as [{"id": "x", "attributes": {"level": -1}}] with concat as mock_concat`,
          );
          break;
        case 2:
          test(`by_type_${n}.order == 9 with count as 9 with input.items as []`);
          break;
        case 3:
          test(`uses_${n} == 4 with f_${n} as mock_f with input.actors as [1, 2, 3]`);
          break;
        case 4:
          test(`all_ok_${n} with input.token.authorization_details as [] with ${pkg}.label_${n + 1} as "low"`);
          break;
        case 5:
          test(`label_${n} == "high" with input.resource.attributes.classification as 9`);
          break;
        case 6:
          test(`index_${n} == {} with input.actors as [] with data.config.limit as ${n}`);
          break;
        default:
          test(
            `ok_${n} with ${pkg}.allow_${n - 7} as true with ${pkg}.deny_${n - 6} as set() with object.get as mock_get with input.resource.attributes as {}`,
          );
      }
    }
    modules[`gen/p${p}_test.rego`] = rules.join("\n");
  }
  return modules;
}

interface CompileFigures {
  rules: number;
  entrypoints: number;
  medianMs: number;
  runsMs: number[];
  wasmBytes: number;
}

/** compileRego's wall time for a set of modules, median of 5. */
function compileBench(label: string, modules: Record<string, string>, entrypoints: string[]): CompileFigures {
  const rules = parseModules(modules).reduce((n, m) => n + m.rules.length, 0);
  const runsMs: number[] = [];
  let wasmBytes = 0;
  for (let i = 0; i < 5; i++) {
    const started = performance.now();
    wasmBytes = compileRego({ modules, entrypoints }).wasm.length;
    runsMs.push(performance.now() - started);
    log(`  ${label} run ${i + 1}/5: ${runsMs.at(-1)?.toFixed(0)} ms`);
  }
  const sorted = [...runsMs].sort((a, b) => a - b);
  return { rules, entrypoints: entrypoints.length, medianMs: sorted[2] as number, runsMs, wasmBytes };
}

const PACKAGES = Array.from({ length: 8 }, (_, p) => `gen/p${p}`);

/** The test rules' entrypoints (`gen/p0/test_0`, …). */
const testEntrypoints = (): string[] => Array.from({ length: 200 }, (_, n) => `gen/p${Math.floor(n / 25)}/test_${n}`);

export const decisionInput = {
  version: 1,
  tenant: "acme",
  subject: { id: "alice", kind: "human", attributes: { clearance: 3, amr: ["pwd", "mfa"], department: "ops" } },
  actors: [
    { id: "agent:planner", kind: "agent", attributes: { tenant: "acme", model: "m-1" } },
    { id: "agent:orders", kind: "agent", attributes: { tenant: "acme" } },
    { id: "svc:gateway", kind: "service", attributes: { tenant: "acme" } },
  ],
  client: { id: "mcp-client", kind: "agent", attributes: {} },
  action: "orders.read",
  resource: {
    type: "order",
    id: "o-4711",
    attributes: {
      audience: "https://orders.acme",
      classification: 2,
      location: "https://eu.orders.acme",
      owner: "bob",
    },
  },
  token: {
    scopes: ["profile", "invoices.read", "orders.*"],
    aud: ["https://orders.acme", "https://invoices.acme"],
    authorization_details: [
      { type: "invoice", actions: ["invoices.read"], locations: ["https://eu.invoices.acme"] },
      { type: "order", actions: ["orders.read", "orders.write"], locations: ["https://eu.orders.acme"] },
    ],
    mandate_id: "m-1",
  },
  mandate: { expires_at: 1_900_000_000, uses_remaining: 12 },
  context: { time: 1_800_000_000, ip: "10.0.0.7", request_id: "r-1" },
};

interface Latency {
  p50Us: number;
  p99Us: number;
  meanUs: number;
}

function timeCalls(call: () => unknown, n: number): Latency {
  const samples = new Float64Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) {
    const started = performance.now();
    call();
    const elapsed = performance.now() - started;
    samples[i] = elapsed;
    total += elapsed;
  }
  samples.sort();
  return {
    p50Us: round(percentile(samples, 50) * 1000, 2),
    p99Us: round(percentile(samples, 99) * 1000, 2),
    meanUs: round((total / n) * 1000, 2),
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

async function decisionBench() {
  const dir = readPolicyDir(new URL("../policies/default", import.meta.url).pathname);
  const { wasm } = compileRego({ modules: dir.modules, entrypoints: ["mandate/authz/decision"] });
  const policy = await loadPolicy(wasm, undefined, hostBuiltins);
  policy.setData(dir.data);
  const viaWasm = () => policy.evaluate(decisionInput, "mandate/authz/decision");
  const byHand = () => referenceDecision(decisionInput, dir.data);
  const wasmResult = (viaWasm() as Array<{ result: unknown }>)[0]?.result;
  if (!isDeepStrictEqual(wasmResult, { ...byHand() })) {
    throw new Error(`the compiled and hand-written decisions differ: ${JSON.stringify(wasmResult)}`);
  }
  // Warm-up, then alternating rounds (medians of each statistic).
  timeCalls(viaWasm, 5000);
  timeCalls(byHand, 5000);
  const rounds: Array<{ wasm: Latency; ts: Latency }> = [];
  for (let r = 0; r < ROUNDS; r++) {
    rounds.push({ wasm: timeCalls(viaWasm, DECISIONS), ts: timeCalls(byHand, DECISIONS) });
    log(
      `  decision round ${r + 1}/${ROUNDS}: wasm p50 ${rounds.at(-1)?.wasm.p50Us} µs, TypeScript p50 ${rounds.at(-1)?.ts.p50Us} µs`,
    );
  }
  const pick = (target: "wasm" | "ts"): Latency => ({
    p50Us: median(rounds.map((r) => r[target].p50Us)),
    p99Us: median(rounds.map((r) => r[target].p99Us)),
    meanUs: median(rounds.map((r) => r[target].meanUs)),
  });
  return { wasm: pick("wasm"), typescript: pick("ts"), decision: wasmResult, wasmBytes: wasm.length };
}

log("compiling the 200-rule policy set...");
const compile = compileBench("compile", ruleSet(), PACKAGES);
log("compiling it with 200 test rules using with...");
const compileWith = compileBench("compile with", { ...ruleSet(), ...withTestSet() }, testEntrypoints());
log("evaluating decisions...");
const decision = await decisionBench();
const report = {
  machine: { cpus: (await import("node:os")).availableParallelism(), node: process.version },
  compile: { ...compile, targetMs: 2000, withinTarget: compile.medianMs < 2000 },
  compileWith: { ...compileWith, targetMs: 2000, withinTarget: compileWith.medianMs < 2000 },
  decision: {
    ...decision,
    ratio: {
      p50: round(decision.wasm.p50Us / decision.typescript.p50Us, 1),
      p99: round(decision.wasm.p99Us / decision.typescript.p99Us, 1),
      mean: round(decision.wasm.meanUs / decision.typescript.meanUs, 1),
    },
    targetP99Us: 100,
    withinTarget: decision.wasm.p99Us < 100,
  },
};
const file = writeReport("rego", report);
if (json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
else {
  process.stdout.write(
    `${table(
      ["measure", "Mandate (Wasm via opa-wasm)", "hand-written TypeScript", "ratio", "target"],
      [
        [`compile ${compile.rules} rules (median of 5)`, `${compile.medianMs.toFixed(0)} ms`, "-", "-", "< 2000 ms"],
        [
          `compile ${compileWith.rules} rules, ${compileWith.entrypoints} tests using with`,
          `${compileWith.medianMs.toFixed(0)} ms`,
          "-",
          "-",
          "< 2000 ms",
        ],
        [
          "decision p50",
          `${decision.wasm.p50Us} µs`,
          `${decision.typescript.p50Us} µs`,
          `${report.decision.ratio.p50}x`,
          "-",
        ],
        [
          "decision p99",
          `${decision.wasm.p99Us} µs`,
          `${decision.typescript.p99Us} µs`,
          `${report.decision.ratio.p99}x`,
          "< 100 µs",
        ],
        [
          "decision mean",
          `${decision.wasm.meanUs} µs`,
          `${decision.typescript.meanUs} µs`,
          `${report.decision.ratio.mean}x`,
          "-",
        ],
      ],
    )}\n(written to ${file})\n`,
  );
}
