// One tenant's policy rows (migration 0008): pushed bundles (immutable), the activation history (its
// last row is the active revision), the state row (active revision and a version that grows on
// every change), dynamic data documents and bundle-signing settings. Obtained from the tenant
// handle: `scoped.use(PolicyStore, tx?)`. A change runs in one transaction that first takes the
// tenant's state row (`lock`), so concurrent changes of one tenant apply one after the other.
import type { PolicyBundlesTable, PolicyDataTable, PolicySigningTable } from "../../shared/store/schema.ts";
import type { TenantDb } from "../../shared/store/tenancy.ts";

/** A stored bundle without its bytes (what listings need). */
export type BundleMeta = Omit<PolicyBundlesTable, "bundle">;

export interface PolicyStateRow {
  activeRevision: string | null;
  version: number;
}

const META_COLUMNS = [
  "tenant_id",
  "revision",
  "sha256",
  "signed_by",
  "entrypoints",
  "size_bytes",
  "created_at",
] as const satisfies ReadonlyArray<keyof PolicyBundlesTable>;

export class PolicyStore {
  readonly #tenant: string;
  readonly #db: TenantDb;
  constructor(tenant: string, db: TenantDb) {
    this.#tenant = tenant;
    this.#db = db;
  }

  // --- Reads ---------------------------------------------------------------------------------------

  /** The active revision and version; a tenant without a row has none and version 0. */
  async state(): Promise<PolicyStateRow> {
    const row = await this.#db
      .selectFrom("policy_state")
      .select(["active_revision", "version"])
      .where("tenant_id", "=", this.#tenant)
      .executeTakeFirst();
    return { activeRevision: row?.active_revision ?? null, version: row?.version ?? 0 };
  }

  /** A stored bundle with its bytes (base64). */
  bundle(revision: string): Promise<PolicyBundlesTable | undefined> {
    return this.#db
      .selectFrom("policy_bundles")
      .selectAll()
      .where("tenant_id", "=", this.#tenant)
      .where("revision", "=", revision)
      .executeTakeFirst();
  }

  bundleMeta(revision: string): Promise<BundleMeta | undefined> {
    return this.#db
      .selectFrom("policy_bundles")
      .select(META_COLUMNS)
      .where("tenant_id", "=", this.#tenant)
      .where("revision", "=", revision)
      .executeTakeFirst();
  }

  /** Every stored bundle, newest first. */
  bundles(): Promise<BundleMeta[]> {
    return this.#db
      .selectFrom("policy_bundles")
      .select(META_COLUMNS)
      .where("tenant_id", "=", this.#tenant)
      .orderBy("created_at", "desc")
      .orderBy("revision", "desc")
      .execute();
  }

  /** When each revision was last activated. */
  async activationTimes(): Promise<Map<string, number>> {
    const rows = await this.#db
      .selectFrom("policy_activations")
      .select(({ fn }) => ["revision", fn.max("activated_at").as("at")])
      .where("tenant_id", "=", this.#tenant)
      .groupBy("revision")
      .execute();
    return new Map(rows.map((r) => [r.revision, Number(r.at)]));
  }

  /** The newest `n` activations, newest first. */
  latestActivations(n: number): Promise<Array<{ seq: number; revision: string }>> {
    return this.#db
      .selectFrom("policy_activations")
      .select(["seq", "revision"])
      .where("tenant_id", "=", this.#tenant)
      .orderBy("seq", "desc")
      .limit(n)
      .execute();
  }

  data(): Promise<PolicyDataTable[]> {
    return this.#db
      .selectFrom("policy_data")
      .selectAll()
      .where("tenant_id", "=", this.#tenant)
      .orderBy("path")
      .execute();
  }

  dataDocument(path: string): Promise<PolicyDataTable | undefined> {
    return this.#db
      .selectFrom("policy_data")
      .selectAll()
      .where("tenant_id", "=", this.#tenant)
      .where("path", "=", path)
      .executeTakeFirst();
  }

  signing(): Promise<PolicySigningTable | undefined> {
    return this.#db.selectFrom("policy_signing").selectAll().where("tenant_id", "=", this.#tenant).executeTakeFirst();
  }

  // --- Writes (inside a transaction that began with `lock`) ----------------------------------------

  /**
   * Takes the tenant's state row for the rest of the transaction (creating it at version 0): an
   * UPDATE holds the row lock in PostgreSQL and the write lock in SQLite, so a concurrent change of
   * the same tenant waits and then reads what this one committed.
   */
  async lock(now: number): Promise<void> {
    await this.#db
      .insertInto("policy_state")
      .values({ tenant_id: this.#tenant, active_revision: null, version: 0, updated_at: now })
      .onConflict((c) => c.column("tenant_id").doNothing())
      .execute();
    await this.#db
      .updateTable("policy_state")
      .set((eb) => ({ version: eb.ref("version") }))
      .where("tenant_id", "=", this.#tenant)
      .execute();
  }

  /** Records the change: version + 1 (and the active revision when it moved); the new version. */
  async bump(now: number, activeRevision?: string): Promise<number> {
    const row = await this.#db
      .updateTable("policy_state")
      .set((eb) => ({
        version: eb("version", "+", 1),
        updated_at: now,
        ...(activeRevision !== undefined ? { active_revision: activeRevision } : {}),
      }))
      .where("tenant_id", "=", this.#tenant)
      .returning("version")
      .executeTakeFirstOrThrow();
    return Number(row.version);
  }

  async insertBundle(row: Omit<PolicyBundlesTable, "tenant_id">): Promise<void> {
    await this.#db
      .insertInto("policy_bundles")
      .values({ ...row, tenant_id: this.#tenant })
      .execute();
  }

  /** Appends `revision` to the activation history: it is the active one now. */
  async appendActivation(revision: string, now: number): Promise<void> {
    const last = await this.latestActivations(1);
    const seq = (last[0] ? Number(last[0].seq) : 0) + 1;
    await this.#db
      .insertInto("policy_activations")
      .values({ tenant_id: this.#tenant, seq, revision, activated_at: now })
      .execute();
  }

  /** Removes the newest activation (a rollback): the one before it is active again. */
  async popActivation(seq: number): Promise<void> {
    await this.#db
      .deleteFrom("policy_activations")
      .where("tenant_id", "=", this.#tenant)
      .where("seq", "=", seq)
      .execute();
  }

  async putData(path: string, value: string, now: number): Promise<void> {
    await this.#db
      .insertInto("policy_data")
      .values({ tenant_id: this.#tenant, path, value, updated_at: now })
      .onConflict((c) => c.columns(["tenant_id", "path"]).doUpdateSet({ value, updated_at: now }))
      .execute();
  }

  /** Removes a document; whether there was one. */
  async deleteData(path: string): Promise<boolean> {
    const result = await this.#db
      .deleteFrom("policy_data")
      .where("tenant_id", "=", this.#tenant)
      .where("path", "=", path)
      .executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }

  async putSigning(jwks: string, requireSignatures: boolean, now: number): Promise<void> {
    const require_signatures = requireSignatures ? 1 : 0;
    await this.#db
      .insertInto("policy_signing")
      .values({ tenant_id: this.#tenant, jwks, require_signatures, updated_at: now })
      .onConflict((c) => c.column("tenant_id").doUpdateSet({ jwks, require_signatures, updated_at: now }))
      .execute();
  }
}
