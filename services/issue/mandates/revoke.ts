// Revoking a mandate (Issue.RevokeMandate, the "my mandates" page, amendments, auto-revocation):
// the mandate and every sub-mandate below it, in one transaction with a mandate.revoked.v1 event
// per mandate (the descendants' name the mandate the revocation came from), so Audit.Query by any
// of their ids shows it, and with what dies with them: their refresh-token families and an entry per
// mandate in the revocation log (every replica, the feed). Returns what it revoked. `revokeWithin`
// does the same in a caller's transaction, with what else it writes (an amendment's new version).
import { type Actor, mandateRevoked } from "../../shared/audit-events.ts";
import type { Clock } from "../../shared/clock.ts";
import { notFound } from "../../shared/errors.ts";
import { type MandateRecord, MandateStore, type RevokedMandate } from "../../shared/mandates/mandate-store.ts";
import { GrantStore } from "../../shared/oauth/grant-store.ts";
import { RevocationLog } from "../../shared/oauth/revocation-log.ts";
import type { RevocationIndex } from "../../shared/oauth/revocations.ts";
import type { Store, TenantStore, TenantTransaction } from "../../shared/store/store.ts";

/** Ids per `IN (...)` list: well inside both engines' bound-parameter limits. */
const IN_CHUNK = 500;

export const DEFAULT_REVOKE_REASON = "revoked by an administrator";

export async function revokeMandate(
  deps: { store: Store; clock: Clock; revocations?: Pick<RevocationIndex, "published"> | undefined },
  tenant: string,
  mandateId: string,
  reason: string,
  actor: Actor,
): Promise<{ mandate: MandateRecord; revoked: RevokedMandate[] }> {
  const at = deps.clock.now();
  const scoped = deps.store.forTenant(tenant);
  const result = await scoped.transaction(async (tx) => {
    const mandates = scoped.use(MandateStore, tx);
    if (!(await mandates.find(mandateId))) throw notFound("mandate", mandateId);
    const revoked = await revokeWithin(scoped, tx, mandateId, reason, actor, at);
    return { mandate: (await mandates.find(mandateId)) as MandateRecord, revoked };
  });
  // Committed: this replica refuses the tokens before the caller hears back; the others by notification.
  if (result.revoked.length > 0) await deps.revocations?.published(tenant);
  return result;
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
  if (revoked.length > 0) await revokeDerived(scoped, tx, revoked, at);
  return revoked;
}

/**
 * What dies with the revoked mandates, in the same transaction: the refresh-token families living
 * under them (and the access tokens minted from those), and an entry per mandate in the revocation
 * log — so every replica refuses each token whose `mandate_id` names one of them (introspection,
 * Authorize) and resource servers learn it from the feed. The log is written last: it holds the
 * tenant's log head locked until the transaction ends.
 */
async function revokeDerived(
  scoped: TenantStore,
  tx: TenantTransaction,
  revoked: readonly RevokedMandate[],
  at: number,
): Promise<void> {
  const ids = revoked.map((m) => m.id);
  const grants = scoped.use(GrantStore, tx);
  for (const grant of await grants.grantsOfMandates(ids)) await grants.revokeGrant(grant.id, at);
  const expiries = new Map<string, number>();
  for (let i = 0; i < ids.length; i += IN_CHUNK) {
    const rows = await tx
      .selectFrom("mandates")
      .select(["id", "expires_at"])
      .where("tenant_id", "=", scoped.tenantId)
      .where("id", "in", ids.slice(i, i + IN_CHUNK))
      .execute();
    for (const row of rows) expiries.set(row.id, Number(row.expires_at));
  }
  const entries = ids.map((id) => ({ kind: "mandate" as const, id, expireTime: expiries.get(id) ?? at }));
  await scoped.use(RevocationLog, tx).append(entries, at);
}
