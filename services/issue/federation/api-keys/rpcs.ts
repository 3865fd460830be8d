// Issue's API key RPCs (issue 18): CreateApiKey, ListApiKeys, RotateApiKey, RevokeApiKey. Access
// (EXPOSURE_ADMIN, mandate:tenant-admin), validation and the tenant's existence are the RPC layer's;
// each change is audited in its own transaction, `by` the caller. The key text appears only in the
// create and rotate responses.

import { create } from "@bufbuild/protobuf";
import { type Timestamp, timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { type ApiKey as ApiKeyMessage, ApiKeySchema, type Issue } from "../../../../gen/mandate/v1/issue_pb.js";
import { failedPrecondition, invalidArgument, notFound } from "../../../shared/errors.ts";
import { auditedCaller, callerOf } from "../../../shared/rpc/access.ts";
import { type ApiKey, ApiKeyChangeRefused, type ApiKeys } from "./api-keys.ts";
import { apiKeyPrefix } from "./key-format.ts";

type ApiKeyRpcs = Pick<ServiceImpl<typeof Issue>, "createApiKey" | "listApiKeys" | "rotateApiKey" | "revokeApiKey">;

export function apiKeyRpcs(keys: ApiKeys): ApiKeyRpcs {
  const actor = (context: HandlerContext) => auditedCaller(callerOf(context));
  return {
    async createApiKey(request, context) {
      const ttlMs = request.ttl ? Number(request.ttl.seconds) * 1000 + Math.floor(request.ttl.nanos / 1e6) : undefined;
      const input = { clientId: request.clientId, scopes: request.scopes, resources: request.resources, ttlMs };
      const created = await refusalsAnswered(keys.create(request.tenant, input, actor(context)), request.clientId);
      return { apiKey: toProto(created.apiKey), key: created.key };
    },

    async listApiKeys(request) {
      const all = await keys.list(request.tenant, request.clientId || undefined);
      return { apiKeys: all.map(toProto) };
    },

    async rotateApiKey(request, context) {
      const rotated = await refusalsAnswered(keys.rotate(request.tenant, request.id, actor(context)), request.id);
      return { apiKey: toProto(rotated.apiKey), key: rotated.key, previous: toProto(rotated.previous) };
    },

    async revokeApiKey(request, context) {
      const revoked = await refusalsAnswered(keys.revoke(request.tenant, request.id, actor(context)), request.id);
      return { apiKey: toProto(revoked) };
    },
  };
}

/** The store's refusals as gRPC statuses; `name` is what the request named (the agent or the key). */
async function refusalsAnswered<T>(work: Promise<T>, name: string): Promise<T> {
  try {
    return await work;
  } catch (error) {
    if (!(error instanceof ApiKeyChangeRefused)) throw error;
    if (error.kind === "not_found") {
      throw notFound(error.field === "client_id" ? "client" : "api key", name, error.message);
    }
    if (error.kind === "precondition") throw failedPrecondition(error.message, "API_KEY_ROTATED");
    throw invalidArgument([{ field: error.field, description: error.message }]);
  }
}

function toProto(key: ApiKey): ApiKeyMessage {
  const time = (ms: number | null): Timestamp | undefined => (ms === null ? undefined : timestampFromMs(ms));
  return create(ApiKeySchema, {
    id: key.id,
    clientId: key.clientId,
    prefix: apiKeyPrefix(key.id),
    scopes: key.scopes,
    resources: key.resources,
    createdBy: key.createdBy,
    createTime: timestampFromMs(key.createdAt),
    expireTime: timestampFromMs(key.expiresAt),
    revokeTime: time(key.revokedAt),
    lastUseTime: time(key.lastUsedAt),
    rotatedFrom: key.rotatedFrom ?? "",
    rotatedTo: key.rotatedTo ?? "",
  });
}
