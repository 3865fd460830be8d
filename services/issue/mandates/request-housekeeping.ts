// Housekeeping of backchannel mandate requests (request-store.ts): a request is needed while the
// human may decide it and the agent may poll it (until it expires), and a while after, so that a
// late poll still hears expired_token, access_denied or invalid_grant for a request that was used
// rather than "unknown". Past REQUEST_RETENTION_MS after it expired or finished (denied, tokens
// issued) its row is deleted: every replica hosting Issue prunes every PRUNE_EVERY_MS (deletes are
// idempotent, so replicas need no coordination), tenant by tenant. The grant itself lives on in the
// mandate and the audit log (mandate.requested.v1, mandate.granted.v1 / mandate.request_denied.v1).
import type { Clock } from "../../shared/clock.ts";
import type { Logger } from "../../shared/logger.ts";
import type { Store } from "../../shared/store/store.ts";
import { startPeriodicPrune } from "../housekeeping/periodic-prune.ts";
import { MandateRequestStore } from "./request-store.ts";

/** How long a request is kept after it expired or finished. */
export const REQUEST_RETENTION_MS = 24 * 3_600_000;
/** How often each replica prunes. */
export const PRUNE_EVERY_MS = 10 * 60_000;

/** Deletes every tenant's requests past retention at `now`; how many. */
export async function pruneMandateRequests(
  store: Store,
  now: number,
  retentionMs = REQUEST_RETENTION_MS,
): Promise<number> {
  const tenants = await store.db.selectFrom("tenants").select("id").execute();
  let pruned = 0;
  for (const { id } of tenants)
    pruned += await store
      .forTenant(id)
      .use(MandateRequestStore)
      .prune(now - retentionMs);
  return pruned;
}

/** Prunes now and every PRUNE_EVERY_MS until stopped (which waits for a round under way); a failed round is logged. */
export function startRequestHousekeeping(deps: { store: Store; clock: Clock; logger: Logger }): {
  stop(): Promise<void>;
} {
  return startPeriodicPrune(deps, {
    what: "mandate requests",
    everyMs: PRUNE_EVERY_MS,
    prune: (now) => pruneMandateRequests(deps.store, now),
  });
}
