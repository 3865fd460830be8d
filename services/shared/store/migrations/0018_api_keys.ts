// Migration 0018 (issue 18): API keys Mandate creates for agents — prefixed, hashed at rest,
// scoped, expiring, rotatable with overlap, shown once. Not yet released: its owner may still
// change it until issue 18 lands.
import type { Kysely } from "kysely";

export interface ApiKeysTable {
  tenant_id: string;
  id: string;
  /** The agent the key authenticates. */
  client_id: string;
  /** SHA-256 of the whole key (the key itself is never stored). */
  key_hash: string;
  /** JSON arrays: what tokens it may obtain at most. */
  scopes: string;
  resources: string;
  created_by: string;
  created_at: number;
  expires_at: number;
  /** The key this one replaced; that one stays valid until its overlap ends (its expires_at is cut). */
  rotated_from: string | null;
  revoked_at: number | null;
  last_used_at: number | null;
}

export async function up(db: Kysely<unknown>, engine: "sqlite" | "postgres"): Promise<void> {
  const bigint = engine === "postgres" ? "bigint" : "integer";
  await db.schema
    .createTable("api_keys")
    .addColumn("tenant_id", "text", (c) => c.notNull().references("tenants.id"))
    .addColumn("id", "text", (c) => c.notNull())
    .addColumn("client_id", "text", (c) => c.notNull())
    .addColumn("key_hash", "text", (c) => c.notNull())
    .addColumn("scopes", "text", (c) => c.notNull())
    .addColumn("resources", "text", (c) => c.notNull())
    .addColumn("created_by", "text", (c) => c.notNull())
    .addColumn("created_at", bigint, (c) => c.notNull())
    .addColumn("expires_at", bigint, (c) => c.notNull())
    .addColumn("rotated_from", "text")
    .addColumn("revoked_at", bigint)
    .addColumn("last_used_at", bigint)
    .addPrimaryKeyConstraint("api_keys_pk", ["tenant_id", "id"])
    .execute();
  await db.schema.createIndex("api_keys_hash_idx").on("api_keys").columns(["tenant_id", "key_hash"]).unique().execute();
  // A key's successor (rotation) and an agent's keys (ListApiKeys by agent) without a scan.
  await db.schema
    .createIndex("api_keys_rotated_from_idx")
    .on("api_keys")
    .columns(["tenant_id", "rotated_from"])
    .execute();
  await db.schema.createIndex("api_keys_client_idx").on("api_keys").columns(["tenant_id", "client_id"]).execute();
}
