// Each replica's view of the key rows of every tenant purpose it serves, refreshed each round. Since
// states follow from timestamps scheduled ahead, a view a few seconds old still picks the right
// signing key, so the hot path reads it without a query.
import type { KeyPurposeName } from "../shared/signing.ts";
import type { Store } from "../shared/store/store.ts";
import { SigningKeyRecords } from "./key-records.ts";
import type { KeyRecord } from "./schedule.ts";

type ViewKey = `${string}/${KeyPurposeName}`;

export class KeyViews {
  readonly #store: Store;
  readonly #views = new Map<ViewKey, KeyRecord[]>();

  constructor(store: Store) {
    this.#store = store;
  }

  /** The keys as last read, if this replica has read them. */
  get(tenant: string, purpose: KeyPurposeName): KeyRecord[] | undefined {
    return this.#views.get(`${tenant}/${purpose}`);
  }

  /** Reads the keys afresh and keeps them as the view. */
  async load(tenant: string, purpose: KeyPurposeName): Promise<KeyRecord[]> {
    const keys = await this.#store.forTenant(tenant).use(SigningKeyRecords).live(purpose);
    this.#views.set(`${tenant}/${purpose}`, keys);
    return keys;
  }

  /** Reloads every view held. */
  async refresh(): Promise<void> {
    for (const view of this.#views.keys()) {
      const [tenant, purpose] = view.split("/") as [string, KeyPurposeName];
      await this.load(tenant, purpose);
    }
  }
}
