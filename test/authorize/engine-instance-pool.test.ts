// The instance pool: a revision compiled once, instances with bounded memory and a step budget,
// an instance that threw replaced (never reused), failures as the design's reason codes, and the
// pool bounded by idleness and by count (least recently used first), revisions shared by content.
import { describe, expect, it } from "vitest";
import {
  DECISION_ENTRYPOINT,
  evaluationFailure,
  InstancePool,
  LoadedRevision,
  type PolicyLimits,
} from "../../services/authorize/engine/instance-pool.ts";
import type { ActivePolicy } from "../../services/authorize/engine/policy-source.ts";
import { compileRego } from "../../services/authorize/rego/index.ts";

const LIMITS: PolicyLimits = { maxMemoryMiB: 8, evaluationBudget: 1_000_000 };

/** A policy whose decision depends on `input.action`: each action exercises one way of failing. */
const POLICY = `package mandate.authz
import rego.v1

decision := {"allow": input.action == "allow", "reasons": [], "obligations": []} if input.action in {"allow", "deny"}
decision := {"allow": data.flags.open} if input.action == "data"
decision := {"allow": 1 / input.context.zero > 0} if input.action == "divide"
decision := {"allow": count(big) > 0} if input.action == "huge"
decision := {"allow": count(pairs) > 0} if input.action == "loop"

big := [x | some x in numbers.range(1, 10000000)]
pairs contains [x, y] if { some x in numbers.range(1, 5000); some y in numbers.range(1, 5000); x != y }
`;

const compiled = compileRego({ modules: { "authz.rego": POLICY }, entrypoints: [DECISION_ENTRYPOINT] }).wasm;

function policy(revision = "r1", data: Record<string, unknown> = { flags: { open: true } }): ActivePolicy {
  return { revision, version: 1, wasm: compiled, data };
}

const ask = (action: string) => ({ action, context: { zero: 0 } });

describe("a loaded revision", () => {
  it("evaluates the decision entrypoint with its data", async () => {
    const loaded = await LoadedRevision.load(policy(), LIMITS);
    expect(await loaded.evaluate(ask("allow"))).toEqual({
      ok: true,
      result: [{ result: { allow: true, reasons: [], obligations: [] } }],
    });
    expect(await loaded.evaluate(ask("data"))).toEqual({ ok: true, result: [{ result: { allow: true } }] });
    expect(await loaded.evaluate(ask("nothing"))).toEqual({ ok: true, result: [] });
    expect(loaded.instancesCreated).toBe(1);
  });

  it("fails closed with policy_error when the policy throws (strict built-in errors), and replaces the instance", async () => {
    const loaded = await LoadedRevision.load(policy(), LIMITS);
    const failed = await loaded.evaluate(ask("divide"));
    expect(failed).toMatchObject({ ok: false, reason: { code: "policy_error" } });
    expect(failed.ok === false && failed.reason.message).toMatch(/divide by zero/);
    // The instance that threw is gone: the next evaluation runs on a new one, and succeeds.
    expect(await loaded.evaluate(ask("allow"))).toMatchObject({ ok: true });
    expect(loaded.instancesCreated).toBe(2);
  });

  it("fails closed with memory_limit when the instance reaches its memory maximum", async () => {
    const loaded = await LoadedRevision.load(policy(), { maxMemoryMiB: 2, evaluationBudget: 1_000_000_000 });
    expect(await loaded.evaluate(ask("huge"))).toMatchObject({ ok: false, reason: { code: "memory_limit" } });
    expect(await loaded.evaluate(ask("allow"))).toMatchObject({ ok: true });
  });

  it("fails closed with memory_limit when the input alone does not fit", async () => {
    const loaded = await LoadedRevision.load(policy(), { ...LIMITS, maxMemoryMiB: 1 });
    const input = { action: "allow", context: { blob: "x".repeat(2 * 1024 * 1024) } };
    expect(await loaded.evaluate(input)).toMatchObject({ ok: false, reason: { code: "memory_limit" } });
  });

  it("fails closed with evaluation_budget when the evaluation runs out of steps, and sets the budget every time", async () => {
    const loaded = await LoadedRevision.load(policy(), { ...LIMITS, evaluationBudget: 10_000 });
    const started = performance.now();
    expect(await loaded.evaluate(ask("loop"))).toMatchObject({ ok: false, reason: { code: "evaluation_budget" } });
    expect(performance.now() - started).toBeLessThan(1000);
    // A cheap decision right after still has its full budget.
    expect(await loaded.evaluate(ask("allow"))).toMatchObject({ ok: true });
    expect(await loaded.evaluate(ask("loop"))).toMatchObject({ ok: false, reason: { code: "evaluation_budget" } });
  });

  it("refuses to load corrupt Wasm, a module without the decision entrypoint, and data beyond its memory", async () => {
    await expect(
      LoadedRevision.load({ ...policy(), wasm: new Uint8Array([0, 97, 115, 109, 9, 9]) }, LIMITS),
    ).rejects.toThrow();
    const other = compileRego({
      modules: { "x.rego": "package other\nimport rego.v1\nallow := true\n" },
      entrypoints: ["other/allow"],
    }).wasm;
    await expect(LoadedRevision.load({ ...policy(), wasm: other }, LIMITS)).rejects.toThrow(/mandate\/authz\/decision/);
    const heavy = policy("r1", { blob: "y".repeat(3 * 1024 * 1024) });
    const error = await LoadedRevision.load(heavy, { ...LIMITS, maxMemoryMiB: 1 }).catch((e: unknown) => e);
    expect(evaluationFailure(error).code).toBe("memory_limit");
  });

  it("classifies what evaluations throw", () => {
    expect(evaluationFailure("mandate: evaluation budget exhausted").code).toBe("evaluation_budget");
    expect(evaluationFailure("eval_memory_limit_error: policy evaluation exceeded its memory limit").code).toBe(
      "memory_limit",
    );
    expect(evaluationFailure(new RangeError("WebAssembly.Memory.grow(): Maximum memory size exceeded")).code).toBe(
      "memory_limit",
    );
    expect(evaluationFailure(new RangeError("Maximum call stack size exceeded")).code).toBe("policy_error");
    expect(evaluationFailure(new WebAssembly.RuntimeError("unreachable")).code).toBe("policy_error");
    expect(evaluationFailure("eval_conflict_error: complete rules must not produce multiple outputs").code).toBe(
      "policy_error",
    );
  });
});

describe("the instance pool", () => {
  function pool(options: Partial<{ idleEvictionMs: number; maxLoadedTenants: number }> = {}) {
    let now = 1_000_000;
    const instances = new InstancePool({
      ...LIMITS,
      idleEvictionMs: options.idleEvictionMs ?? 60_000,
      maxLoadedTenants: options.maxLoadedTenants ?? 10,
      now: () => now,
    });
    return { instances, advance: (ms: number) => (now += ms) };
  }

  it("evicts tenants idle past idleEviction, keeping those used since", async () => {
    const { instances, advance } = pool({ idleEvictionMs: 60_000 });
    const loaded = await instances.prepare(policy());
    instances.install("a", loaded);
    instances.install("b", loaded);
    advance(40_000);
    expect(instances.use("a")).toBeDefined();
    advance(30_000);
    expect(instances.sweep()).toEqual(["b"]);
    expect(instances.has("a")).toBe(true);
    expect(instances.use("b")).toBeUndefined();
    advance(60_001);
    expect(instances.sweep()).toEqual(["a"]);
    expect(instances.size).toBe(0);
    expect(instances.revisions).toBe(0);
  });

  it("keeps at most maxLoadedTenants, evicting the least recently used", async () => {
    const { instances, advance } = pool({ maxLoadedTenants: 2 });
    const loaded = await instances.prepare(policy());
    instances.install("a", loaded);
    advance(1);
    instances.install("b", loaded);
    advance(1);
    instances.use("a"); // b is now the least recently used
    instances.install("c", loaded);
    expect(instances.has("a")).toBe(true);
    expect(instances.has("b")).toBe(false);
    expect(instances.has("c")).toBe(true);
    expect(instances.size).toBe(2);
  });

  it("shares one revision between tenants on the same module and data, and drops it with its last tenant", async () => {
    const { instances } = pool();
    const first = instances.install("a", await instances.prepare(policy()));
    // The same content prepared again is the revision already loaded: no second compile.
    expect(await instances.prepare(policy())).toBe(first);
    expect(instances.install("b", await LoadedRevision.load(policy(), LIMITS))).toBe(first);
    const other = instances.install("c", await instances.prepare(policy("r1", { flags: { open: false } })));
    expect(other).not.toBe(first);
    expect(instances.revisions).toBe(2);
    instances.evict("a");
    expect(instances.revisions).toBe(2);
    instances.evict("b");
    expect(instances.revisions).toBe(1);
  });

  it("swaps a tenant's revision atomically and keeps a pinned revision whoever uses it", async () => {
    const { instances } = pool();
    const pinned = await instances.prepare(policy("default"));
    instances.pin(pinned);
    instances.install("a", await instances.prepare(policy("r1")));
    const next = instances.install("a", await instances.prepare(policy("r2")));
    expect(instances.use("a")).toBe(next);
    expect(next.revision).toBe("r2");
    expect(instances.revisions).toBe(2); // r1 dropped with its only tenant; the pinned default stays
    expect(await instances.prepare(policy("default"))).toBe(pinned);
    instances.clear();
    expect(instances.revisions).toBe(0);
  });
});
