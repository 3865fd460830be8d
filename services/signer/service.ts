// mandate.v1.Signer over the KeyManager: the RPC shape of what co-located services call directly.

import type { JsonObject } from "@bufbuild/protobuf";
import { type Timestamp, timestampDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { KeyState, Signer } from "../../gen/mandate/v1/signer_pb.js";
import { invalidArgument } from "../shared/errors.ts";
import { auditedCaller, callerOf } from "../shared/rpc/access.ts";
import { defineService } from "../shared/rpc/service.ts";
import type { AgentCaClient, KeyPurposeName } from "../shared/signing.ts";
import { PURPOSE_TO_PROTO, purposeFromProto } from "./client.ts";
import type { KeyInfo, KeyManager } from "./keys.ts";
import type { KeyStateName } from "./schedule.ts";

const STATE_TO_PROTO: Record<KeyStateName, KeyState> = {
  pending: KeyState.PENDING,
  active: KeyState.ACTIVE,
  retired: KeyState.RETIRED,
  // Out of the JWKS, private key about to be destroyed: reported as retired with its unpublish time.
  expired: KeyState.RETIRED,
  revoked: KeyState.REVOKED,
  destroyed: KeyState.DESTROYED,
};

function requirePurpose(purpose: Parameters<typeof purposeFromProto>[0]): KeyPurposeName {
  const name = purposeFromProto(purpose);
  if (!name) throw invalidArgument([{ field: "purpose", description: "must be a defined key purpose" }]);
  return name;
}

function toKeyInfo(key: KeyInfo) {
  const ended = key.revokedAt ?? key.unpublishAt;
  return {
    kid: key.kid,
    purpose: PURPOSE_TO_PROTO[key.purpose],
    alg: key.alg,
    state: STATE_TO_PROTO[key.state],
    backend: key.backend,
    createTime: timestampFromMs(key.createdAt),
    publishTime: timestampFromMs(key.publishAt),
    activateTime: timestampFromMs(key.activateAt),
    retireTime: timestampFromMs(key.revokedAt ?? key.retireAt),
    unpublishTime: timestampFromMs(ended),
    publicJwk: { ...key.publicJwk, kid: key.kid, alg: key.alg, use: "sig" } as JsonObject,
  };
}

/** A required Timestamp field (protovalidate has checked it is set) in ms. */
function msOf(timestamp: Timestamp | undefined): number {
  return timestamp ? timestampDate(timestamp).getTime() : Number.NaN;
}

/** The Signer's RPCs: keys through the KeyManager, the agent CA's through the CA (ca/authority.ts). */
export function signerService(manager: KeyManager, agentCa: AgentCaClient) {
  return defineService(Signer, {
    async sign(request) {
      const result = await manager.sign(request.tenant, requirePurpose(request.purpose), request.payload);
      return result;
    },

    async signJwt(request) {
      let claims: unknown;
      try {
        claims = JSON.parse(Buffer.from(request.claims).toString("utf8"));
      } catch {
        throw invalidArgument([{ field: "claims", description: "must be a JSON object in UTF-8" }]);
      }
      if (claims === null || typeof claims !== "object" || Array.isArray(claims)) {
        throw invalidArgument([{ field: "claims", description: "must be a JSON object" }]);
      }
      return manager.signJwt(request.tenant, claims as Record<string, unknown>, request.typ || undefined);
    },

    async getJwks(request) {
      const { jwks, maxAgeSeconds } = await manager.jwks(request.tenant, requirePurpose(request.purpose));
      return { jwks: jwks as unknown as JsonObject, maxAgeSeconds };
    },

    async rotateKeys(request, context) {
      const keys = await manager.rotate(
        request.tenant,
        requirePurpose(request.purpose),
        request.revokeCurrent,
        request.reason,
        auditedCaller(callerOf(context)).by,
      );
      return { keys: keys.map(toKeyInfo) };
    },

    async listKeys(request) {
      const purpose = request.purpose ? requirePurpose(request.purpose) : undefined;
      return { keys: (await manager.listKeys(request.tenant, purpose)).map(toKeyInfo) };
    },

    async issueAgentCertificate(request) {
      const issued = await agentCa.issueAgentCertificate({
        tenant: request.tenant,
        publicKeySpki: request.publicKeySpki,
        spiffeId: request.spiffeId,
        notAfter: msOf(request.notAfter),
      });
      return {
        certificateDer: issued.certificateDer,
        chainDer: issued.chainDer,
        serial: issued.serial,
        notBefore: timestampFromMs(issued.notBefore),
        notAfter: timestampFromMs(issued.notAfter),
        issuerKid: issued.issuerKid,
      };
    },

    async getAgentTrustBundle(request) {
      const bundle = await agentCa.trustBundle(request.tenant);
      return {
        rootsDer: bundle.roots,
        intermediatesDer: bundle.intermediates,
        spiffeBundle: bundle.spiffeBundle as unknown as JsonObject,
        maxAgeSeconds: bundle.maxAgeSeconds,
      };
    },

    async signAgentCrls(request) {
      const revoked = request.revoked.map((entry) => ({
        serial: entry.serial,
        revokedAt: msOf(entry.revokeTime),
        reason: entry.reason || undefined,
      }));
      const crls = await agentCa.signCrls(request.tenant, revoked, msOf(request.nextUpdate));
      return { crls };
    },
  });
}
