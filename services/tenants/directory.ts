// Reads of the tenant registry for every service's admission check. Tenants are never deleted, so a
// tenant once seen stays known; unknown ids are looked up each time (a new tenant is usable at once).
import type { Store } from "../shared/store/store.ts";

export class TenantDirectory {
  readonly #store: Store;
  readonly #known = new Set<string>();
  constructor(store: Store) {
    this.#store = store;
  }

  async exists(tenantId: string): Promise<boolean> {
    if (this.#known.has(tenantId)) return true;
    const row = await this.#store.db.selectFrom("tenants").select("id").where("id", "=", tenantId).executeTakeFirst();
    if (row) this.#known.add(tenantId);
    return row !== undefined;
  }
}
