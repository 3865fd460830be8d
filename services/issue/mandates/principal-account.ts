// Revocation on account end, where a mandate is used: before a token is issued from a chain in which
// some mandate was granted with revoke_on_account_end, the identity provider is asked whether the
// principal's account still exists and is enabled; if not, autoRevokeIfPrincipalGone revokes those
// mandates (cascade, events, published to the other replicas) and the issuance is refused. Only such
// chains pay for the question, and an "active" answer is remembered briefly so a busy agent does not
// ask the provider (Kratos's admin API) for every token. A provider failure refuses the issuance:
// fail closed.
import type { MandateRecord } from "../../shared/mandates/mandate-store.ts";
import type { AccountStatus } from "../identity/provider.ts";
import { type AutoRevokeDeps, autoRevokeIfPrincipalGone } from "./auto-revoke.ts";
import type { Refuse } from "./refusal.ts";

/** How long an account found active (or a provider that cannot tell) is not asked again. */
export const ACCOUNT_STATUS_TTL_MS = 30_000;
const REMEMBERED_MAX = 10_000;

export class PrincipalAccounts {
  readonly #active = new Map<string, number>();

  /** Refuses (`refuse`, condition revoked) when the principal's account ended and revoked the chain. */
  async requireAccount(
    deps: AutoRevokeDeps,
    tenant: string,
    chain: readonly MandateRecord[],
    refuse: Refuse,
  ): Promise<void> {
    const bound = chain.find((link) => link.revokeOnAccountEnd);
    if (!bound) return;
    const key = `${tenant}\n${bound.principal}`;
    const now = deps.clock.now();
    if ((this.#active.get(key) ?? 0) > now) return;
    const { status, revoked } = await autoRevokeIfPrincipalGone(deps, tenant, bound.principal);
    if (!ended(status)) {
      if (this.#active.size >= REMEMBERED_MAX) this.#active.clear();
      this.#active.set(key, now + ACCOUNT_STATUS_TTL_MS);
      return;
    }
    const hit = revoked.find((m) => chain.some((link) => link.id === m.id)) ?? { id: bound.id };
    throw refuse(
      "revoked",
      `mandate ${hit.id} has been revoked: its principal's account was ${status} (revoke_on_account_end)`,
      `mandate:${hit.id}`,
    );
  }
}

function ended(status: AccountStatus): boolean {
  return status === "deleted" || status === "disabled";
}
