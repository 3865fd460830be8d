// Table types of the store. Timestamps are milliseconds since the epoch (int8 in PostgreSQL,
// INTEGER in SQLite) so both engines compare and order them the same way.
import type { Generated } from "kysely";

export interface TenantsTable {
  id: string;
  display_name: string;
  created_at: number;
  /** JWS algorithm for token keys; null: the deployment default. */
  token_signing_alg: string | null;
}

/**
 * A signing key's public half and schedule. Its state at any moment follows from the timestamps
 * (see services/signer/schedule.ts), so replicas agree without talking to each other and a key is
 * published (publish_at) strictly before it signs (activate_at).
 */
export interface SigningKeysTable {
  tenant_id: string;
  id: string;
  purpose: string;
  kid: string;
  alg: string;
  backend: string;
  /** The backend's reference to the private key (PKCS#11 CKA_ID, software keystore id). */
  backend_ref: string;
  public_jwk: string;
  created_at: number;
  publish_at: number;
  activate_at: number;
  retire_at: number;
  unpublish_at: number;
  revoked_at: number | null;
  destroyed_at: number | null;
}

/** The software keystore: private keys sealed with the key-encryption key (AES-256-GCM). */
export interface SignerSoftwareKeysTable {
  ref: string;
  label: string;
  sealed: string;
  created_at: number;
}

/** Leases electing one replica for a job (key rotation). */
export interface LeasesTable {
  name: string;
  holder: string;
  expires_at: number;
}

/** Deployment-wide settings (e.g. this installation's id, which labels its HSM objects). */
export interface SettingsTable {
  name: string;
  value: string;
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
  signing_keys: SigningKeysTable;
  signer_software_keys: SignerSoftwareKeysTable;
  leases: LeasesTable;
  settings: SettingsTable;
}

/** Tables whose rows belong to one tenant: every query on them must be scoped (see tenancy.ts). */
export const TENANT_TABLES: ReadonlySet<string> = new Set<keyof Database>(["audit_outbox", "signing_keys"]);
