// Reads of the tenant registry for every service's admission check. Tenants are never deleted, so a
// tenant once seen stays known; unknown ids are looked up each time (a new tenant is usable at once).
import type { Store } from "../shared/store/store.ts";

const TENANT_ID = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export class TenantDirectory {
  readonly #store: Store;
  readonly #known = new Set<string>();
  constructor(store: Store) {
    this.#store = store;
  }

  async exists(tenantId: string): Promise<boolean> {
    if (this.#known.has(tenantId)) return true;
    // Not a tenant id (tenants.proto: 1-63 of [a-z0-9-]): no such tenant, without asking the store
    // (which may refuse the text outright, e.g. PostgreSQL a NUL).
    if (!TENANT_ID.test(tenantId)) return false;
    const row = await this.#store.db.selectFrom("tenants").select("id").where("id", "=", tenantId).executeTakeFirst();
    if (row) this.#known.add(tenantId);
    return row !== undefined;
  }
}
