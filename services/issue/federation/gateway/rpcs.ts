// Issue's federation trust RPCs (issue 18): CreateFederationTrust, ListFederationTrusts,
// RevokeFederationTrust. Access (EXPOSURE_ADMIN, mandate:tenant-admin) and field validation are the
// RPC layer's; here, what protovalidate cannot see: the verification suits the kind, a jwks_uri passes
// the SSRF rules, certificates parse, mapped clients are agents of the tenant. Each change is
// audited in its own transaction, `by` the caller.
import { X509Certificate } from "node:crypto";
import { create, type JsonObject } from "@bufbuild/protobuf";
import { timestampDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  type CreateFederationTrustRequest,
  type FederationTrust as FederationTrustMessage,
  FederationTrustSchema,
  type Issue,
} from "../../../../gen/mandate/v1/issue_pb.js";
import type { Clock } from "../../../shared/clock.ts";
import type { Config } from "../../../shared/config.ts";
import { invalidArgument, notFound } from "../../../shared/errors.ts";
import { fetchTargetProblem } from "../../../shared/net/safe-fetch.ts";
import { auditedCaller, callerOf } from "../../../shared/rpc/access.ts";
import type { Store } from "../../../shared/store/store.ts";
import type { ClientRegistry } from "../../clients/registry.ts";
import {
  createTrust,
  type FederationTrust,
  listTrusts,
  type NewFederationTrust,
  revokeTrust,
  type TrustKind,
  type TrustVerification,
} from "./trusts.ts";

type TrustRpcs = Pick<
  ServiceImpl<typeof Issue>,
  "createFederationTrust" | "listFederationTrusts" | "revokeFederationTrust"
>;

export interface TrustRpcDeps {
  store: Store;
  clock: Clock;
  config: Config;
  clients: ClientRegistry;
}

export function federationTrustRpcs(deps: TrustRpcDeps): TrustRpcs {
  const actor = (context: HandlerContext) => auditedCaller(callerOf(context)).by;
  return {
    async createFederationTrust(request, context) {
      const trust = await validatedTrust(deps, request);
      const created = await createTrust(deps.store, request.tenant, trust, deps.clock.now(), actor(context));
      return { trust: toProto(created) };
    },

    async listFederationTrusts(request) {
      return { trusts: (await listTrusts(deps.store, request.tenant)).map(toProto) };
    },

    async revokeFederationTrust(request, context) {
      const revoked = await revokeTrust(deps.store, request.tenant, request.id, deps.clock.now(), actor(context));
      if (!revoked) throw notFound("federation trust", request.id, "the tenant has no such active trust");
      return {};
    },
  };
}

async function validatedTrust(deps: TrustRpcDeps, request: CreateFederationTrustRequest): Promise<NewFederationTrust> {
  const kind = request.kind as TrustKind;
  const verification = verificationOf(deps.config, kind, request);
  const clients = [...Object.values(request.mappingClients), ...(request.mappingClient ? [request.mappingClient] : [])];
  if (kind !== "id_jag" && clients.length === 0) {
    throw invalidArgument([{ field: "mapping_clients", description: "name at least one agent (or mapping_client)" }]);
  }
  for (const clientId of new Set(clients)) {
    const client = await deps.clients.get(request.tenant, clientId);
    if (client?.metadata.kind !== "agent") {
      throw invalidArgument([{ field: "mapping_clients", description: `${clientId} is not an agent of the tenant` }]);
    }
  }
  const expiresAt = request.expireTime ? timestampDate(request.expireTime).getTime() : undefined;
  if (expiresAt !== undefined && expiresAt <= deps.clock.now()) {
    throw invalidArgument([{ field: "expire_time", description: "must be in the future" }]);
  }
  return {
    kind,
    issuer: request.issuer,
    verification,
    mapping: {
      ...(request.mappingClaim ? { claim: request.mappingClaim } : {}),
      clients: { ...request.mappingClients },
      ...(request.mappingClient ? { client: request.mappingClient } : {}),
    },
    allowedScopes: request.allowedScopes,
    allowedResources: request.allowedResources,
    expiresAt,
  };
}

type Bad = (field: string, description: string) => Error;
const bad: Bad = (field, description) => invalidArgument([{ field, description }]);

function verificationOf(config: Config, kind: TrustKind, request: CreateFederationTrustRequest): TrustVerification {
  const base: TrustVerification = {
    ...(request.audience ? { audience: request.audience } : {}),
    ...(request.maxLifetimeSeconds ? { max_lifetime: request.maxLifetimeSeconds } : {}),
  };
  if (kind === "jwt" || kind === "id_jag") return { ...base, ...keysOf(config, kind, request) };
  return { ...base, certificates: certificatesOf(kind, request) };
}

/** jwt / id_jag: exactly one of jwks_uri (SSRF rules), discovery (an https issuer) or an inline JWK Set. */
function keysOf(config: Config, kind: TrustKind, request: CreateFederationTrustRequest): TrustVerification {
  if (request.certificates.length > 0)
    throw bad("certificates", `a ${kind} trust verifies with keys, not certificates`);
  const sources = [request.jwksUri !== "", request.discovery, request.jwks !== undefined].filter(Boolean).length;
  if (sources !== 1) throw bad("jwks_uri", "name exactly one of jwks_uri, discovery and jwks");
  const allowPrivate = config.oauth.allowPrivateMetadataHosts;
  if (request.jwksUri) {
    const problem = fetchTargetProblem(request.jwksUri, { allowPrivate });
    if (problem) throw bad("jwks_uri", problem);
    return { jwks_uri: request.jwksUri };
  }
  if (request.discovery) {
    const problem = fetchTargetProblem(request.issuer, { allowPrivate });
    if (problem) throw bad("issuer", `discovery needs an https issuer: ${problem}`);
    return { discovery: true };
  }
  return { jwks: publicJwks(request.jwks as JsonObject) };
}

/** saml / x509_ca: PEM certificates that parse. */
function certificatesOf(kind: TrustKind, request: CreateFederationTrustRequest): string[] {
  if (request.jwksUri || request.discovery || request.jwks)
    throw bad("jwks_uri", `a ${kind} trust verifies with certificates`);
  if (request.certificates.length === 0)
    throw bad("certificates", `a ${kind} trust needs at least one certificate (PEM)`);
  for (const pem of request.certificates) {
    try {
      new X509Certificate(pem);
    } catch {
      throw bad("certificates", "each certificate must be one PEM X.509 certificate");
    }
  }
  return request.certificates;
}

function publicJwks(jwks: JsonObject) {
  const keys = jwks.keys;
  if (!Array.isArray(keys) || keys.length === 0) throw bad("jwks", "must be a JWK Set with keys");
  for (const key of keys) {
    if (typeof key !== "object" || key === null || Array.isArray(key)) throw bad("jwks", "keys must be JWKs");
    // RFC 7517 §4 / RFC 7518 §6: private members (d, p, q, …, k) never belong in a trust.
    if (["d", "p", "q", "dp", "dq", "qi", "k"].some((member) => member in key)) {
      throw bad("jwks", "public keys only (no private or symmetric key members)");
    }
  }
  return { keys: keys as Record<string, unknown>[] };
}

function toProto(trust: FederationTrust): FederationTrustMessage {
  return create(FederationTrustSchema, {
    id: trust.id,
    kind: trust.kind,
    issuer: trust.issuer,
    verification: trust.verification as JsonObject,
    mapping: trust.mapping as JsonObject,
    allowedScopes: trust.allowedScopes,
    allowedResources: trust.allowedResources,
    createTime: timestampFromMs(trust.createdAt),
    ...(trust.expiresAt !== null ? { expireTime: timestampFromMs(trust.expiresAt) } : {}),
    ...(trust.revokedAt !== null ? { revokeTime: timestampFromMs(trust.revokedAt) } : {}),
  });
}
