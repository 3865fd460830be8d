// Forward-only, versioned migrations. Append new ones; never edit or remove a released one.
// Each runs in a transaction (both engines support transactional DDL) so a crash leaves the
// schema at a version boundary.
import type { Kysely } from "kysely";
import type { Migration, MigrationProvider } from "kysely/migration";

export type Engine = "sqlite" | "postgres";

/** Builds the migration list for an engine; the few type differences are decided here. */
export function migrationsFor(engine: Engine): Record<string, Migration> {
  const bigint = engine === "postgres" ? "bigint" : "integer";
  return {
    "0001_tenants_and_audit_outbox": {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable("tenants")
          .addColumn("id", "text", (c) => c.primaryKey())
          .addColumn("display_name", "text", (c) => c.notNull())
          .addColumn("created_at", bigint, (c) => c.notNull())
          .execute();
        await db.schema
          .createTable("audit_outbox")
          .addColumn("id", engine === "postgres" ? "bigserial" : "integer", (c) =>
            engine === "postgres" ? c.primaryKey() : c.primaryKey().autoIncrement(),
          )
          .addColumn("tenant_id", "text", (c) => c.notNull().references("tenants.id"))
          .addColumn("event_id", "text", (c) => c.notNull().unique())
          .addColumn("type", "text", (c) => c.notNull())
          .addColumn("payload", "text", (c) => c.notNull())
          .addColumn("created_at", bigint, (c) => c.notNull())
          .execute();
        await db.schema
          .createIndex("audit_outbox_tenant_idx")
          .on("audit_outbox")
          .columns(["tenant_id", "id"])
          .execute();
      },
    },
    "0002_signer": {
      async up(db: Kysely<unknown>) {
        await db.schema.alterTable("tenants").addColumn("token_signing_alg", "text").execute();
        await db.schema
          .createTable("signing_keys")
          .addColumn("tenant_id", "text", (c) => c.notNull().references("tenants.id"))
          .addColumn("id", "text", (c) => c.primaryKey())
          .addColumn("purpose", "text", (c) => c.notNull())
          .addColumn("kid", "text", (c) => c.notNull())
          .addColumn("alg", "text", (c) => c.notNull())
          .addColumn("backend", "text", (c) => c.notNull())
          .addColumn("backend_ref", "text", (c) => c.notNull())
          .addColumn("public_jwk", "text", (c) => c.notNull())
          .addColumn("created_at", bigint, (c) => c.notNull())
          .addColumn("publish_at", bigint, (c) => c.notNull())
          .addColumn("activate_at", bigint, (c) => c.notNull())
          .addColumn("retire_at", bigint, (c) => c.notNull())
          .addColumn("unpublish_at", bigint, (c) => c.notNull())
          .addColumn("revoked_at", bigint)
          .addColumn("destroyed_at", bigint)
          .addUniqueConstraint("signing_keys_tenant_kid_unique", ["tenant_id", "kid"])
          .execute();
        await db.schema
          .createIndex("signing_keys_tenant_purpose_idx")
          .on("signing_keys")
          .columns(["tenant_id", "purpose", "activate_at"])
          .execute();
        await db.schema
          .createTable("signer_software_keys")
          .addColumn("ref", "text", (c) => c.primaryKey())
          .addColumn("label", "text", (c) => c.notNull())
          .addColumn("sealed", "text", (c) => c.notNull())
          .addColumn("created_at", bigint, (c) => c.notNull())
          .execute();
        await db.schema
          .createTable("leases")
          .addColumn("name", "text", (c) => c.primaryKey())
          .addColumn("holder", "text", (c) => c.notNull())
          .addColumn("expires_at", bigint, (c) => c.notNull())
          .execute();
        await db.schema
          .createTable("settings")
          .addColumn("name", "text", (c) => c.primaryKey())
          .addColumn("value", "text", (c) => c.notNull())
          .execute();
      },
    },
  };
}

export class StaticMigrationProvider implements MigrationProvider {
  readonly #migrations: Record<string, Migration>;
  constructor(migrations: Record<string, Migration>) {
    this.#migrations = migrations;
  }
  async getMigrations(): Promise<Record<string, Migration>> {
    return this.#migrations;
  }
}
