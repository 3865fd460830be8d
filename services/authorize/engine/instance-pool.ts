// Loaded policies: per tenant revision, one compiled WebAssembly.Module and a few opa-wasm
// instances over it, each with its data set once. opa-wasm's `evaluate` is synchronous, so in one
// thread one instance per revision is enough; a small pool is kept anyway, and an instance that threw
// is dropped, never reused (a trap may leave it corrupt). Every instance's memory is bounded
// (config.authorize.maxMemoryMiB) and every evaluation gets the step budget the compiler's
// instrumentation counts down (`mandate_budget`). The pool is bounded too: tenants idle past
// `idleEvictionMs` are evicted, and at most `maxLoadedTenants` stay loaded (least recently used
// first). Tenants on byte-identical policy and data (the default policy) share one revision.
import { createHash } from "node:crypto";
import { type LoadedPolicy, loadPolicy } from "@open-policy-agent/opa-wasm";
import { hostBuiltins, isBudgetExhausted, setBudget } from "../rego/index.ts";
import type { ActivePolicy } from "./policy-source.ts";
import { type Failure, failure } from "./reasons.ts";

/** The rule every tenant's bundle decides with (docs/design/authorize.md). */
export const DECISION_ENTRYPOINT = "mandate/authz/decision";

const PAGES_PER_MIB = 16; // Wasm pages are 64 KiB
const INITIAL_PAGES = 2;
/** Instances kept per revision beyond the one in use. */
const MAX_IDLE_INSTANCES = 2;

/** The compiled runtime's abort message at its heap limit (rego/runtime/memory.ts). */
const MEMORY_LIMIT_MESSAGE = "eval_memory_limit_error";

export interface PolicyLimits {
  /** Largest memory one instance may grow to. */
  maxMemoryMiB: number;
  /** Steps one evaluation may take. */
  evaluationBudget: number;
}

export type Evaluation = { ok: true; result: unknown } | { ok: false; reason: Failure };

/** One revision of a tenant's policy, ready to evaluate. */
export class LoadedRevision {
  readonly revision: string;
  readonly version: number;
  /** Content key: revisions with the same module and data are the same revision. */
  readonly key: string;
  readonly #module: WebAssembly.Module;
  readonly #data: Record<string, unknown>;
  readonly #limits: PolicyLimits;
  readonly #idle: LoadedPolicy[] = [];
  #created = 0;

  private constructor(policy: ActivePolicy, module: WebAssembly.Module, limits: PolicyLimits, key: string) {
    this.revision = policy.revision;
    this.version = policy.version;
    this.key = key;
    this.#module = module;
    this.#data = policy.data;
    this.#limits = limits;
  }

  /**
   * Compiles the module and makes its first instance (data set, the decision entrypoint present), so
   * a revision that cannot load is refused here, before it decides anything. Throws when it cannot.
   */
  static async load(policy: ActivePolicy, limits: PolicyLimits): Promise<LoadedRevision> {
    const module = await WebAssembly.compile(policy.wasm as Uint8Array<ArrayBuffer>);
    const loaded = new LoadedRevision(policy, module, limits, contentKey(policy));
    loaded.#idle.push(await loaded.#instantiate());
    return loaded;
  }

  /** Instances made for this revision so far (a thrown one is replaced by a new one). */
  get instancesCreated(): number {
    return this.#created;
  }

  /**
   * Evaluates the decision over `input` on an instance of its own; any failure is a reason, not a
   * throw. Only making a new instance awaits: the evaluation itself runs to its end synchronously.
   */
  async evaluate(input: unknown): Promise<Evaluation> {
    let policy: LoadedPolicy;
    try {
      policy = this.#idle.pop() ?? (await this.#instantiate());
    } catch (error) {
      return { ok: false, reason: evaluationFailure(error) };
    }
    try {
      // The step budget of this evaluation (a module compiled elsewhere has none: nothing to set).
      setBudget(policy, this.#limits.evaluationBudget);
      const result = policy.evaluate(input, DECISION_ENTRYPOINT);
      if (this.#idle.length < MAX_IDLE_INSTANCES) this.#idle.push(policy);
      return { ok: true, result };
    } catch (error) {
      // The instance is dropped: a trap may have left its memory or globals half-written.
      return { ok: false, reason: evaluationFailure(error) };
    }
  }

  /** A new instance: its own bounded memory, the decision entrypoint checked, the data set once. */
  async #instantiate(): Promise<LoadedPolicy> {
    const policy = await loadPolicy(this.#module, memoryDescriptor(this.#limits), hostBuiltins);
    if (!Object.hasOwn(policy.entrypoints as object, DECISION_ENTRYPOINT)) {
      throw new Error(`the policy has no ${DECISION_ENTRYPOINT} entrypoint`);
    }
    policy.setData(this.#data);
    this.#created++;
    return policy;
  }
}

/** opa-wasm mutates the descriptor it is given: a fresh one per instance. */
function memoryDescriptor(limits: PolicyLimits): WebAssembly.MemoryDescriptor {
  const maximum = Math.max(1, Math.floor(limits.maxMemoryMiB * PAGES_PER_MIB));
  return { initial: Math.min(INITIAL_PAGES, maximum), maximum };
}

/** What an evaluation (or making its instance) threw, as the design's reason codes. */
export function evaluationFailure(error: unknown): Failure {
  const message = error instanceof Error ? error.message : String(error);
  if (isBudgetExhausted(error)) {
    return failure("evaluation_budget", "the policy ran out of its evaluation budget");
  }
  // The runtime aborts at its heap limit; the host's own grow (the input, the data) throws RangeError.
  if (message.includes(MEMORY_LIMIT_MESSAGE) || (error instanceof RangeError && /memory/i.test(message))) {
    return failure("memory_limit", "the policy reached its memory limit");
  }
  return failure("policy_error", `the policy failed: ${message.slice(0, 200)}`);
}

function contentKey(policy: ActivePolicy): string {
  return createHash("sha256")
    .update(policy.revision)
    .update("\0")
    .update(policy.wasm)
    .update("\0")
    .update(JSON.stringify(policy.data))
    .digest("base64url");
}

export interface PoolOptions extends PolicyLimits {
  /** Tenants unused this long are evicted. */
  idleEvictionMs: number;
  /** Most tenants loaded at once; the least recently used go first. */
  maxLoadedTenants: number;
  now: () => number;
}

interface Held {
  loaded: LoadedRevision;
  lastUsed: number;
}

/** Each tenant's loaded revision, bounded by idleness and count; revisions shared by content. */
export class InstancePool {
  readonly #options: PoolOptions;
  /** Insertion order is recency: a use moves the tenant to the end. */
  readonly #tenants = new Map<string, Held>();
  readonly #shared = new Map<string, { loaded: LoadedRevision; holders: number }>();
  /** Revisions kept loaded whoever uses them (the default policy). */
  readonly #pinned = new Set<string>();

  constructor(options: PoolOptions) {
    this.#options = options;
  }

  get limits(): PolicyLimits {
    return { maxMemoryMiB: this.#options.maxMemoryMiB, evaluationBudget: this.#options.evaluationBudget };
  }

  get size(): number {
    return this.#tenants.size;
  }

  /** Revisions loaded (tenants on the same policy and data share one). */
  get revisions(): number {
    return this.#shared.size;
  }

  has(tenant: string): boolean {
    return this.#tenants.has(tenant);
  }

  /** The tenant's revision, marked used now; undefined when not loaded. */
  use(tenant: string): LoadedRevision | undefined {
    const held = this.#tenants.get(tenant);
    if (!held) return undefined;
    this.#tenants.delete(tenant);
    held.lastUsed = this.#options.now();
    this.#tenants.set(tenant, held);
    return held.loaded;
  }

  /** A revision ready to install: the one already loaded for the same content, or a new load. */
  async prepare(policy: ActivePolicy): Promise<LoadedRevision> {
    const same = this.#shared.get(contentKey(policy));
    return same ? same.loaded : LoadedRevision.load(policy, this.limits);
  }

  /** Keeps `loaded` loaded (the default policy): tenants whose policy is the same share it. */
  pin(loaded: LoadedRevision): void {
    if (this.#pinned.has(loaded.key)) return;
    this.#pinned.add(loaded.key);
    this.#hold(loaded);
  }

  /** Makes `loaded` the tenant's revision (atomically replacing the previous one), then enforces the bounds. */
  install(tenant: string, loaded: LoadedRevision): LoadedRevision {
    const held = this.#hold(loaded);
    this.evict(tenant);
    this.#tenants.set(tenant, { loaded: held, lastUsed: this.#options.now() });
    this.sweep();
    return held;
  }

  /** Drops the tenant's revision (loaded again on its next decision). */
  evict(tenant: string): boolean {
    const held = this.#tenants.get(tenant);
    if (!held) return false;
    this.#tenants.delete(tenant);
    this.#release(held.loaded.key);
    return true;
  }

  /** Evicts idle tenants, then the least recently used beyond the bound; returns those evicted. */
  sweep(): string[] {
    const evicted: string[] = [];
    const idleBefore = this.#options.now() - this.#options.idleEvictionMs;
    for (const [tenant, held] of this.#tenants) {
      const overBound = this.#tenants.size > this.#options.maxLoadedTenants;
      if (!overBound && held.lastUsed > idleBefore) break; // the rest were used later
      this.evict(tenant);
      evicted.push(tenant);
    }
    return evicted;
  }

  clear(): void {
    for (const tenant of [...this.#tenants.keys()]) this.evict(tenant);
    for (const key of this.#pinned) this.#release(key);
    this.#pinned.clear();
  }

  /** One more holder of the revision with `loaded`'s content: the one already held, if any. */
  #hold(loaded: LoadedRevision): LoadedRevision {
    const shared = this.#shared.get(loaded.key) ?? { loaded, holders: 0 };
    shared.holders++;
    this.#shared.set(loaded.key, shared);
    return shared.loaded;
  }

  #release(key: string): void {
    const shared = this.#shared.get(key);
    if (shared && --shared.holders <= 0) this.#shared.delete(key);
  }
}
