// Table types of the store. Timestamps are milliseconds since the epoch (int8 in PostgreSQL,
// INTEGER in SQLite) so both engines compare and order them the same way.
import type { Generated } from "kysely";
import type {
  FederatedIdentitiesTable,
  FederatedSessionsTable,
  FederationLoginsTable,
  IdentityProvidersTable,
} from "./migrations/0016_identity_providers.ts";
import type { FederationTrustsTable } from "./migrations/0017_agent_federation.ts";
import type { ApiKeysTable } from "./migrations/0018_api_keys.ts";
import type { TenantTrustCrossingsTable, TenantTrustsTable } from "./migrations/0019_tenant_trusts.ts";

export interface TenantsTable {
  id: string;
  display_name: string;
  created_at: number;
  /** JWS algorithm for token keys; null: the deployment default. */
  token_signing_alg: string | null;
  /** JSON array of resource indicators (RFC 8707) a client without its own `resources` may target; null: none. */
  default_resources?: string | null;
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
  /** JSON OutboxParties (subject, client, actors); null when the event names none. */
  parties?: string | null;
  created_at: number;
}

/**
 * The audit log: one append-only Merkle log per tenant (RFC 9162). `seq` is gapless from 0, assigned
 * by the single writer; `body` is the entry in canonical JSON (RFC 8785), `leaf_hash` its RFC 9162
 * leaf hash (hex). The query columns repeat what the body says, for indexed search.
 */
export interface AuditLogTable {
  tenant_id: string;
  seq: number;
  leaf_hash: string;
  body: string;
  type: string;
  subject: string | null;
  /** Every actor reference, as " ref1 ref2 " for a LIKE on " ref ". */
  actors: string;
  client_id: string | null;
  mandate_id: string | null;
  /** The event's id (AuditEvent.request_id): a decision's id for decision logs. Null before migration 0007. */
  request_id: string | null;
  event_time: number;
  record_time: number;
}

/** Hashes of complete, aligned subtrees (level 0 = leaves), so proofs need O(log n) reads. */
export interface AuditNodesTable {
  tenant_id: string;
  level: number;
  idx: number;
  hash: string;
}

/** Each tenant log's head: the writer locks it, so appends are serialised and gapless. */
export interface AuditHeadsTable {
  tenant_id: string;
  size: number;
  root_hash: string;
  updated_at: number;
}

/** Signed checkpoints (C2SP signed note over a tlog-checkpoint body). */
export interface AuditCheckpointsTable {
  tenant_id: string;
  tree_size: number;
  root_hash: string;
  note: string;
  kid: string;
  created_at: number;
}

/**
 * Salts of personal identifiers: entries carry SHA-256(salt || id), never the id. Deleting a row
 * erases the person from the log (crypto-shredding) without touching a hashed entry.
 */
export interface AuditSubjectsTable {
  tenant_id: string;
  value: string;
  salt: string;
}

/** OAuth clients of a tenant: RFC 7591 metadata as JSON, the secret only as a hash. */
export interface OAuthClientsTable {
  tenant_id: string;
  client_id: string;
  metadata: string;
  secret_hash: string | null;
  created_at: number;
  /** SHA-256 of the RFC 7592 registration access token; null for clients registered by an admin. */
  registration_token_hash?: string | null;
  /** "application" or "agent" (migration 0010; default "application"). */
  kind?: string;
  /** Who answers for the client (an agent's owner): a human's `sub` or an org id. */
  owner?: string | null;
  /** What the client is and does, shown to humans. */
  description?: string | null;
  /** RFC 7638 thumbprint of the DPoP key every token of the client must be bound to. */
  dpop_jkt?: string | null;
}

/** What a subject authorised for a client: the family its refresh tokens and code-flow access tokens belong to. */
export interface OAuthGrantsTable {
  tenant_id: string;
  id: string;
  client_id: string;
  subject: string;
  scope: string;
  /** JSON array of resource indicators (RFC 8707). */
  resources: string;
  dpop_jkt: string | null;
  auth_time: number | null;
  acr: string | null;
  /** JSON array. */
  amr: string | null;
  /** JSON object: identity claims for the ID token and userinfo, as of the login. */
  claims: string | null;
  created_at: number;
  /** Absolute end of the refresh-token family. */
  expires_at: number;
  revoked_at: number | null;
  /** The mandate a token exchange's family lives under (migration 0011); null for other grants. */
  mandate_id?: string | null;
  /** JSON array: the RFC 9396 authorization details of the family's tokens (migration 0011). */
  authorization_details?: string | null;
}

/** Authorization codes, by SHA-256 hash; `request` is the approved authorization request (JSON). */
export interface OAuthCodesTable {
  tenant_id: string;
  code_hash: string;
  client_id: string;
  request: string;
  created_at: number;
  expires_at: number;
  consumed_at: number | null;
  /** The grant the code was redeemed into, revoked if the code is replayed (RFC 6749 §4.1.2). */
  grant_id: string | null;
}

export interface OAuthRefreshTokensTable {
  tenant_id: string;
  token_hash: string;
  grant_id: string;
  created_at: number;
  expires_at: number;
  /** Set when rotated; presenting a spent token revokes the family. */
  spent_at: number | null;
}

export interface OAuthAccessTokensTable {
  tenant_id: string;
  jti: string;
  grant_id: string;
  expires_at: number;
}

export interface OAuthRevokedTokensTable {
  tenant_id: string;
  jti: string;
  expires_at: number;
}

/** PAR request_uris ("par") and authorization requests awaiting login or consent ("interaction"). */
export interface OAuthPendingRequestsTable {
  tenant_id: string;
  id_hash: string;
  kind: "par" | "interaction";
  client_id: string;
  request: string;
  expires_at: number;
}

/** Browser login sessions at the authorization server (the cookie holds the id; we keep its hash). */
export interface OAuthSessionsTable {
  tenant_id: string;
  id_hash: string;
  subject: string;
  auth_time: number;
  acr: string;
  amr: string;
  expires_at: number;
}

/** Remembered consent per client and user: the scopes and resources approved so far. */
export interface OAuthConsentsTable {
  tenant_id: string;
  client_id: string;
  subject: string;
  scope: string;
  resources: string;
  updated_at: number;
}

/** A pushed OPA bundle (immutable). */
export interface PolicyBundlesTable {
  tenant_id: string;
  revision: string;
  sha256: string;
  /** The bundle bytes, base64. */
  bundle: string;
  signed_by: string | null;
  /** JSON array of the Wasm module's entrypoints. */
  entrypoints: string;
  size_bytes: number;
  created_at: number;
}

/** Activation history of a tenant's policy; the last row is active. */
export interface PolicyActivationsTable {
  tenant_id: string;
  seq: number;
  revision: string;
  activated_at: number;
}

/** A tenant's policy state: the active revision and a version that grows on every change. */
export interface PolicyStateTable {
  tenant_id: string;
  active_revision: string | null;
  version: number;
  updated_at: number;
}

/** Dynamic data documents merged into the bundle's data. */
export interface PolicyDataTable {
  tenant_id: string;
  path: string;
  /** JSON text. */
  value: string;
  updated_at: number;
}

/** Bundle-signing settings of a tenant. */
export interface PolicySigningTable {
  tenant_id: string;
  /** JWK Set JSON. */
  jwks: string;
  require_signatures: number;
  updated_at: number;
}

/**
 * A mandate: a principal's grant of bounded authority to an agent (services/issue/mandates/).
 * Immutable once granted — only `state` and the revocation columns change (a trigger refuses any
 * other update); an amendment is a new mandate. JSON columns hold the bounds.
 */
export interface MandatesTable {
  tenant_id: string;
  id: string;
  version: number;
  /** The mandate this one was sub-delegated from; null for a principal's own grant. */
  parent_id: string | null;
  /** Hops from the root mandate (0 for a root). */
  depth: number;
  /** The human granting authority (their `sub`). */
  principal: string;
  /** The agent's client id. */
  agent_id: string;
  /** JSON array of scopes. */
  scopes: string;
  /** JSON array of resource indicators (RFC 8707). */
  resources: string;
  /** JSON array of RFC 9396 authorization details. */
  authorization_details: string;
  /** JSON array of {meter, maximum, period_ms} (period_ms 0: the whole life). */
  usage_limits: string;
  /** JSON array of client ids that may receive a sub-mandate; empty: any. */
  may_act: string;
  not_before: number;
  expires_at: number;
  max_token_ttl_ms: number | null;
  max_delegation_depth: number;
  /** "requested" | "active" | "denied" | "revoked"; expiry and exhaustion are computed on read. */
  state: string;
  created_at: number;
  revoked_at: number | null;
  /** JSON object naming who revoked it (an administrator's `by`, or the parent mandate). */
  revoked_by: string | null;
  revoke_reason: string | null;
  /** JSON object: who approved, when, how (administrative, interactive, asynchronous), the text shown. */
  consent: string;
  /** The version this amendment supersedes (migration 0014); null for a first version. */
  supersedes?: string | null;
  /** 1: revoked when the principal's account ends (migration 0014). */
  revoke_on_account_end?: number;
  /** The login session whose end revokes it (migration 0014); null: sessions do not matter. */
  session_id?: string | null;
  /** The signed consent receipt, a compact JWS (migration 0014); null before 0014. */
  receipt?: string | null;
}

/** A mandate's counter of one meter in one period (period_ms 0, period_start 0: the whole life). */
export interface MandateUsageTable {
  tenant_id: string;
  mandate_id: string;
  meter: string;
  period_ms: number;
  period_start: number;
  used: number;
}

/** Consumptions by idempotency key: a retry returns `result` (JSON) without charging again. */
export interface MandateConsumptionsTable {
  tenant_id: string;
  mandate_id: string;
  idempotency_key: string;
  meter: string;
  amount: number;
  at: number;
  result: string;
}

/**
 * An agent's backchannel request for a mandate (migration 0013; OpenID CIBA Core, poll mode), addressed
 * to one human: requested → approved (mandate_id set) → issued (the tokens polled, once), or denied.
 */
export interface MandateRequestsTable {
  tenant_id: string;
  /** The request's public id (the pending page's forms name it); never the auth_req_id. */
  id: string;
  /** SHA-256 of the auth_req_id (CIBA Core §7.3), the agent's bearer handle. */
  auth_req_id_hash: string;
  /** The agent's client id. */
  client_id: string;
  /** The human asked (their `sub`, resolved from login_hint). */
  principal: string;
  /** JSON MandateAsk: the bounds asked, checked (services/issue/mandates/oauth-request.ts). */
  ask: string;
  /** CIBA Core §7.1 binding_message, shown on the pending page. */
  binding_message: string | null;
  /** "requested" | "approved" | "denied" | "issued". */
  state: string;
  /** Seconds the agent waits between polls (CIBA Core §7.3), grown by slow_down (§11). */
  interval_s: number;
  last_poll_at: number | null;
  created_at: number;
  /** When the auth_req_id expires (requested_expiry, §7.1). */
  expires_at: number;
  /** The mandate granted on approval. */
  mandate_id: string | null;
  /** The `sub` of the human who approved or denied. */
  decided_by: string | null;
  decided_at: number | null;
  /** JSON: how the approver had signed in (auth_time, acr, amr, released claims), for the tokens. */
  approval: string | null;
}

/** A tenant's last revocation log sequence (migration 0012); its row is the sequence's lock. */
export interface RevocationHeadsTable {
  tenant_id: string;
  last_sequence: number;
}

/** What was revoked, per tenant in sequence order (migration 0012, services/shared/oauth/revocation-log.ts). */
export interface RevocationLogTable {
  tenant_id: string;
  sequence: number;
  /** "mandate" (a mandate id: every token derived from it) or "jti" (one access token). */
  kind: string;
  id: string;
  revoke_time: number;
  /** When the entry stops mattering: the mandate's expiry or the token's exp; pruned after. */
  expire_time: number;
}

/** A certificate of a tenant's agent CA, one per CA key (migration 0015, services/signer/ca/). */
export interface AgentCaCertificatesTable {
  tenant_id: string;
  /** signing_keys.id of the CA key the certificate is for. */
  key_id: string;
  role: "root" | "intermediate";
  kid: string;
  /** Hex, upper case, no separators. */
  serial: string;
  /** signing_keys.id of the key that signed it (itself for a root). */
  issuer_key_id: string;
  /** The certificate, DER in base64. */
  der: string;
  not_before: number;
  not_after: number;
  created_at: number;
}

/** An agent certificate (X.509-SVID) issued by a tenant's agent CA (migration 0015, services/issue/agents/). */
export interface AgentCertificatesTable {
  tenant_id: string;
  /** Hex, upper case, no separators. */
  serial: string;
  client_id: string;
  spiffe_id: string;
  /** RFC 8705 §3.1 thumbprint: base64url SHA-256 of the DER. */
  x5t_s256: string;
  issuer_kid: string;
  not_before: number;
  not_after: number;
  issued_at: number;
  /** enrollment_token, attestation:<attestor name>, renewal. */
  proof: string;
  renewed_from: string | null;
  revoked_at: number | null;
  revocation_reason: string | null;
}

/** A one-time enrollment token for an agent (migration 0015); only its SHA-256 is kept. */
export interface AgentEnrollmentTokensTable {
  tenant_id: string;
  id: string;
  token_hash: string;
  client_id: string;
  created_by: string;
  created_at: number;
  expires_at: number;
  used_at: number | null;
  used_serial: string | null;
}

/** A workload platform whose signed JWTs attest agents (migration 0015). */
export interface AgentAttestorsTable {
  tenant_id: string;
  name: string;
  issuer: string;
  audience: string;
  jwks_uri: string | null;
  /** A JWK Set (JSON), when not fetched from jwks_uri. */
  jwks: string | null;
  created_at: number;
}

/** Which workload subject (an attested JWT's `sub`) is which agent (migration 0015). */
export interface AgentWorkloadBindingsTable {
  tenant_id: string;
  attestor: string;
  subject: string;
  client_id: string;
  created_at: number;
}

export interface Database {
  tenants: TenantsTable;
  audit_outbox: AuditOutboxTable;
  signing_keys: SigningKeysTable;
  signer_software_keys: SignerSoftwareKeysTable;
  leases: LeasesTable;
  settings: SettingsTable;
  audit_log: AuditLogTable;
  audit_nodes: AuditNodesTable;
  audit_heads: AuditHeadsTable;
  audit_checkpoints: AuditCheckpointsTable;
  audit_subjects: AuditSubjectsTable;
  oauth_clients: OAuthClientsTable;
  oauth_grants: OAuthGrantsTable;
  oauth_codes: OAuthCodesTable;
  oauth_refresh_tokens: OAuthRefreshTokensTable;
  oauth_access_tokens: OAuthAccessTokensTable;
  oauth_revoked_tokens: OAuthRevokedTokensTable;
  oauth_pending_requests: OAuthPendingRequestsTable;
  oauth_sessions: OAuthSessionsTable;
  oauth_consents: OAuthConsentsTable;
  policy_bundles: PolicyBundlesTable;
  policy_activations: PolicyActivationsTable;
  policy_state: PolicyStateTable;
  policy_data: PolicyDataTable;
  policy_signing: PolicySigningTable;
  mandates: MandatesTable;
  mandate_usage: MandateUsageTable;
  mandate_consumptions: MandateConsumptionsTable;
  mandate_requests: MandateRequestsTable;
  revocation_heads: RevocationHeadsTable;
  revocation_log: RevocationLogTable;
  agent_ca_certificates: AgentCaCertificatesTable;
  agent_certificates: AgentCertificatesTable;
  agent_enrollment_tokens: AgentEnrollmentTokensTable;
  agent_attestors: AgentAttestorsTable;
  agent_workload_bindings: AgentWorkloadBindingsTable;
  identity_providers: IdentityProvidersTable;
  federated_identities: FederatedIdentitiesTable;
  federation_logins: FederationLoginsTable;
  federated_sessions: FederatedSessionsTable;
  federation_trusts: FederationTrustsTable;
  api_keys: ApiKeysTable;
  tenant_trusts: TenantTrustsTable;
  tenant_trust_crossings: TenantTrustCrossingsTable;
}

/** Tables whose rows belong to one tenant: every query on them must be scoped (see tenancy.ts). */
export const TENANT_TABLES: ReadonlySet<string> = new Set<keyof Database>([
  "audit_outbox",
  "signing_keys",
  "audit_log",
  "audit_nodes",
  "audit_heads",
  "audit_checkpoints",
  "audit_subjects",
  "oauth_clients",
  "oauth_grants",
  "oauth_codes",
  "oauth_refresh_tokens",
  "oauth_access_tokens",
  "oauth_revoked_tokens",
  "oauth_pending_requests",
  "oauth_sessions",
  "oauth_consents",
  "policy_bundles",
  "policy_activations",
  "policy_state",
  "policy_data",
  "policy_signing",
  "mandates",
  "mandate_usage",
  "mandate_consumptions",
  "mandate_requests",
  "revocation_heads",
  "revocation_log",
  "agent_ca_certificates",
  "agent_certificates",
  "agent_enrollment_tokens",
  "agent_attestors",
  "agent_workload_bindings",
  "identity_providers",
  "federated_identities",
  "federation_logins",
  "federated_sessions",
  "federation_trusts",
  "api_keys",
  "tenant_trusts",
  "tenant_trust_crossings",
]);
