// Revoking a mandate (Issue.RevokeMandate, the "my mandates" page, amendments, auto-revocation):
// the mandate and every sub-mandate below it, in one transaction with a mandate.revoked.v1 event
// per mandate (the descendants' name the mandate the revocation came from), so Audit.Query by any
// of their ids shows it. Returns what it revoked: the tokens derived from them are the next step's
// (revocation hooks and feed). `revokeWithin` does the same in a caller's transaction, with what
// else it writes (an amendment's new version).
import { type Actor, mandateRevoked } from "../../shared/audit-events.ts";
import type { Clock } from "../../shared/clock.ts";
import { notFound } from "../../shared/errors.ts";
import { type MandateRecord, MandateStore, type RevokedMandate } from "../../shared/mandates/mandate-store.ts";
import type { Store, TenantStore, TenantTransaction } from "../../shared/store/store.ts";

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
    const revoked = await revokeWithin(scoped, tx, mandateId, reason, actor, at);
    return { mandate: (await mandates.find(mandateId)) as MandateRecord, revoked };
  });
}

/**
 * Revokes `mandateId` and its sub-mandates in the caller's transaction, each with its event; returns
 * what it revoked (`mandateId` first unless it was revoked already; nothing when it does not exist).
 */
export async function revokeWithin(
  scoped: TenantStore,
  tx: TenantTransaction,
  mandateId: string,
  reason: string,
  actor: Actor,
  at: number,
): Promise<RevokedMandate[]> {
  const why = reason || DEFAULT_REVOKE_REASON;
  const revoked = await scoped.use(MandateStore, tx).revokeTree(mandateId, { by: actor.by, reason: why, at });
  for (const mandate of revoked) {
    const cascadeFrom = mandate.id === mandateId ? undefined : mandateId;
    await scoped.recordEvent(tx, mandateRevoked(mandate, { reason: why, cascadeFrom }, actor), at);
  }
  return revoked;
}
