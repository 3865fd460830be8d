// decide(tenant, input) → Decision: the tenant's revision evaluates `data.mandate.authz.decision`,
// the answer is normalised, and every failure along the way is a deny with one reason code (fail
// closed). Each decision gets a UUIDv7 id, and its log entry is enqueued on the audit outbox without
// being awaited: a decision never waits for, nor fails because of, its log (a failed write is logged
// and counted). Entries wait up to `flushMs` (or until MAX_BUFFERED wait) and are then written in one
// batch per tenant: a commit (an fsync under SQLite's synchronous=FULL, ~2 ms on a VM disk, and it
// blocks the event loop) per batch instead of per decision, which kept every decision's tail behind a
// disk flush. A crash loses at most the entries of the last `flushMs`; a stop writes them all (drain).
import type { Logger } from "../../shared/logger.ts";
import type { ConsumeResult } from "../../shared/mandates/usage.ts";
import type { Store } from "../../shared/store/store.ts";
import { counter, histogram } from "../../shared/telemetry.ts";
import { uuidV7 } from "../../shared/uuid-v7.ts";
import type { DecisionInput } from "./decision-input.ts";
import { decisionEvent } from "./decision-log.ts";
import { normaliseResult, type Obligation, type PolicyDecision } from "./normalise.ts";
import type { Failure, FailureCode, Reason } from "./reasons.ts";
import type { TenantPolicies } from "./tenant-policies.ts";

export interface Decision {
  allow: boolean;
  reasons: Reason[];
  obligations: Obligation[];
  /** UUIDv7; the decision log entry's event (and request) id. */
  decisionId: string;
  /** Revision that decided; empty when none could. */
  policyRevision: string;
  /** ms since the epoch. */
  decideTime: number;
  /** What an allow counted against the mandate, when the request declared a consumption. */
  consumption?: ConsumeResult;
}

export interface DeciderOptions {
  policies: TenantPolicies;
  store: Store;
  logger: Logger;
  /** Input paths never logged (config.authorize.decisionLogMask). */
  mask: readonly string[];
  now: () => number;
  /** Longest an entry waits to be written with others (config.authorize.decisionLogFlush); 0 writes each at once. */
  flushMs?: number;
}

export interface DecideOptions {
  /** The caller's own request id, echoed in the log entry when it sent one. */
  callerRequestId?: string | undefined;
  /**
   * Run on an allow before it is recorded, with the decision's id (a declared consumption counted
   * against the mandate): a refusal turns the allow into a deny with that reason, so the decision as
   * answered and logged is the one the consumption agrees with.
   */
  settle?: ((decisionId: string) => Promise<Settlement>) | undefined;
}

/** Counted (`consumption`), nothing to count (`only_if_limited` on an unlimited meter), or refused. */
export type Settlement = { ok: true; consumption?: ConsumeResult } | { ok: false; reason: Failure };

const decisions = counter("authorize.decisions", {
  description: "Decisions made, by result (allow, deny) and fail-closed reason (none when the policy decided)",
});
const evaluationDuration = histogram("authorize.evaluation.duration", {
  description: "Time to decide one request: loading the tenant's policy when needed, evaluating, normalising",
  unit: "ms",
});
const logFailures = counter("authorize.decision_log.enqueue_failures", {
  description: "Decision log entries that could not be written to the audit outbox",
});

/** Entries waiting beyond which the buffer is written at once (GroupCommit splits it into INSERTs of 500). */
const MAX_BUFFERED = 2000;

interface BufferedLog {
  tenant: string;
  decisionId: string;
  event: ReturnType<typeof decisionEvent>;
  at: number;
}

export class Decider {
  readonly #options: DeciderOptions;
  readonly #pendingLogs = new Set<Promise<void>>();
  #buffered: BufferedLog[] = [];
  #flushTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(options: DeciderOptions) {
    this.#options = options;
  }

  async decide(tenant: string, input: DecisionInput, options: DecideOptions = {}): Promise<Decision> {
    const started = performance.now();
    let outcome = await this.#evaluate(tenant, input);
    evaluationDuration.record(performance.now() - started, { result: outcome.decision.allow ? "allow" : "deny" });
    if (!(outcome.decision.allow && options.settle)) return this.#record(tenant, input, outcome, options);
    const decisionId = uuidV7(this.#options.now());
    const settled = await options.settle(decisionId);
    if (!settled.ok)
      outcome = { decision: denied(settled.reason), revision: outcome.revision, failure: settled.reason };
    else if (settled.consumption) outcome = { ...outcome, consumption: settled.consumption };
    return this.#record(tenant, input, outcome, options, decisionId);
  }

  /** A deny decided before any policy ran (an access token refused): logged like any decision. */
  refuse(tenant: string, input: DecisionInput, reason: Failure, options: DecideOptions = {}): Decision {
    return this.#record(tenant, input, { decision: denied(reason), revision: "", failure: reason }, options);
  }

  /** Writes the waiting entries now; resolves once every write enqueued so far has settled (shutdown, tests). */
  async drain(): Promise<void> {
    this.#flush();
    while (this.#pendingLogs.size > 0) await Promise.allSettled([...this.#pendingLogs]);
  }

  async #evaluate(tenant: string, input: DecisionInput): Promise<Outcome> {
    const policy = await this.#options.policies.forTenant(tenant);
    if (!policy.ok) return { decision: denied(policy.reason), revision: "", failure: policy.reason };
    const revision = policy.loaded.revision;
    const evaluation = await policy.loaded.evaluate(input);
    if (!evaluation.ok) return { decision: denied(evaluation.reason), revision, failure: evaluation.reason };
    const normalised = normaliseResult(evaluation.result);
    if (!normalised.ok) return { decision: denied(normalised.reason), revision, failure: normalised.reason };
    return { decision: normalised.decision, revision };
  }

  #record(
    tenant: string,
    input: DecisionInput,
    outcome: Outcome,
    options: DecideOptions,
    decisionId?: string,
  ): Decision {
    const now = this.#options.now();
    const decision: Decision = {
      ...outcome.decision,
      decisionId: decisionId ?? uuidV7(now),
      policyRevision: outcome.revision,
      decideTime: now,
      ...(outcome.consumption ? { consumption: outcome.consumption } : {}),
    };
    decisions.add(1, { result: decision.allow ? "allow" : "deny", failure: outcome.failure?.code ?? "none" });
    if (outcome.failure) this.#logFailure(tenant, decision.decisionId, outcome.failure);
    this.#enqueueLog(tenant, decision, input, options, now);
    return decision;
  }

  /** The policy failing is the operator's concern (warn); a refused token, mandate or consumption is the caller's (debug). */
  #logFailure(tenant: string, decisionId: string, failure: Failure): void {
    const fields = { tenant, decisionId, reason: failure.code, detail: failure.message };
    if (CALLER_FAILURES.has(failure.code))
      this.#options.logger.debug(fields, "decision denied: the token, its mandate or the consumption refused");
    else this.#options.logger.warn(fields, "decision failed closed");
  }

  /** Enqueued, never awaited here: a failure is logged and counted, never turned into an answer. */
  #enqueueLog(tenant: string, decision: Decision, input: DecisionInput, options: DecideOptions, now: number): void {
    let event: BufferedLog["event"];
    try {
      event = decisionEvent(decision, input, { mask: this.#options.mask, callerRequestId: options.callerRequestId });
    } catch (error) {
      this.#logWriteFailure(error, tenant, decision.decisionId);
      return;
    }
    this.#buffered.push({ tenant, decisionId: decision.decisionId, event, at: now });
    const flushMs = this.#options.flushMs ?? 0;
    if (flushMs === 0 || this.#buffered.length >= MAX_BUFFERED) this.#flush();
    else this.#flushTimer ??= setTimeout(() => this.#flush(), flushMs).unref();
  }

  /** Every waiting entry handed to the outbox in one tick: its group commit makes one INSERT per tenant. */
  #flush(): void {
    clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
    const entries = this.#buffered;
    this.#buffered = [];
    for (const { tenant, decisionId, event, at } of entries) {
      let written: Promise<void>;
      try {
        written = this.#options.store.forTenant(tenant).commitEvent(event, at);
      } catch (error) {
        written = Promise.reject(error);
      }
      const settled = written
        .catch((error: unknown) => this.#logWriteFailure(error, tenant, decisionId))
        .finally(() => this.#pendingLogs.delete(settled));
      this.#pendingLogs.add(settled);
    }
  }

  #logWriteFailure(error: unknown, tenant: string, decisionId: string): void {
    logFailures.add(1);
    this.#options.logger.error({ err: error, tenant, decisionId }, "the decision log entry could not be enqueued");
  }
}

const CALLER_FAILURES = new Set<FailureCode>([
  "token_invalid",
  "token_expired",
  "token_wrong_tenant",
  "dpop_required",
  "dpop_invalid",
  "token_certificate_required",
  "token_certificate_mismatch",
  "mandate_not_found",
  "mandate_not_yet_valid",
  "mandate_expired",
  "mandate_revoked",
  "mandate_exhausted",
  "mandate_inactive",
  "mandate_chain_broken",
  "mandate_mismatch",
  "mandate_usage_exhausted",
  "mandate_meter_unlimited",
  "consumption_conflict",
]);

interface Outcome {
  decision: PolicyDecision;
  revision: string;
  failure?: Failure;
  consumption?: ConsumeResult;
}

function denied(reason: Failure): PolicyDecision {
  return { allow: false, reasons: [reason], obligations: [] };
}
