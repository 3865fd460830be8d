// The `signing_keys` rows as KeyRecords (schedule.ts), and every statement over them. A tenant's rows
// are reached through its pinned handle (`scoped.use(SigningKeyRecords, tx?)`); a key's lifecycle is
// written only as timestamps, since its state follows from them.

import type { JWK } from "jose";
import type { Kysely } from "kysely";
import type { KeyPurposeName } from "../shared/signing.ts";
import type { SigningKeysTable } from "../shared/store/schema.ts";
import type { Database, TenantDb } from "../shared/store/store.ts";
import type { SigningAlgorithm } from "./backends/backend.ts";
import type { KeyRecord } from "./schedule.ts";

/** When a key starts signing, stops signing and leaves the JWKS. */
export interface KeyTimes {
  activateAt: number;
  retireAt: number;
  unpublishAt: number;
}

export class SigningKeyRecords {
  readonly #tenant: string;
  readonly #db: TenantDb;

  constructor(tenantId: string, db: TenantDb) {
    this.#tenant = tenantId;
    this.#db = db;
  }

  /** The purpose's keys not yet destroyed: what signs, what is published, what the schedule plans over. */
  async live(purpose: KeyPurposeName): Promise<KeyRecord[]> {
    const rows = await this.#db
      .selectFrom("signing_keys")
      .selectAll()
      .where("tenant_id", "=", this.#tenant)
      .where("purpose", "=", purpose)
      .where("destroyed_at", "is", null)
      .execute();
    return rows.map(toRecord);
  }

  /** Every key of the purposes, destroyed ones too, the latest to activate first. */
  async history(purposes: readonly KeyPurposeName[]): Promise<KeyRecord[]> {
    const rows = await this.#db
      .selectFrom("signing_keys")
      .selectAll()
      .where("tenant_id", "=", this.#tenant)
      .where("purpose", "in", [...purposes])
      .orderBy("activate_at", "desc")
      .execute();
    return rows.map(toRecord);
  }

  async insert(row: SigningKeysTable): Promise<void> {
    await this.#db.insertInto("signing_keys").values(row).execute();
  }

  async reschedule(id: string, times: KeyTimes): Promise<void> {
    await this.#update(id)
      .set({ activate_at: times.activateAt, retire_at: times.retireAt, unpublish_at: times.unpublishAt })
      .execute();
  }

  async revoke(id: string, at: number): Promise<void> {
    await this.#update(id).set({ revoked_at: at }).execute();
  }

  async markDestroyed(id: string, at: number): Promise<void> {
    await this.#update(id).set({ destroyed_at: at }).execute();
  }

  #update(id: string) {
    return this.#db.updateTable("signing_keys").where("tenant_id", "=", this.#tenant).where("id", "=", id);
  }
}

/** The backend refs that some key row of any tenant names (destroyed keys included). */
export async function referencedRefs(db: Kysely<Database>, backend: string): Promise<Set<string>> {
  const rows = await db.selectFrom("signing_keys").select("backend_ref").where("backend", "=", backend).execute();
  return new Set(rows.map((row) => row.backend_ref));
}

function toRecord(row: SigningKeysTable): KeyRecord {
  return {
    id: row.id,
    tenant: row.tenant_id,
    purpose: row.purpose as KeyPurposeName,
    kid: row.kid,
    alg: row.alg as SigningAlgorithm,
    backend: row.backend,
    ref: row.backend_ref,
    publicJwk: JSON.parse(row.public_jwk) as JWK,
    createdAt: Number(row.created_at),
    publishAt: Number(row.publish_at),
    activateAt: Number(row.activate_at),
    retireAt: Number(row.retire_at),
    unpublishAt: Number(row.unpublish_at),
    revokedAt: row.revoked_at === null ? null : Number(row.revoked_at),
    destroyedAt: row.destroyed_at === null ? null : Number(row.destroyed_at),
  };
}
