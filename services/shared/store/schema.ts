// Table types of the store. Timestamps are milliseconds since the epoch (int8 in PostgreSQL,
// INTEGER in SQLite) so both engines compare and order them the same way.
import type { Generated } from "kysely";

export interface TenantsTable {
  id: string;
  display_name: string;
  created_at: number;
}

/** Events awaiting the audit log, written in the same transaction as the action they record. */
export interface AuditOutboxTable {
  tenant_id: string;
  id: Generated<number>;
  event_id: string;
  type: string;
  payload: string;
  created_at: number;
}

export interface Database {
  tenants: TenantsTable;
  audit_outbox: AuditOutboxTable;
}

/** Tables whose rows belong to one tenant: every query on them must be scoped (see tenancy.ts). */
export const TENANT_TABLES: ReadonlySet<string> = new Set<keyof Database>(["audit_outbox"]);
