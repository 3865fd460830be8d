// Migration 0020 (issue 18): indexes for the federation housekeeping sweep, which deletes expired
// logins and sessions across tenants by `expires_at`, and for FederatedSessions.knows(), which asks
// whether a subject has any upstream link in its tenant.
import type { Kysely } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.createIndex("federation_logins_expires_idx").on("federation_logins").column("expires_at").execute();
  await db.schema.createIndex("federated_sessions_expires_idx").on("federated_sessions").column("expires_at").execute();
  await db.schema
    .createIndex("federated_identities_subject_idx")
    .on("federated_identities")
    .columns(["tenant_id", "subject"])
    .execute();
}
