// Deciding AuthZEN evaluations with the tenant's policy, and answering them as AuthZEN Decisions
// (§5.5): `decision`, and a `context` (§5.5.1) carrying the decision's id (the audit log's), the
// policy revision, the policy's reasons — also as `reason_admin` keyed by the HTTP status a deny
// means, as the specification's first example does — and its obligations. A batch runs in request
// order under its semantic (§7.1.2.1); an item that could not be read is a deny with the error in
// its context (§7.2.1). Nothing here throws for a decision: a policy failure is a deny.
import type { Logger } from "../../shared/logger.ts";
import { decisionInput } from "./decision-input.ts";
import { type Evaluation, type ItemFault, isFault, type JsonObject, type Semantic } from "./requests.ts";

/** What the decision engine answers (services/authorize/engine): fails closed, never throws by design. */
export interface PolicyDecision {
  allow: boolean;
  reasons: ReadonlyArray<{ code: string; message: string }>;
  obligations: ReadonlyArray<{ type: string; parameters?: JsonObject | undefined }>;
  decisionId: string;
  policyRevision: string;
}

/** The tenant's policy, as the AuthZEN endpoints use it. */
export interface AuthzenPolicy {
  /**
   * `data.mandate.authz.decision` of the tenant's active policy for `input`; `callerRequestId` is
   * the caller's X-Request-ID (recorded with the decision), absent when it sent none.
   */
  decide(tenant: string, input: JsonObject, options: { callerRequestId?: string | undefined }): Promise<PolicyDecision>;
  /** `data.mandate.search` of the tenant's active policy (its search candidates); undefined when none. */
  searchCandidates(tenant: string): Promise<unknown>;
}

/** An AuthZEN Decision (§5.5). */
export interface AuthzenDecision {
  decision: boolean;
  context?: JsonObject;
}

export interface EvaluatorOptions {
  policy: AuthzenPolicy;
  tenant: string;
  /** The request's id: the caller's X-Request-ID, or one made up for it. */
  requestId: string;
  /** Whether the caller sent the request id. */
  callerRequestId: boolean;
  now: () => number;
  logger: Logger;
}

/** Decides the evaluations of one HTTP request. */
export class Evaluator {
  readonly #options: EvaluatorOptions;

  constructor(options: EvaluatorOptions) {
    this.#options = options;
  }

  /** One evaluation as an AuthZEN Decision; a failure of the engine is a deny (fail closed). */
  async decide(evaluation: Evaluation): Promise<AuthzenDecision> {
    const { policy, tenant, requestId, now, logger } = this.#options;
    const log = { callerRequestId: this.#options.callerRequestId ? requestId : undefined };
    try {
      const decision = await policy.decide(tenant, decisionInput(evaluation, { tenant, requestId, now: now() }), log);
      return { decision: decision.allow === true, context: decisionContext(decision) };
    } catch (error) {
      logger.error({ err: error, tenant, requestId }, "AuthZEN evaluation failed; answered as a deny");
      return { decision: false, context: { error: { status: 500, message: "the decision could not be made" } } };
    }
  }

  /** §7.1.2.1: every item in order; deny_on_first_deny and permit_on_first_permit stop at the first such answer. */
  async decideAll(items: ReadonlyArray<Evaluation | ItemFault>, semantic: Semantic): Promise<AuthzenDecision[]> {
    const results: AuthzenDecision[] = [];
    for (const item of items) {
      const result = isFault(item) ? faultDecision(item) : await this.decide(item);
      results.push(result);
      if (semantic === "deny_on_first_deny" && !result.decision) break;
      if (semantic === "permit_on_first_permit" && result.decision) break;
    }
    return results;
  }
}

/** §7.2.1: an item that cannot be evaluated is denied, the error in its context. */
function faultDecision(item: ItemFault): AuthzenDecision {
  return { decision: false, context: { error: { status: 400, message: item.fault } } };
}

/** §5.5.1 Decision context: what the PEP may use to enforce the decision. */
export function decisionContext(decision: PolicyDecision): JsonObject {
  const context: JsonObject = { id: decision.decisionId };
  if (decision.policyRevision) context.policy_revision = decision.policyRevision;
  const reasons = decision.reasons.map(({ code, message }) => ({ code, message }));
  if (reasons.length > 0) {
    context.reasons = reasons;
    if (!decision.allow) context.reason_admin = { "403": reasons.map((r) => r.message || r.code).join("; ") };
  }
  if (decision.obligations.length > 0) {
    context.obligations = decision.obligations.map(({ type, parameters }) => ({ type, parameters: parameters ?? {} }));
  }
  return context;
}
