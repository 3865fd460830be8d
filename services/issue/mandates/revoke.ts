// Revoking a mandate (Issue.RevokeMandate): the mandate and every sub-mandate below it, in one
// transaction with a mandate.revoked.v1 event per mandate (the descendants' name the mandate the
// revocation came from), so Audit.Query by any of their ids shows it. Returns what it revoked: the
// tokens derived from them are the next step's (revocation hooks and feed).
import { type Actor, mandateRevoked } from "../../shared/audit-events.ts";
import type { Clock } from "../../shared/clock.ts";
import { notFound } from "../../shared/errors.ts";
import { type MandateRecord, MandateStore, type RevokedMandate } from "../../shared/mandates/mandate-store.ts";
import type { Store } from "../../shared/store/store.ts";

export const DEFAULT_REVOKE_REASON = "revoked by an administrator";

export async function revokeMandate(
  deps: { store: Store; clock: Clock },
  tenant: string,
  mandateId: string,
  reason: string,
  actor: Actor,
): Promise<{ mandate: MandateRecord; revoked: RevokedMandate[] }> {
  const at = deps.clock.now();
  const scoped = deps.store.forTenant(tenant);
  return scoped.transaction(async (tx) => {
    const mandates = scoped.use(MandateStore, tx);
    if (!(await mandates.find(mandateId))) throw notFound("mandate", mandateId);
    const why = reason || DEFAULT_REVOKE_REASON;
    const revoked = await mandates.revokeTree(mandateId, { by: actor.by, reason: why, at });
    for (const mandate of revoked) {
      const cascadeFrom = mandate.id === mandateId ? undefined : mandateId;
      await scoped.recordEvent(tx, mandateRevoked(mandate, { reason: why, cascadeFrom }, actor), at);
    }
    return { mandate: (await mandates.find(mandateId)) as MandateRecord, revoked };
  });
}
