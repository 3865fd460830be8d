// Enrollment and renewal of agent certificates (issue 17): an agent proves who it is (a one-time
// enrollment token, a workload platform's attestation, or its current certificate), sends a CSR, and
// gets an X.509-SVID from its tenant's CA in the Signer naming only its SPIFFE ID. What the CA
// issued, the token's use and the audit record commit in one transaction; a certificate whose
// transaction failed is in no row, and the deny list refuses it (an unknown serial).
import { type Actor, agentCertificateIssued, agentEnrollmentTokenCreated } from "../../shared/audit-events.ts";
import type { Clock } from "../../shared/clock.ts";
import type { Config } from "../../shared/config.ts";
import type { Logger } from "../../shared/logger.ts";
import { handleHash, opaqueHandle } from "../../shared/oauth/handles.ts";
import type { AgentCaClient, IssuedAgentCertificate } from "../../shared/signing.ts";
import type { Store } from "../../shared/store/store.ts";
import type { TenantTransaction } from "../../shared/store/tenancy.ts";
import { uuidV7 } from "../../shared/uuid-v7.ts";
import { agentSpiffeId, agentTrustDomain } from "../../shared/x509/spiffe.ts";
import { x5tS256 as thumbprint } from "../../shared/x509/thumbprint.ts";
import type { VerifiedAgentCertificate } from "../../shared/x509/types.ts";
import { AccessDenied, InvalidGrant, TemporarilyUnavailable } from "../oauth/errors.ts";
import { clientKind } from "./certificates.ts";
import type { CheckedCsr } from "./csr.ts";

/** Enrollment tokens are recognisable in logs and secret scanners by their prefix. */
export const ENROLLMENT_TOKEN_PREFIX = "mandate_enroll";

/** An attestation of a workload platform (attestation.ts): which agent a signed JWT proves. */
export interface AgentAttestor {
  attest(tenant: string, jwt: string): Promise<{ clientId: string; attestor: string; subject: string }>;
}

export interface AgentEnrollmentDeps {
  store: Store;
  clock: Clock;
  config: Config;
  agentCa: AgentCaClient;
  logger: Logger;
}

/** The client a token or RPC names does not exist in the tenant, or is not an agent. */
export class NotAnAgent extends Error {
  readonly exists: boolean;
  constructor(clientId: string, exists: boolean) {
    super(exists ? `client ${clientId} is not an agent` : `no client ${clientId}`);
    this.name = "NotAnAgent";
    this.exists = exists;
  }
}

export interface EnrolledCertificate {
  certificate: IssuedAgentCertificate;
  clientId: string;
  spiffeId: string;
  x5tS256: string;
}

interface Proof {
  proof: string;
  /** In the transaction: claims what the proof spent (the token), or re-checks it; throws to abort. */
  claim(tx: TenantTransaction, serial: string): Promise<void>;
  enrollmentTokenId?: string;
  renewedFrom?: string;
}

export class AgentEnrollment {
  readonly #deps: AgentEnrollmentDeps;
  constructor(deps: AgentEnrollmentDeps) {
    this.#deps = deps;
  }

  /** Enrollment with a one-time token: invalid_grant when it is unknown, used or expired. */
  async enrollWithToken(tenant: string, token: string, csr: CheckedCsr): Promise<EnrolledCertificate> {
    const row = await this.#deps.store
      .forTenant(tenant)
      .db.selectFrom("agent_enrollment_tokens")
      .selectAll()
      .where("tenant_id", "=", tenant)
      .where("token_hash", "=", handleHash(token))
      .executeTakeFirst();
    if (!row) throw new InvalidGrant("the enrollment token is not valid for this tenant");
    if (row.used_at !== null) throw new InvalidGrant("the enrollment token was already used; ask for a new one");
    if (Number(row.expires_at) <= this.#deps.clock.now()) {
      throw new InvalidGrant("the enrollment token has expired; ask for a new one");
    }
    await this.#requireLiveAgent(tenant, row.client_id);
    return this.#issue(tenant, row.client_id, csr, {
      proof: "enrollment_token",
      enrollmentTokenId: row.id,
      claim: async (tx, serial) => {
        // One-time: the token is spent in the transaction that records the certificate; a
        // concurrent use that spent it first (or a revocation that expired it) aborts this one.
        const now = this.#deps.clock.now();
        const spent = await tx
          .updateTable("agent_enrollment_tokens")
          .set({ used_at: now, used_serial: serial })
          .where("tenant_id", "=", tenant)
          .where("id", "=", row.id)
          .where("used_at", "is", null)
          .where("expires_at", ">", now)
          .executeTakeFirst();
        if (Number(spent.numUpdatedRows) !== 1) {
          throw new InvalidGrant("the enrollment token is no longer valid (used, expired or voided meanwhile)");
        }
        await requireAgentForIssuance(tx, tenant, row.client_id);
      },
    });
  }

  /** Enrollment with a workload platform's signed JWT; the attestor says which agent it is. */
  async enrollWithAttestation(
    tenant: string,
    attested: { clientId: string; attestor: string },
    csr: CheckedCsr,
  ): Promise<EnrolledCertificate> {
    await this.#requireLiveAgent(tenant, attested.clientId);
    return this.#issue(tenant, attested.clientId, csr, {
      proof: `attestation:${attested.attestor}`,
      claim: (tx) => requireAgentForIssuance(tx, tenant, attested.clientId),
    });
  }

  /** Renewal with the agent's current certificate, already verified (AgentTrust) by the caller. */
  async renew(tenant: string, current: VerifiedAgentCertificate, csr: CheckedCsr): Promise<EnrolledCertificate> {
    return this.#issue(tenant, current.clientId, csr, {
      proof: "renewal",
      renewedFrom: current.serial,
      claim: async (tx) => {
        // A revocation between the verification and now wins: the renewal is refused.
        const row = await tx
          .selectFrom("agent_certificates")
          .select("revoked_at")
          .where("tenant_id", "=", tenant)
          .where("serial", "=", current.serial)
          .executeTakeFirst();
        if (!row || row.revoked_at !== null) throw new AccessDenied("the current certificate was revoked");
        await requireAgentForIssuance(tx, tenant, current.clientId);
      },
    });
  }

  async #requireLiveAgent(tenant: string, clientId: string): Promise<void> {
    const db = this.#deps.store.forTenant(tenant).db;
    if ((await clientKind(db, tenant, clientId)) !== "agent") {
      throw new AccessDenied(`the agent ${clientId} no longer exists`);
    }
  }

  async #issue(tenant: string, clientId: string, csr: CheckedCsr, proof: Proof): Promise<EnrolledCertificate> {
    const { store, clock, config, agentCa, logger } = this.#deps;
    const spiffeId = agentSpiffeId(agentTrustDomain(tenant, config.agents.trustDomainSuffix), clientId);
    let certificate: IssuedAgentCertificate;
    try {
      // Only the public key comes from the CSR; the SPIFFE ID and validity are ours.
      certificate = await agentCa.issueAgentCertificate({
        tenant,
        publicKeySpki: csr.publicKeySpki,
        spiffeId,
        notAfter: clock.now() + config.agents.certificateTtl,
      });
    } catch (error) {
      logger.warn({ err: error, tenant, clientId }, "the agent CA could not issue a certificate");
      throw new TemporarilyUnavailable("the certificate authority is unavailable; retry shortly");
    }
    const x5tS256 = thumbprint(certificate.certificateDer);
    const scoped = store.forTenant(tenant);
    await scoped.transaction(async (tx) => {
      await proof.claim(tx, certificate.serial);
      const issuedAt = clock.now();
      await tx
        .insertInto("agent_certificates")
        .values({
          tenant_id: tenant,
          serial: certificate.serial,
          client_id: clientId,
          spiffe_id: spiffeId,
          x5t_s256: x5tS256,
          issuer_kid: certificate.issuerKid,
          not_before: certificate.notBefore,
          not_after: certificate.notAfter,
          issued_at: issuedAt,
          proof: proof.proof,
          renewed_from: proof.renewedFrom ?? null,
          revoked_at: null,
          revocation_reason: null,
        })
        .execute();
      const event = agentCertificateIssued({
        clientId,
        serial: certificate.serial,
        spiffeId,
        x5tS256,
        issuerKid: certificate.issuerKid,
        notAfter: certificate.notAfter,
        proof: proof.proof,
        enrollmentTokenId: proof.enrollmentTokenId,
        renewedFrom: proof.renewedFrom,
      });
      await scoped.recordEvent(tx, event, issuedAt);
    });
    return { certificate, clientId, spiffeId, x5tS256 };
  }
}

/** A one-time enrollment token for the agent; shown once, only its SHA-256 kept, audited. */
export async function createEnrollmentToken(
  { store, clock, config }: Pick<AgentEnrollmentDeps, "store" | "clock" | "config">,
  request: {
    tenant: string;
    clientId: string;
    ttlMs?: number | undefined;
    /** Who the row names as its creator; default: the actor's sub, client or service. */
    createdBy?: string | undefined;
  },
  actor: Partial<Actor>,
): Promise<{ token: string; id: string; expiresAt: number }> {
  const { tenant, clientId } = request;
  const scoped = store.forTenant(tenant);
  const now = clock.now();
  // The request may shorten the configured lifetime, never lengthen it.
  const ttl = Math.min(request.ttlMs ?? config.agents.enrollmentTokenTtl, config.agents.enrollmentTokenTtl);
  const expiresAt = now + ttl;
  const token = opaqueHandle(ENROLLMENT_TOKEN_PREFIX);
  const id = uuidV7(now);
  await scoped.transaction(async (tx) => {
    await requireAgent(tx, tenant, clientId);
    await tx
      .insertInto("agent_enrollment_tokens")
      .values({
        tenant_id: tenant,
        id,
        token_hash: handleHash(token),
        client_id: clientId,
        created_by: request.createdBy ?? createdBy(actor),
        created_at: now,
        expires_at: expiresAt,
        used_at: null,
        used_serial: null,
      })
      .execute();
    await scoped.recordEvent(tx, agentEnrollmentTokenCreated({ id, clientId, expiresAt }, actor), now);
  });
  return { token, id, expiresAt };
}

/** NotAnAgent unless `clientId` is an agent of the tenant (for the admin RPC). */
async function requireAgent(tx: TenantTransaction, tenant: string, clientId: string): Promise<void> {
  const kind = await clientKind(tx, tenant, clientId);
  if (kind !== "agent") throw new NotAnAgent(clientId, kind !== undefined);
}

/** In the issuing transaction: the agent must still exist (a deletion racing the issuance wins). */
async function requireAgentForIssuance(tx: TenantTransaction, tenant: string, clientId: string): Promise<void> {
  try {
    await requireAgent(tx, tenant, clientId);
  } catch (error) {
    if (error instanceof NotAnAgent) throw new AccessDenied(`the agent ${clientId} no longer exists`);
    throw error;
  }
}

/** Who created a token, for the row: the caller's client (and user), or the service. */
function createdBy(actor: Partial<Actor>): string {
  const by = actor.by ?? {};
  return by.sub ?? by.client_id ?? by.service ?? "anonymous";
}
