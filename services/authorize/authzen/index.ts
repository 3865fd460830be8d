// The AuthZEN endpoints as the Authorize service mounts them (its module's `http`): callers are
// admitted by a CallerAuthentication over the service's deps — the RPC gate's own token checks,
// limits and client quotas — and decided by the decision engine with the tenant's active policy.
import type { ServiceDeps } from "../../shared/deps.ts";
import type { ReplayCache } from "../../shared/oauth/replay.ts";
import { serviceCallerGate } from "../../shared/rpc/caller-authentication.ts";
import type { HttpHandler } from "../../shared/rpc/service.ts";
import type { AuthzenPolicy, PolicyDecision } from "./evaluate.ts";
import { authzenHandler } from "./handler.ts";
import type { JsonObject } from "./requests.ts";

export type { AuthzenPolicy, PolicyDecision } from "./evaluate.ts";
export { type AuthzenHandlerOptions, authzenHandler, type HttpCallerGate, MAX_EVALUATIONS } from "./handler.ts";

/**
 * The module's `http`: true when the request was an AuthZEN one (then answered). `replay` is the
 * DPoP replay cache (the service's; its owner closes it).
 */
export function authzenHttp(deps: ServiceDeps, policy: AuthzenPolicy, replay: ReplayCache): HttpHandler {
  const { config, tenants, logger, clock } = deps;
  return authzenHandler({ config, tenants, logger, clock, callers: serviceCallerGate(deps, replay), policy });
}

/** What the decision engine offers (engine/engine.ts `DecisionEngine.decide`). */
export interface EngineParts {
  /** `input` is the engine's DecisionInput, of which the AuthZEN input is a superset. */
  decide(tenant: string, input: never, options?: { callerRequestId?: string | undefined }): Promise<PolicyDecision>;
}

/** What the policy registry offers (policies/registry.ts `PolicyRegistry.active`). */
export interface PolicyDataSource {
  /** The tenant's active policy (its own, or the default) with its data; throws when it has none. */
  active(tenant: string): Promise<{ data: Record<string, unknown> }>;
}

/**
 * The tenant's policy as the AuthZEN endpoints use it: decisions by the engine; search candidates
 * from the active policy's data (`data.mandate.search`).
 */
export function enginePolicy(engine: EngineParts, policies: PolicyDataSource): AuthzenPolicy {
  return {
    // The AuthZEN input is the decision input (version 1) with `subject.type`, `action_attributes` and `authzen` added.
    decide: (tenant, input, options) => engine.decide(tenant, input as never, options),
    async searchCandidates(tenant) {
      const { data } = await policies.active(tenant);
      return ((data.mandate ?? {}) as JsonObject).search;
    },
  };
}
