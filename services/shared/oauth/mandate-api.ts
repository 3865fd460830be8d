// Mandate's own API as an OAuth protected resource: the scopes its RPCs ask for and the platform
// tenant whose issuer mints platform-admin tokens. Callers get tokens from a tenant's token endpoint
// with `resource` = the API audience (config `api.audience`) and present them on every RPC.

/** The reserved tenant of the deployment's operators: its issuer mints platform-admin tokens. */
export const PLATFORM_TENANT = "platform";

export const API_SCOPES = {
  /** Platform administrator: every tenant, every ADMIN method (only from the platform issuer). */
  admin: "mandate:admin",
  /** Administrator of the token's own tenant. */
  tenantAdmin: "mandate:tenant-admin",
  /** Authorize.Check / BatchCheck. */
  authorize: "mandate:authorize",
  /** Introspect.Introspect, and RFC 7662 introspection of other clients' tokens. */
  introspect: "mandate:introspect",
  /** Audit reads and proofs. */
  auditRead: "mandate:audit.read",
} as const;

/** Scopes under this prefix are Mandate's own: only an administrator may register a client for them. */
export const RESERVED_SCOPE_PREFIX = "mandate:";
