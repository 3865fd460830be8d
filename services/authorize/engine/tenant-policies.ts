// Which revision decides for each tenant. Loaded lazily on a tenant's first decision (concurrent
// first decisions share one load); on a change notification a loaded tenant's new revision is
// prepared in the background and swapped in atomically once it loads, and if it cannot load the old
// one keeps deciding. A tenant with no policy, or whose policy cannot load, gets a failure (a deny
// reason) that is remembered briefly, so a broken bundle is not recompiled on every request; a
// failure to read the policy (the store out of reach) is not remembered: the next decision retries.
import type { Logger } from "../../shared/logger.ts";
import { evaluationFailure, type InstancePool, type LoadedRevision } from "./instance-pool.ts";
import { type ActivePolicy, isPolicyMissing, type PolicySource } from "./policy-source.ts";
import { type Failure, failure } from "./reasons.ts";

export type TenantPolicy = { ok: true; loaded: LoadedRevision } | { ok: false; reason: Failure };

/** A load's outcome; a failure says whether it is worth remembering (not a passing read error). */
type Prepared = { ok: true; loaded: LoadedRevision } | { ok: false; reason: Failure; remember: boolean };

/** How long a tenant's failure to load is remembered (a change notification forgets it at once). */
export const FAILURE_RETRY_MS = 5000;
/** Loads retried when a change arrives while one is under way. */
const MAX_LOAD_ATTEMPTS = 3;

export interface TenantPoliciesOptions {
  source: PolicySource;
  pool: InstancePool;
  logger: Logger;
  now: () => number;
}

export class TenantPolicies {
  readonly #source: PolicySource;
  readonly #pool: InstancePool;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #loading = new Map<string, Promise<TenantPolicy>>();
  readonly #failures = new Map<string, { reason: Failure; until: number }>();
  /** Bumped by every change notification: a load that started before one is stale. */
  readonly #generations = new Map<string, number>();
  #unsubscribe: (() => void) | undefined;
  /** Background reloads under way (awaited by `settled`, for tests and shutdown). */
  readonly #reloads = new Set<Promise<void>>();

  constructor(options: TenantPoliciesOptions) {
    this.#source = options.source;
    this.#pool = options.pool;
    this.#logger = options.logger;
    this.#now = options.now;
  }

  /** Starts following change notifications. */
  start(): void {
    this.#unsubscribe ??= this.#source.onChange((tenant) => this.changed(tenant));
  }

  async stop(): Promise<void> {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    await this.settled();
    this.#pool.clear();
  }

  /** The tenant's revision: loaded now if it is not yet; or why there is none. */
  forTenant(tenant: string): Promise<TenantPolicy> {
    const loaded = this.#pool.use(tenant);
    if (loaded) return Promise.resolve({ ok: true, loaded });
    const failed = this.#failures.get(tenant);
    if (failed && failed.until > this.#now()) return Promise.resolve({ ok: false, reason: failed.reason });
    let loading = this.#loading.get(tenant);
    if (!loading) {
      loading = this.#load(tenant).finally(() => this.#loading.delete(tenant));
      this.#loading.set(tenant, loading);
    }
    return loading;
  }

  /** A tenant's policy or data changed: forget its failure; a loaded tenant gets its new revision. */
  changed(tenant: string): void {
    this.#failures.delete(tenant);
    if (!this.#pool.has(tenant) && !this.#loading.has(tenant)) {
      // Nothing of it is loaded or loading: its next decision reads it afresh. (A reload still under
      // way for it began at a later generation than 0 and will not install.)
      this.#generations.delete(tenant);
      return;
    }
    this.#generations.set(tenant, this.#generation(tenant) + 1);
    if (!this.#pool.has(tenant)) return;
    const reload = this.#reload(tenant).finally(() => this.#reloads.delete(reload));
    this.#reloads.add(reload);
  }

  /** Resolves once every background reload started so far has finished. */
  async settled(): Promise<void> {
    while (this.#reloads.size > 0 || this.#loading.size > 0) {
      await Promise.allSettled([...this.#reloads, ...this.#loading.values()]);
    }
  }

  async #load(tenant: string): Promise<TenantPolicy> {
    for (let attempt = 1; ; attempt++) {
      const generation = this.#generation(tenant);
      const prepared = await this.#prepare(tenant);
      // A change arrived meanwhile: what was read may already be outdated.
      if (generation !== this.#generation(tenant) && attempt < MAX_LOAD_ATTEMPTS) continue;
      if (!prepared.ok) {
        if (prepared.remember)
          this.#failures.set(tenant, { reason: prepared.reason, until: this.#now() + FAILURE_RETRY_MS });
        return { ok: false, reason: prepared.reason };
      }
      return { ok: true, loaded: this.#pool.install(tenant, prepared.loaded) };
    }
  }

  /** Prepares the new revision beside the old, then swaps; a failure leaves the old one deciding. */
  async #reload(tenant: string): Promise<void> {
    const generation = this.#generation(tenant);
    const prepared = await this.#prepare(tenant);
    if (generation !== this.#generation(tenant)) return; // a later change has its own reload
    if (!prepared.ok) {
      this.#logger.error(
        { tenant, reason: prepared.reason.code, detail: prepared.reason.message },
        "the tenant's new policy did not load: its previous revision keeps deciding",
      );
      return;
    }
    if (this.#pool.has(tenant)) this.#pool.install(tenant, prepared.loaded);
  }

  /** The tenant's active policy, read and loaded; or the deny reason when it cannot be. */
  async #prepare(tenant: string): Promise<Prepared> {
    let policy: ActivePolicy;
    try {
      policy = await this.#source.active(tenant);
    } catch (error) {
      if (isPolicyMissing(error)) {
        return { ok: false, reason: failure("policy_missing", "the tenant has no policy"), remember: true };
      }
      this.#logger.error({ err: error, tenant }, "the tenant's policy could not be read");
      return { ok: false, reason: failure("policy_error", "the tenant's policy could not be read"), remember: false };
    }
    try {
      return { ok: true, loaded: await this.#pool.prepare(policy) };
    } catch (error) {
      this.#logger.error({ err: error, tenant, revision: policy.revision }, "the tenant's policy could not be loaded");
      return { ok: false, reason: loadFailure(error), remember: true };
    }
  }

  #generation(tenant: string): number {
    return this.#generations.get(tenant) ?? 0;
  }
}

/** A revision that cannot load: over its memory limit (its data), or not a usable module at all. */
function loadFailure(error: unknown): Failure {
  const reason = evaluationFailure(error);
  if (reason.code === "memory_limit") return reason;
  return failure("policy_error", "the tenant's policy could not be loaded");
}
