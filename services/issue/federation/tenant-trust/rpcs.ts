// Issue's cross-organization trust RPCs (issue 18 item 3): CreateTenantTrust, ListTenantTrusts,
// RevokeTenantTrust. Access (EXPOSURE_ADMIN, mandate:tenant-admin of the trusting tenant A),
// validation and the tenant's existence are the RPC layer's; each change is audited in its own
// transaction, `by` the caller (trusts.ts).
import { create, type JsonObject } from "@bufbuild/protobuf";
import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  type Issue,
  type TenantTrust as TenantTrustMessage,
  TenantTrustSchema,
} from "../../../../gen/mandate/v1/issue_pb.js";
import { invalidArgument, notFound } from "../../../shared/errors.ts";
import { auditedCaller, callerOf } from "../../../shared/rpc/access.ts";
import type { AuthorizationDetail } from "../../mandates/narrowing.ts";
import { type SubjectKind, type TenantTrust, TenantTrustRefused, type TenantTrusts } from "./trusts.ts";

type TenantTrustRpcs = Pick<ServiceImpl<typeof Issue>, "createTenantTrust" | "listTenantTrusts" | "revokeTenantTrust">;

export function tenantTrustRpcs(trusts: TenantTrusts): TenantTrustRpcs {
  const actor = (context: HandlerContext) => auditedCaller(callerOf(context));
  return {
    async createTenantTrust(request, context) {
      const input = {
        foreignTenant: request.foreignTenant,
        clientId: request.clientId,
        // protovalidate admitted only "agent" and "human".
        subjectKinds: request.subjectKinds as SubjectKind[],
        scopes: request.scopes,
        resources: request.resources,
        authorizationDetails: request.authorizationDetails as unknown as AuthorizationDetail[],
        expiresAt: request.expireTime ? timestampMs(request.expireTime) : 0,
      };
      const trust = await refusalsAnswered(trusts.create(request.tenant, input, actor(context)));
      return { trust: toProto(trust) };
    },

    async listTenantTrusts(request) {
      return { trusts: (await trusts.list(request.tenant)).map(toProto) };
    },

    async revokeTenantTrust(request, context) {
      const revoked = await refusalsAnswered(trusts.revoke(request.tenant, request.id, actor(context)));
      return { trust: toProto(revoked.trust), revokedTokens: revoked.revokedTokens };
    },
  };
}

/** The store's refusals as gRPC statuses (NOT_FOUND naming the missing resource, INVALID_ARGUMENT the field). */
async function refusalsAnswered<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (error) {
    if (!(error instanceof TenantTrustRefused)) throw error;
    if (error.kind === "not_found") {
      const type = { foreign_tenant: "tenant", client_id: "client" }[error.field] ?? "tenant trust";
      throw notFound(type, error.field, error.message);
    }
    throw invalidArgument([{ field: error.field, description: error.message }]);
  }
}

function toProto(trust: TenantTrust): TenantTrustMessage {
  return create(TenantTrustSchema, {
    id: trust.id,
    foreignTenant: trust.foreignTenant,
    clientId: trust.clientId,
    subjectKinds: trust.subjectKinds,
    scopes: trust.scopes,
    resources: trust.resources,
    authorizationDetails: trust.authorizationDetails as unknown as JsonObject[],
    createdBy: trust.createdBy,
    createTime: timestampFromMs(trust.createdAt),
    expireTime: timestampFromMs(trust.expiresAt),
    ...(trust.revokedAt === null ? {} : { revokeTime: timestampFromMs(trust.revokedAt) }),
  });
}
