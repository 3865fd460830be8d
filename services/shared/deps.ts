// What every service module receives. Services reach each other only through `clients`.

import type { Clock } from "./clock.ts";
import type { Config } from "./config.ts";
import type { Logger } from "./logger.ts";
import type { ReplayCache } from "./oauth/replay.ts";
import type { RevocationIndex } from "./oauth/revocations.ts";
import type { RateLimiter } from "./rate-limit.ts";
import type { ServiceClients } from "./rpc/clients.ts";
import type { TenantLookup } from "./rpc/service.ts";
import type { AgentCaClient, SigningClient } from "./signing.ts";
import type { Store } from "./store/store.ts";

export interface ServiceDeps {
  config: Config;
  store: Store;
  clients: ServiceClients;
  logger: Logger;
  clock: Clock;
  /** Signing through the Signer: in-process when it runs here, over gRPC otherwise. */
  signing: SigningClient;
  /** Each tenant's agent certificate authority, in the Signer: in-process when it runs here, over gRPC otherwise. */
  agentCa: AgentCaClient;
  /** The process's token buckets (abuse limits, client quotas): shared by its services and its RPC gate. */
  limiter: RateLimiter;
  /**
   * The process's replay memory (DPoP proofs, client assertions, SAML assertions): Redis when
   * configured, else a `mandate dev` primary's (shared by its workers) or this process's own. The
   * runtime closes it; services only use it.
   */
  replay: ReplayCache;
  /** Which tenants exist (the Tenants service's registry): every service's admission check. */
  tenants: TenantLookup;
  /** What this replica knows of the revocation log (token checks, the revocation feed): one per process. */
  revocations: RevocationIndex;
}
