// AgentTrust: the one verifier of agents' certificates (AgentCertificateVerifier) for the token
// endpoint (RFC 8705), renewal, and every other place an agent presents its certificate. A
// certificate is accepted when it chains to its tenant's agent CA (the trust bundle from the Signer,
// cached for the bundle's max age), is an X.509-SVID in the tenant's trust domain, and passes the
// deny list (agent_certificates), read at every use so that a revocation takes effect at once.
import type { Clock } from "../../shared/clock.ts";
import type { Config } from "../../shared/config.ts";
import type { Logger } from "../../shared/logger.ts";
import type { AgentCaClient } from "../../shared/signing.ts";
import type { Store } from "../../shared/store/store.ts";
import { verifyAgentCertificate } from "../../shared/x509/certificate-chain.ts";
import { agentTrustDomain } from "../../shared/x509/spiffe.ts";
import { x5tS256 } from "../../shared/x509/thumbprint.ts";
import {
  type AgentCertificateVerifier,
  CertificateRefused,
  type PresentedCertificate,
  type VerifiedAgentCertificate,
} from "../../shared/x509/types.ts";
import { AgentCertificates, type DenyListAnswer } from "./certificates.ts";
import { type CachedBundle, TrustBundles } from "./trust-bundles.ts";

/** Clock skew the chain check tolerates on validity (certificate-chain.ts's default). */
const SKEW_MS = 60_000;
/** Chain verifications remembered; beyond this many the memory starts over. */
const MAX_REMEMBERED = 10_000;

interface RememberedChain {
  bundle: CachedBundle;
  verified: VerifiedAgentCertificate;
}

const DENIED: Record<Exclude<DenyListAnswer, undefined>, string> = {
  unknown: "the serial is not one this tenant's CA issued (or its issuance was never recorded)",
  wrong_agent: "the serial was issued to another agent",
  revoked: "the certificate was revoked",
  agent_gone: "the agent no longer exists",
};

export class AgentTrust implements AgentCertificateVerifier {
  readonly #certificates: AgentCertificates;
  readonly #bundles: TrustBundles;
  readonly #config: Config;
  readonly #clock: Clock;
  readonly #logger: Logger;
  /**
   * Chain verifications by tenant and certificate thumbprint. What a chain check concludes depends
   * only on the leaf, the bundle and the time, so a result stands while its bundle is the tenant's
   * current one and the leaf has not expired (it was already valid when checked); parsing and
   * verifying the chain was most of an mTLS token request's cost. The deny list is never remembered.
   */
  readonly #chains = new Map<string, RememberedChain>();

  constructor(store: Store, agentCa: AgentCaClient, config: Config, clock: Clock, logger: Logger) {
    this.#certificates = new AgentCertificates(store);
    this.#bundles = new TrustBundles(agentCa, clock);
    this.#config = config;
    this.#clock = clock;
    this.#logger = logger;
  }

  async verify(tenant: string, presented: PresentedCertificate): Promise<VerifiedAgentCertificate> {
    try {
      const verified = await this.#verifyChain(tenant, presented);
      // The deny list (issue 17 §3), fail closed: the serial must be a recorded, unrevoked
      // certificate of the agent its SPIFFE ID names, and the agent must still exist.
      const denied = await this.#certificates.denied(tenant, verified.serial, verified.clientId);
      if (denied) throw new CertificateRefused("revoked", `${DENIED[denied]} (serial ${verified.serial})`);
      return verified;
    } catch (error) {
      if (error instanceof CertificateRefused) {
        this.#logger.info({ tenant, reason: error.reason, detail: error.message }, "agent certificate refused");
      }
      throw error;
    }
  }

  async #verifyChain(tenant: string, presented: PresentedCertificate): Promise<VerifiedAgentCertificate> {
    const bundle = await this.#bundles.of(tenant);
    const key = `${tenant} ${x5tS256(presented.leaf)}`;
    const remembered = this.#chains.get(key);
    if (remembered?.bundle === bundle && this.#clock.now() - SKEW_MS <= remembered.verified.notAfter) {
      return remembered.verified;
    }
    const trustDomain = agentTrustDomain(tenant, this.#config.agents.trustDomainSuffix);
    const attempt = async ({ roots, intermediates }: CachedBundle) =>
      verifyAgentCertificate(presented, {
        roots,
        intermediates,
        trustDomain,
        now: this.#clock.now(),
        skewMs: SKEW_MS,
        // The deny list needs the agent the certificate names too: checked after (verify above).
        isRevoked: () => false,
      });
    let used = bundle;
    let verified: VerifiedAgentCertificate;
    try {
      verified = await attempt(bundle);
    } catch (error) {
      // A CA key rotated since the bundle was cached: one fresh look before refusing.
      const unknownCa =
        error instanceof CertificateRefused &&
        (error.reason === "unknown_ca" || error.reason === "unknown_intermediate");
      if (!unknownCa) throw error;
      used = await this.#bundles.of(tenant, true);
      verified = await attempt(used);
    }
    if (this.#chains.size >= MAX_REMEMBERED) this.#chains.clear();
    this.#chains.set(key, { bundle: used, verified });
    return verified;
  }
}
