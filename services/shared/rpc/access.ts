// Who may call an RPC, decided in one place for every transport. Each method's rule comes from its
// `(mandate.v1.access)` option in proto/ (see access.proto); `wrapService` asks an AccessGate to
// admit every call before the request is validated or the store is read:
//   no credentials, a bad token or proof     -> UNAUTHENTICATED with a WWW-Authenticate challenge
//   credentials without the right            -> PERMISSION_DENIED (scope, tenant, internal, platform)
// The network gate (CallerAuthentication) authenticates callers by Mandate's own access tokens
// (Bearer, or DPoP-bound per RFC 9449) or, for INTERNAL methods, by the calling service's mTLS
// identity; the in-process gate admits Mandate's own code calling through the in-memory transport.
import { create, type DescMethod, getOption, hasOption } from "@bufbuild/protobuf";
import { DurationSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createContextKey, type HandlerContext } from "@connectrpc/connect";
import { decodeJwt } from "jose";
import { ErrorInfoSchema, RetryInfoSchema } from "../../../gen/google/rpc/error_details_pb.js";
import { access as accessOption, Exposure } from "../../../gen/mandate/v1/access_pb.js";
import { ERROR_DOMAIN } from "../errors.ts";
import type { PresentedCertificate } from "../x509/types.ts";

export interface AccessRule {
  exposure: "public" | "admin" | "internal";
  scopes: readonly string[];
  services: readonly string[];
  anonymous: boolean;
  platform: boolean;
  clientAuthentication: boolean;
  /** Reads only (idempotency_level NO_SIDE_EFFECTS): admin reads are audited after the fact. */
  readOnly: boolean;
}

/** Services of the standards we serve whose protocol is meant for anyone who can connect (load balancers). */
const STANDARD_ANONYMOUS = new Set(["grpc.health.v1.Health"]);

const EXPOSURES: Partial<Record<Exposure, AccessRule["exposure"]>> = {
  [Exposure.PUBLIC]: "public",
  [Exposure.ADMIN]: "admin",
  [Exposure.INTERNAL]: "internal",
};

/**
 * The access rule of a method, or undefined when it declares none (then it is unreachable: a
 * service cannot be wrapped with such a method, so a new RPC cannot ship open).
 */
export function accessRuleOf(method: DescMethod): AccessRule | undefined {
  const readOnly = method.idempotency === 1; // MethodOptions.IdempotencyLevel.NO_SIDE_EFFECTS
  if (STANDARD_ANONYMOUS.has(method.parent.typeName)) {
    return {
      exposure: "public",
      scopes: [],
      services: [],
      anonymous: true,
      platform: false,
      clientAuthentication: false,
      readOnly,
    };
  }
  if (!hasOption(method, accessOption)) return undefined;
  const option = getOption(method, accessOption);
  const exposure = EXPOSURES[option.exposure];
  if (!exposure) return undefined;
  return {
    exposure,
    scopes: option.scopes,
    services: option.services,
    anonymous: option.anonymous,
    platform: option.platform,
    clientAuthentication: option.clientAuthentication,
    readOnly,
  };
}

/** Who is calling, as the gate established it; handlers read it with `callerOf(context)`. */
export type Caller =
  | { kind: "anonymous" }
  /** Mandate's own code: another service by its mTLS identity, or this process ("in-process"). */
  | { kind: "service"; service: string }
  | {
      kind: "token";
      /** Tenant whose issuer minted the token. */
      tenant: string;
      /** `mandate:admin` from the platform issuer: may act on every tenant. */
      platformAdmin: boolean;
      clientId: string;
      subject: string;
      scopes: ReadonlySet<string>;
      tokenId: string;
      /** Bound to a DPoP key whose proof came with the call. */
      dpopJkt: string | undefined;
    }
  /** An OAuth client authenticated by the credentials in the request (RFC 6749 §2.3). */
  | { kind: "client"; tenant: string; clientId: string };

/** How the call arrived; set by the transport, never by the caller. */
export interface Peer {
  transport: "grpc" | "edge" | "memory";
  /** The client's IP address (the socket's, or the edge's report of it for forwarded calls). */
  address: string | undefined;
  /** The Mandate service a verified mTLS client certificate names (spiffe://<td>/mandate/<service>). */
  service: string | undefined;
  /** Forwarded by the edge on behalf of an outside caller: the peer's own identity does not count. */
  forwarded: boolean;
  /**
   * The client certificate the caller presented (an agent's, RFC 8705): from the TLS handshake on
   * native gRPC or the edge's mTLS listener, or from a configured proxy's header. Not yet verified
   * against any tenant's CA: whoever uses it verifies it.
   */
  clientCertificate?: PresentedCertificate | undefined;
}

export const PEER = createContextKey<Peer | undefined>(undefined, { description: "mandate.peer" });
export const CALLER = createContextKey<Caller>({ kind: "anonymous" }, { description: "mandate.caller" });

export function callerOf(context: HandlerContext): Caller {
  return context.values.get(CALLER);
}

/** Header the edge sets on calls it forwards: the outside caller's address (trusted from Mandate peers only). */
export const FORWARDED_FOR_HEADER = "x-mandate-forwarded-for";

/**
 * Header the edge sets on calls it forwards for a caller that presented a client certificate (RFC
 * 8705): base64 DER of the leaf, then of each certificate the caller sent with it, comma-separated.
 * Believed from a Mandate service's mTLS identity only (the edge, or a process hosting it), as
 * FORWARDED_FOR_HEADER is.
 */
export const FORWARDED_CLIENT_CERT_HEADER = "x-mandate-forwarded-client-cert";

/**
 * Authenticates an OAuth client from the request's `client` field (methods with client_authentication),
 * or throws: `rpcUrl` is the method's URL (a client assertion's audience), `address` the caller's.
 */
export type ClientAuthenticatorHook = (
  tenant: string,
  request: unknown,
  /** `clientCertificate`: the caller's (Peer.clientCertificate), for RFC 8705 client authentication. */
  call: { rpcUrl: string; address: string | undefined; clientCertificate?: PresentedCertificate | undefined },
) => Promise<{ clientId: string }>;

export interface AdmitArgs {
  method: DescMethod;
  rule: AccessRule;
  request: unknown;
  context: HandlerContext;
  /** The hosting service's client authenticator, for methods whose caller is an OAuth client. */
  authenticateClient: ClientAuthenticatorHook | undefined;
}

/** Decides whether a call may proceed; the only place access is checked. */
export interface AccessGate {
  admit(args: AdmitArgs): Promise<Caller>;
  /** After an ADMIN read succeeded: record who read what (mutations record their caller themselves). */
  audited?(args: AdmitArgs, caller: Caller): Promise<void>;
}

/** Mandate's own code in this process, through the in-memory transport: trusted like the process itself. */
export const IN_PROCESS: AccessGate = {
  async admit() {
    return { kind: "service", service: "in-process" };
  },
};

/** The tenant a request names (its `tenant` field), read before validation for the tenant check. */
export function requestTenant(request: unknown): string | undefined {
  const tenant = (request as { tenant?: unknown } | null)?.tenant;
  return typeof tenant === "string" ? tenant : undefined;
}

/** Audit parties and payload member naming the caller of an admin action. */
export function auditedCaller(caller: Caller): {
  by: Record<string, string>;
  parties: { subject?: { id: string; kind: string }; client?: { id: string; kind: string } };
} {
  switch (caller.kind) {
    case "token":
      return {
        by: { tenant: caller.tenant, client_id: caller.clientId, sub: caller.subject, jti: caller.tokenId },
        parties: {
          subject: {
            id: caller.subject,
            kind: caller.subject === caller.clientId ? "PARTY_KIND_SERVICE" : "PARTY_KIND_HUMAN",
          },
          client: { id: caller.clientId, kind: "PARTY_KIND_SERVICE" },
        },
      };
    case "client":
      return {
        by: { tenant: caller.tenant, client_id: caller.clientId },
        parties: { client: { id: caller.clientId, kind: "PARTY_KIND_SERVICE" } },
      };
    case "service":
      return { by: { service: caller.service }, parties: {} };
    default:
      return { by: { anonymous: "true" }, parties: {} };
  }
}

function errorInfo(reason: string, metadata: Record<string, string> = {}) {
  return { desc: ErrorInfoSchema, value: create(ErrorInfoSchema, { reason, domain: ERROR_DOMAIN, metadata }) };
}

/**
 * UNAUTHENTICATED with the RFC 6750 §3 / RFC 9449 §7.1 challenge a client can act on: as a
 * `www-authenticate` response header (trailer on native gRPC) and in the ErrorInfo metadata.
 */
export function unauthenticatedCaller(message: string, reason: string, challenge: string): ConnectError {
  return new ConnectError(message, Code.Unauthenticated, { "www-authenticate": challenge }, [
    errorInfo(reason, { www_authenticate: challenge }),
  ]);
}

/** PERMISSION_DENIED naming what is missing; `scopes` adds the RFC 6750 §3.1 insufficient_scope challenge. */
export function permissionDenied(message: string, reason: string, scopes?: readonly string[]): ConnectError {
  const challenge = scopes?.length
    ? `Bearer realm="mandate", error="insufficient_scope", scope="${scopes.join(" ")}"`
    : undefined;
  return new ConnectError(message, Code.PermissionDenied, challenge ? { "www-authenticate": challenge } : undefined, [
    errorInfo(reason, challenge ? { www_authenticate: challenge } : {}),
  ]);
}

/** RESOURCE_EXHAUSTED with RetryInfo and a `retry-after` header, for rate limits. */
export function rateLimited(message: string, retryAfterSeconds: number): ConnectError {
  return new ConnectError(message, Code.ResourceExhausted, { "retry-after": String(retryAfterSeconds) }, [
    {
      desc: RetryInfoSchema,
      value: create(RetryInfoSchema, {
        retryDelay: create(DurationSchema, { seconds: BigInt(retryAfterSeconds) }),
      }),
    },
    errorInfo("RATE_LIMITED", { retry_after_seconds: String(retryAfterSeconds) }),
  ]);
}

/** The tenant of a Mandate issuer URL `{publicBaseUrl}/t/{tenant}`, read without trusting the token. */
export function tenantOfIssuer(publicBaseUrl: string, token: string): string | undefined {
  let iss: unknown;
  try {
    iss = decodeJwt(token).iss;
  } catch {
    return undefined;
  }
  const prefix = `${publicBaseUrl}/t/`;
  if (typeof iss !== "string" || !iss.startsWith(prefix)) return undefined;
  const tenant = iss.slice(prefix.length);
  return /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(tenant) ? tenant : undefined;
}
