// The policy admin RPCs of mandate.v1.Authorize (PushPolicy, ListPolicyRevisions, ActivatePolicy,
// RollbackPolicy, SetPolicyData, GetPolicyData, SetPolicySigning) over a PolicyRegistry: spread into
// the service's implementation, `defineService(Authorize, { ...policyAdminRpcs(registry), ... })`.
// Access (EXPOSURE_ADMIN, mandate:tenant-admin) and request validation are the RPC layer's; who made
// the change is the RPC's caller, recorded in the audit event (`by`).
import { fromJson, type JsonValue, toJson } from "@bufbuild/protobuf";
import { timestampFromMs, type Value, ValueSchema } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type { Authorize } from "../../../gen/mandate/v1/authorize_pb.js";
import { invalidArgument } from "../../shared/errors.ts";
import { auditedCaller, callerOf } from "../../shared/rpc/access.ts";
import type { PolicyRegistry, RevisionInfo } from "./registry.ts";

export type PolicyAdminRpcs = Pick<
  ServiceImpl<typeof Authorize>,
  | "pushPolicy"
  | "listPolicyRevisions"
  | "activatePolicy"
  | "rollbackPolicy"
  | "setPolicyData"
  | "getPolicyData"
  | "setPolicySigning"
>;

function actor(context: HandlerContext) {
  return auditedCaller(callerOf(context));
}

/** A stored revision as the API shows it. */
export function revisionMessage(info: RevisionInfo) {
  return {
    revision: info.revision,
    sha256: info.sha256,
    signedBy: info.signedBy ?? "",
    active: info.active,
    createTime: timestampFromMs(info.createdAt),
    ...(info.activatedAt !== null ? { activateTime: timestampFromMs(info.activatedAt) } : {}),
    entrypoints: info.entrypoints,
    sizeBytes: BigInt(info.sizeBytes),
  };
}

export function policyAdminRpcs(registry: PolicyRegistry): PolicyAdminRpcs {
  return {
    async pushPolicy(request, context) {
      const info = await registry.push(request.tenant, request.bundle, { activate: request.activate }, actor(context));
      return { revision: revisionMessage(info) };
    },

    async listPolicyRevisions(request) {
      const { revisions, usesDefault } = await registry.list(request.tenant);
      return { revisions: revisions.map(revisionMessage), usesDefault };
    },

    async activatePolicy(request, context) {
      const info = await registry.activate(request.tenant, request.revision, actor(context));
      return { revision: revisionMessage(info) };
    },

    async rollbackPolicy(request, context) {
      return { revision: revisionMessage(await registry.rollback(request.tenant, actor(context))) };
    },

    async setPolicyData(request, context) {
      // An unset value removes the document; a JSON null is a document.
      const value = request.value === undefined ? undefined : jsonValue(request.value);
      await registry.setData(request.tenant, request.path, value, actor(context));
      return {};
    },

    async getPolicyData(request) {
      const documents = await registry.getData(request.tenant);
      return {
        documents: documents.map((d) => ({
          path: d.path,
          value: fromJson(ValueSchema, d.value as JsonValue),
          updateTime: timestampFromMs(d.updatedAt),
        })),
      };
    },

    async setPolicySigning(request, context) {
      const settings = { jwks: request.jwks, requireSignatures: request.requireSignatures };
      await registry.setSigning(request.tenant, settings, actor(context));
      return {};
    },
  };
}

/** The document as JSON; a google.protobuf.Value with no kind set (at any depth) is not JSON. */
function jsonValue(value: Value): JsonValue {
  try {
    return toJson(ValueSchema, value);
  } catch {
    throw invalidArgument([
      {
        field: "value",
        description: "a value (or one inside it) has no kind: set one, or omit value to remove the document",
      },
    ]);
  }
}
