// The request's mandate in a decision (issue 15, item 6; ARCHITECTURE.md, "The decision input":
// `input.mandate`). A decision about an access token carrying `mandate_id` (or a request naming one
// in `token.mandate_id`) reads the mandate once — one query: its chain and current counters
// (shared/mandates/standing.ts) — and
//   - refuses it before any policy runs when it cannot be used now: unknown in the tenant
//     (mandate_not_found), not yet valid, expired, revoked, exhausted (a lifetime limit used up),
//     not granted (mandate_inactive), a mandate above it unusable (mandate_chain_broken), or not the
//     subject's and acting agent's (mandate_mismatch: the principal is the subject, RFC 8693 §4.1's
//     newest actor — or, with no actor, the client — is the mandate's agent);
//   - otherwise gives the policy its bounds and remaining usage as `input.mandate`.
// A declared consumption (CheckRequest.consume) is counted once the policy allowed, through
// MandateUsage.consume (atomic, idempotent per key, charging every mandate above too, its
// mandate.consumed.v1 in the same transaction naming the decision id); a refusal turns the allow
// into a deny with its reason, so the decision answered and logged agrees with what was counted.
import type { JsonObject } from "@bufbuild/protobuf";
import { unavailable } from "../../shared/errors.ts";
import { currentState, type MandateRecord } from "../../shared/mandates/mandate-store.ts";
import { MandateStandings, type Standing, type StandingCounter } from "../../shared/mandates/standing.ts";
import {
  IdempotencyConflict,
  limitsMeter,
  MandateNotUsable,
  type MandateUsage,
  periodStart,
  UsageLimitExceeded,
} from "../../shared/mandates/usage.ts";
import type { Store } from "../../shared/store/store.ts";
import type { Settlement } from "./decider.ts";
import { DEFAULT_METER, type DecisionInput, type InputConsumption } from "./decision-input.ts";
import { type Failure, failure } from "./reasons.ts";

export type MandateCheck = { ok: true; mandate: JsonObject; standing: Standing } | { ok: false; reason: Failure };

export class DecisionMandates {
  readonly #store: Store;
  readonly #usage: MandateUsage;
  constructor(store: Store, usage: MandateUsage) {
    this.#store = store;
    this.#usage = usage;
  }

  /** The mandate `id` for a decision on `input` (of its tenant, at its time), or why it is refused. */
  async check(input: DecisionInput, id: string): Promise<MandateCheck> {
    const now = input.context.time;
    const standing = await this.#store.forTenant(input.tenant).use(MandateStandings).of(id, now);
    if (!standing) return refused("mandate_not_found", `mandate ${id} does not exist in tenant ${input.tenant}`);
    const refusal = chainRefusal(standing, now) ?? partyRefusal(standing, input);
    if (refusal) return { ok: false, reason: refusal };
    return { ok: true, mandate: mandateInput(input.tenant, standing, now), standing };
  }

  /**
   * The settlement of an allow declaring `consume`: counted against the checked mandate, or the
   * reason it was not (nothing charged). A store failure is UNAVAILABLE, not a deny: whether the
   * consumption committed is then unknown, and a retry with the same key settles it exactly once.
   */
  settle(input: DecisionInput, checked: Standing, consume: InputConsumption): (id: string) => Promise<Settlement> {
    const mandate = checked.chain.at(-1) as MandateRecord;
    return async (decisionId) => {
      if (!limitsMeter(checked.chain, consume.meter)) {
        if (consume.only_if_limited) return { ok: true };
        return unsettled(
          "mandate_meter_unlimited",
          `mandate ${mandate.id} (and every mandate above it) sets no limit on meter "${consume.meter}": nothing to count it against`,
        );
      }
      const by: Record<string, string> = { decision_id: decisionId };
      if (input.client?.id) by.client_id = input.client.id;
      try {
        const consumption = await this.#usage.consume(
          input.tenant,
          mandate.id,
          { meter: consume.meter, amount: consume.amount, idempotencyKey: consume.idempotency_key },
          { by },
        );
        return { ok: true, consumption };
      } catch (error) {
        return consumptionRefusal(error, mandate.id);
      }
    };
  }
}

function consumptionRefusal(error: unknown, mandateId: string): Settlement {
  if (error instanceof UsageLimitExceeded) return unsettled("mandate_usage_exhausted", error.message);
  if (error instanceof IdempotencyConflict) return unsettled("consumption_conflict", error.message);
  if (error instanceof MandateNotUsable) {
    // It was usable when read for this decision: what changed since is a revocation or the clock.
    if (error.mandateId !== mandateId) return unsettled("mandate_chain_broken", error.message);
    const code =
      error.reason === "expired"
        ? "mandate_expired"
        : error.reason === "not_found"
          ? "mandate_not_found"
          : "mandate_revoked";
    return unsettled(code, error.message);
  }
  throw unavailable("the consumption could not be counted; retry with the same idempotency key");
}

/** Whether every mandate of the chain is usable at `now`: the mandate's own state first. */
function chainRefusal({ chain, counters }: Standing, now: number): Failure | undefined {
  const mandate = chain.at(-1) as MandateRecord;
  const own = stateRefusal(mandate, now, counters.get(mandate.id));
  if (own) return own;
  const root = chain[0] as MandateRecord;
  if (root.parentId !== null || chain.length !== mandate.depth + 1) {
    return failure("mandate_chain_broken", `a mandate above mandate ${mandate.id} is missing`);
  }
  for (const parent of chain.slice(0, -1)) {
    const refusal = stateRefusal(parent, now, counters.get(parent.id));
    if (refusal) {
      return failure(
        "mandate_chain_broken",
        `mandate ${mandate.id} derives from one that cannot be used: ${refusal.message}`,
      );
    }
  }
  return undefined;
}

function stateRefusal(mandate: MandateRecord, now: number, used: StandingCounter[] | undefined): Failure | undefined {
  const lifetime = new Map((used ?? []).filter((c) => c.periodMs === 0).map((c) => [c.meter, c.used]));
  const state = currentState(mandate, now, lifetime);
  const id = mandate.id;
  switch (state) {
    case "active":
      if (now >= mandate.notBefore) return undefined;
      return failure("mandate_not_yet_valid", `mandate ${id} is not valid before ${iso(mandate.notBefore)}`);
    case "expired":
      return failure("mandate_expired", `mandate ${id} expired at ${iso(mandate.expiresAt)}`);
    case "revoked":
      return failure(
        "mandate_revoked",
        `mandate ${id} was revoked${mandate.revokedAt ? ` at ${iso(mandate.revokedAt)}` : ""}`,
      );
    case "exhausted": {
      const limit = mandate.usageLimits.find((l) => l.periodMs === 0 && (lifetime.get(l.meter) ?? 0) >= l.maximum);
      return failure("mandate_exhausted", `mandate ${id} has used all ${limit?.maximum} of its ${limit?.meter}`);
    }
    default:
      return failure("mandate_inactive", `mandate ${id} is ${state}, not granted`);
  }
}

/** The token's (or request's) parties must be the mandate's: its principal, and its agent acting. */
function partyRefusal({ chain }: Standing, input: DecisionInput): Failure | undefined {
  const mandate = chain.at(-1) as MandateRecord;
  if (input.subject.id !== mandate.principal) {
    return failure(
      "mandate_mismatch",
      `mandate ${mandate.id} is not the subject's: it was granted by another principal`,
    );
  }
  const acting = input.actors.length > 0 ? input.actors[0]?.id : input.client?.id;
  if (acting !== mandate.agent) {
    return failure(
      "mandate_mismatch",
      `mandate ${mandate.id} was granted to agent ${mandate.agent}, not to the acting party`,
    );
  }
  return undefined;
}

/**
 * `input.mandate` (documented in policies/README.md, "input.mandate"): the mandate's bounds, its
 * chain, its own limits with what is used and remains in the current period, and per meter what
 * remains across the chain (a sub-mandate's consumption also counts against every mandate above it).
 */
export function mandateInput(tenant: string, { chain, counters }: Standing, now: number): JsonObject {
  const mandate = chain.at(-1) as MandateRecord;
  const limitsOf = (m: MandateRecord) =>
    m.usageLimits.map((limit) => {
      const start = periodStart(m.notBefore, limit.periodMs, now);
      const used =
        counters
          .get(m.id)
          ?.find((c) => c.meter === limit.meter && c.periodMs === limit.periodMs && c.periodStart === start)?.used ?? 0;
      return {
        meter: limit.meter,
        maximum: limit.maximum,
        period_ms: limit.periodMs,
        ...(limit.periodMs > 0 ? { period_start: start, period_end: start + limit.periodMs } : {}),
        used,
        remaining: Math.max(0, limit.maximum - used),
      };
    });
  const remaining: Record<string, number> = {};
  for (const m of chain) {
    for (const limit of limitsOf(m)) {
      remaining[limit.meter] = Math.min(remaining[limit.meter] ?? Number.POSITIVE_INFINITY, limit.remaining);
    }
  }
  return {
    id: mandate.id,
    tenant,
    version: mandate.version,
    state: "active",
    principal: mandate.principal,
    agent: mandate.agent,
    parent_id: mandate.parentId,
    parents: chain.slice(0, -1).map((m) => m.id),
    depth: mandate.depth,
    max_delegation_depth: mandate.maxDelegationDepth,
    scopes: [...mandate.scopes],
    resources: [...mandate.resources],
    authorization_details: mandate.authorizationDetails as unknown as JsonObject[],
    not_before: mandate.notBefore,
    expires_at: mandate.expiresAt,
    ...(mandate.maxTokenTtlMs === null ? {} : { max_token_ttl_ms: mandate.maxTokenTtlMs }),
    limits: limitsOf(mandate),
    remaining,
    // What the default and delegation policies read: the uses left (absent: no limit on calls).
    ...(remaining[DEFAULT_METER] === undefined ? {} : { uses_remaining: remaining[DEFAULT_METER] }),
  };
}

function refused(code: Failure["code"], message: string): MandateCheck {
  return { ok: false, reason: failure(code, message) };
}

function unsettled(code: Failure["code"], message: string): Settlement {
  return { ok: false, reason: failure(code, message) };
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}
