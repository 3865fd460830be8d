// What each user approved for each client (table oauth_consents): the scopes and resources, merged
// over time, so a request within them needs no second approval. Obtained from the tenant handle:
// `scoped.use(ConsentStore, tx?)`.
import type { TenantDb } from "../../shared/store/tenancy.ts";

export interface Approval {
  clientId: string;
  subject: string;
  scope: string[];
  resources: string[];
}

export class ConsentStore {
  readonly #tenant: string;
  readonly #db: TenantDb;
  constructor(tenant: string, db: TenantDb) {
    this.#tenant = tenant;
    this.#db = db;
  }

  /** Whether the user approved this client at all (so its redirect URIs are vouched for). */
  async approvedClient(clientId: string, subject: string): Promise<boolean> {
    return (await this.#row(clientId, subject)) !== undefined;
  }

  /** Whether the user already approved every scope and resource of `request`. */
  async covers(request: Approval): Promise<boolean> {
    const row = await this.#row(request.clientId, request.subject);
    if (!row) return false;
    const scopes = new Set(row.scope.split(" "));
    const resources = new Set(JSON.parse(row.resources) as string[]);
    return request.scope.every((s) => scopes.has(s)) && request.resources.every((r) => resources.has(r));
  }

  /** Adds an approval to what the user approved before for the client. */
  async merge(approval: Approval, now: number): Promise<void> {
    const existing = await this.#row(approval.clientId, approval.subject);
    const scope = union(existing?.scope.split(" ").filter(Boolean) ?? [], approval.scope).join(" ");
    const resources = JSON.stringify(
      union(existing ? (JSON.parse(existing.resources) as string[]) : [], approval.resources),
    );
    if (existing) {
      await this.#db
        .updateTable("oauth_consents")
        .set({ scope, resources, updated_at: now })
        .where("tenant_id", "=", this.#tenant)
        .where("client_id", "=", approval.clientId)
        .where("subject", "=", approval.subject)
        .execute();
      return;
    }
    await this.#db
      .insertInto("oauth_consents")
      .values({
        tenant_id: this.#tenant,
        client_id: approval.clientId,
        subject: approval.subject,
        scope,
        resources,
        updated_at: now,
      })
      .execute();
  }

  /** Forgets every user's approval of a client (its redirect URIs changed: RFC 9700 §4.11.2). */
  async forgetClient(clientId: string): Promise<void> {
    await this.#db
      .deleteFrom("oauth_consents")
      .where("tenant_id", "=", this.#tenant)
      .where("client_id", "=", clientId)
      .execute();
  }

  #row(clientId: string, subject: string) {
    return this.#db
      .selectFrom("oauth_consents")
      .selectAll()
      .where("tenant_id", "=", this.#tenant)
      .where("client_id", "=", clientId)
      .where("subject", "=", subject)
      .executeTakeFirst();
  }
}

function union(a: string[], b: string[]): string[] {
  return [...new Set([...a, ...b])];
}
