// The decision engine as the Authorize service uses it: the instance pool, the tenants' revisions
// (following the policy source's change notifications) and the decider, with their lifecycle (the
// idle sweep, the change subscription, the decision log drained at shutdown) and readiness.
import type { Config } from "../../shared/config.ts";
import type { Logger } from "../../shared/logger.ts";
import type { Store } from "../../shared/store/store.ts";
import { type DecideOptions, Decider, type Decision } from "./decider.ts";
import type { DecisionInput } from "./decision-input.ts";
import { InstancePool } from "./instance-pool.ts";
import type { ActivePolicy, PolicySource } from "./policy-source.ts";
import type { Failure } from "./reasons.ts";
import { TenantPolicies } from "./tenant-policies.ts";

export interface EngineOptions {
  source: PolicySource;
  store: Store;
  logger: Logger;
  settings: Config["authorize"];
  now: () => number;
  /**
   * The default policy (config.authorize.defaultPolicy), loaded at start and kept loaded: tenants on
   * it share it, and /readyz reports not ready until it has loaded.
   */
  defaultPolicy?: (() => Promise<ActivePolicy>) | undefined;
}

/** Longest pause between idle sweeps. */
const MAX_SWEEP_INTERVAL_MS = 60_000;
/** Pause before loading the default policy again after a failure. */
const DEFAULT_RETRY_MS = 5000;

export class DecisionEngine {
  readonly pool: InstancePool;
  readonly policies: TenantPolicies;
  readonly decider: Decider;
  readonly #options: EngineOptions;
  #sweeper: NodeJS.Timeout | undefined;
  #retry: NodeJS.Timeout | undefined;
  #stopped = false;
  #ready = "not ready: loading the default policy";

  constructor(options: EngineOptions) {
    this.#options = options;
    const { settings, now, logger } = options;
    this.pool = new InstancePool({
      maxMemoryMiB: settings.maxMemoryMiB,
      evaluationBudget: settings.evaluationBudget,
      idleEvictionMs: settings.idleEviction,
      maxLoadedTenants: settings.maxLoadedTenants,
      now,
    });
    this.policies = new TenantPolicies({ source: options.source, pool: this.pool, logger, now });
    this.decider = new Decider({
      policies: this.policies,
      store: options.store,
      logger,
      mask: settings.decisionLogMask,
      flushMs: settings.decisionLogFlush,
      now,
    });
  }

  decide(tenant: string, input: DecisionInput, options?: DecideOptions): Promise<Decision> {
    return this.decider.decide(tenant, input, options);
  }

  refuse(tenant: string, input: DecisionInput, reason: Failure, options?: DecideOptions): Decision {
    return this.decider.refuse(tenant, input, reason, options);
  }

  start(): void {
    this.policies.start();
    const every = Math.max(1000, Math.min(MAX_SWEEP_INTERVAL_MS, this.#options.settings.idleEviction / 2));
    this.#sweeper ??= setInterval(() => this.pool.sweep(), every).unref();
    void this.#loadDefault();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#sweeper);
    clearTimeout(this.#retry);
    this.#sweeper = undefined;
    await this.decider.drain();
    await this.policies.stop();
  }

  /** For /readyz: "ok" once the default policy has loaded. */
  readiness(): Record<string, string> {
    return { "authorize.policy": this.#ready };
  }

  /** Loads the default policy (again, after a pause, until it loads); readiness follows. */
  async #loadDefault(): Promise<void> {
    const load = this.#options.defaultPolicy;
    if (!load) {
      this.#ready = "ok";
      return;
    }
    try {
      this.pool.pin(await this.pool.prepare(await load()));
      this.#ready = "ok";
    } catch (error) {
      this.#ready = `not ready: the default policy did not load (${(error as Error).message ?? String(error)})`;
      this.#options.logger.error({ err: error }, "the default policy did not load; retrying");
      if (!this.#stopped) this.#retry = setTimeout(() => void this.#loadDefault(), DEFAULT_RETRY_MS).unref();
    }
  }
}
