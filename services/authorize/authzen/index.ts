// The AuthZEN endpoints as the Authorize service mounts them (its module's `http`): callers are
// admitted by a CallerAuthentication over the service's deps — the RPC gate's own checks, limits
// and client quotas — and decided by the tenant's policy.
import type { ServiceDeps } from "../../shared/deps.ts";
import { TenantKeys } from "../../shared/oauth/access-token.ts";
import { ClientQuotas } from "../../shared/oauth/client-quota.ts";
import { openReplayCache } from "../../shared/oauth/replay.ts";
import { CallerAuthentication, callerLimits } from "../../shared/rpc/caller-authentication.ts";
import type { HttpHandler } from "../../shared/rpc/service.ts";
import type { AuthzenPolicy } from "./evaluate.ts";
import { authzenHandler } from "./handler.ts";

export type { AuthzenPolicy, PolicyDecision } from "./evaluate.ts";
export { type AuthzenHandlerOptions, authzenHandler, type HttpCallerGate, MAX_EVALUATIONS } from "./handler.ts";

export interface AuthzenHttp {
  /** The module's `http`: true when the request was an AuthZEN one (and has been answered). */
  handle: HttpHandler;
  /** Closes the DPoP replay cache (a Redis connection when `redis.url` is set). */
  close(): Promise<void>;
}

export function createAuthzenHttp(deps: ServiceDeps, policy: AuthzenPolicy): AuthzenHttp {
  const { config, store, tenants, logger, clock } = deps;
  const replay = openReplayCache(config.redis.url);
  const keys = new TenantKeys(deps.signing);
  const callers = new CallerAuthentication({
    config,
    store,
    tenants,
    keys: (tenant) => keys.for(tenant),
    replay,
    limits: callerLimits(config, deps.limiter, new ClientQuotas(store)),
    logger,
    now: () => clock.now(),
  });
  return {
    handle: authzenHandler({ config, tenants, logger, clock, callers, policy }),
    close: () => replay.close(),
  };
}
