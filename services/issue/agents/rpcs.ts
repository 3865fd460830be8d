// The admin RPCs of agent identity (mandate.v1.Issue): CreateAgentEnrollmentToken,
// ListAgentCertificates, RevokeAgentCertificates. Each audited action commits with its record.
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import type { Issue } from "../../../gen/mandate/v1/issue_pb.js";
import type { Clock } from "../../shared/clock.ts";
import type { Config } from "../../shared/config.ts";
import { failedPrecondition, notFound } from "../../shared/errors.ts";
import { auditedCaller, callerOf } from "../../shared/rpc/access.ts";
import type { Store } from "../../shared/store/store.ts";
import { AgentCertificates, clientKind, type RevocationReason } from "./certificates.ts";
import { createEnrollmentToken, NotAnAgent } from "./enrollment.ts";

export type AgentRpcs = Pick<
  ServiceImpl<typeof Issue>,
  "createAgentEnrollmentToken" | "listAgentCertificates" | "revokeAgentCertificates"
>;

export function agentRpcs(deps: { store: Store; clock: Clock; config: Config }): AgentRpcs {
  const certificates = new AgentCertificates(deps.store);
  const requireAgent = async (tenant: string, clientId: string) => {
    const kind = await clientKind(deps.store.forTenant(tenant).db, tenant, clientId);
    throwUnlessAgent(clientId, kind);
  };
  return {
    async createAgentEnrollmentToken(request, context) {
      const ttlMs = request.ttl ? Number(request.ttl.seconds) * 1000 + Math.floor(request.ttl.nanos / 1e6) : undefined;
      try {
        const created = await createEnrollmentToken(
          deps,
          { tenant: request.tenant, clientId: request.clientId, ttlMs },
          auditedCaller(callerOf(context)),
        );
        return { token: created.token, id: created.id, expireTime: timestampFromMs(created.expiresAt) };
      } catch (error) {
        if (error instanceof NotAnAgent) throwUnlessAgent(request.clientId, error.exists ? "other" : undefined);
        throw error;
      }
    },

    async listAgentCertificates(request) {
      await requireAgent(request.tenant, request.clientId);
      const rows = await certificates.list(request.tenant, request.clientId);
      return {
        certificates: rows.map((row) => ({
          serial: row.serial,
          spiffeId: row.spiffe_id,
          notBefore: timestampFromMs(Number(row.not_before)),
          notAfter: timestampFromMs(Number(row.not_after)),
          proof: row.proof,
          renewedFrom: row.renewed_from ?? "",
          revokeTime: row.revoked_at === null ? undefined : timestampFromMs(Number(row.revoked_at)),
          revocationReason: row.revocation_reason ?? "",
          x5tS256: row.x5t_s256,
        })),
      };
    },

    async revokeAgentCertificates(request, context) {
      await requireAgent(request.tenant, request.clientId);
      const serial = request.serial ? request.serial.toUpperCase() : undefined;
      const revoked = await certificates.revoke(
        request.tenant,
        request.clientId,
        { serial, reason: (request.reason || "unspecified") as RevocationReason, now: deps.clock.now() },
        auditedCaller(callerOf(context)),
      );
      if (serial && revoked.length === 0) await requireKnownSerial(request.tenant, request.clientId, serial);
      return { revokedCount: revoked.length };
    },
  };

  /** NOT_FOUND for a serial the agent never had (revoking one already revoked is a no-op, not an error). */
  async function requireKnownSerial(tenant: string, clientId: string, serial: string): Promise<void> {
    const rows = await certificates.list(tenant, clientId);
    if (!rows.some((r) => r.serial === serial)) throw notFound("agent certificate", serial);
  }
}

function throwUnlessAgent(clientId: string, kind: string | undefined): void {
  if (kind === undefined) throw notFound("client", clientId);
  if (kind !== "agent") {
    throw failedPrecondition(`client ${clientId} is not an agent (kind ${kind})`, "NOT_AN_AGENT");
  }
}
