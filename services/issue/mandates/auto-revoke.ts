// Automatic revocation (issue 15, item 2's revocation policy): a mandate granted with
// revoke_on_account_end ends when its principal's account is deleted or disabled at the identity
// provider; one granted with revoke_on_session_end ends with the login session it was approved in.
// Each revokes the mandate and its sub-mandates (revokeWithin: cascade, one mandate.revoked.v1 per
// mandate, in one transaction), by a rule rather than a person.
//
// Where they run: `autoRevokeIfPrincipalGone` where a mandate is used (token exchange and refresh ask
// the provider before issuing, through principal-account.ts; an outage refuses: fail closed), and
// `revokeForSessionEnd` where a session ends (sign-out).
import type { Clock } from "../../shared/clock.ts";
import { MandateStore, type RevokedMandate } from "../../shared/mandates/mandate-store.ts";
import type { RevocationIndex } from "../../shared/oauth/revocations.ts";
import type { Store } from "../../shared/store/store.ts";
import type { AccountStatus, IdentityProvider } from "../identity/provider.ts";
import { revokeWithin } from "./revoke.ts";

/** Mandates of one principal read per step. */
const BATCH = 200;

export interface AutoRevokeDeps extends SessionEndDeps {
  identity: Pick<IdentityProvider, "accountStatus">;
}

export interface SessionEndDeps {
  store: Store;
  clock: Clock;
  /** Told after the revocations commit: this replica refuses at once, the others hear it (Redis). */
  revocations?: Pick<RevocationIndex, "published"> | undefined;
}

/**
 * Revokes the principal's mandates that end with their account, when the provider says the account
 * is deleted or disabled; returns what it revoked (nothing while the account is active, or when the
 * provider cannot tell). Errors of the provider propagate: the caller refuses what it was doing.
 */
export async function autoRevokeIfPrincipalGone(
  deps: AutoRevokeDeps,
  tenant: string,
  principal: string,
): Promise<{ status: AccountStatus; revoked: RevokedMandate[] }> {
  const status: AccountStatus = deps.identity.accountStatus
    ? await deps.identity.accountStatus(tenant, principal)
    : "unknown";
  if (status !== "deleted" && status !== "disabled") return { status, revoked: [] };
  const now = deps.clock.now();
  const scoped = deps.store.forTenant(tenant);
  const mandates = scoped.use(MandateStore);
  const ending: string[] = [];
  let after: string | undefined;
  for (;;) {
    const batch = await mandates.list({ principal }, now, BATCH, after);
    ending.push(...batch.filter((m) => m.revokeOnAccountEnd && m.state !== "revoked").map((m) => m.id));
    if (batch.length < BATCH) break;
    after = batch.at(-1)?.id;
  }
  const reason = `the principal's account was ${status}`;
  const revoked = await scoped.transaction(async (tx) => {
    const done: RevokedMandate[] = [];
    for (const id of ending) {
      done.push(...(await revokeWithin(scoped, tx, id, reason, { by: { rule: "revoke_on_account_end" } }, now)));
    }
    return done;
  });
  if (revoked.length > 0) await deps.revocations?.published(tenant);
  return { status, revoked };
}

/** Revokes the mandates that end with login session `sessionId`; returns what it revoked. */
export async function revokeForSessionEnd(
  deps: SessionEndDeps,
  tenant: string,
  sessionId: string,
): Promise<RevokedMandate[]> {
  const now = deps.clock.now();
  const scoped = deps.store.forTenant(tenant);
  const revoked = await scoped.transaction(async (tx) => {
    const ending = await scoped.use(MandateStore, tx).bySession(sessionId);
    const done: RevokedMandate[] = [];
    for (const mandate of ending) {
      done.push(
        ...(await revokeWithin(
          scoped,
          tx,
          mandate.id,
          "the login session it was granted in ended",
          { by: { rule: "revoke_on_session_end" } },
          now,
        )),
      );
    }
    return done;
  });
  if (revoked.length > 0) await deps.revocations?.published(tenant);
  return revoked;
}
