// The agent CA's client: an AgentCaClient (services/shared/signing.ts) over the Signer's RPCs, for
// services running in another process than the Signer. In the same process they get the CA itself.

import { timestampDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { Client } from "@connectrpc/connect";
import { ConnectError } from "@connectrpc/connect";
import type { JWK } from "jose";
import type { Signer } from "../../../gen/mandate/v1/signer_pb.js";
import type {
  AgentCaClient,
  AgentCertificateRequest,
  AgentTrustBundle,
  IssuedAgentCertificate,
  RevokedAgentCertificate,
} from "../../shared/signing.ts";

export class RemoteAgentCaClient implements AgentCaClient {
  readonly #client: () => Client<typeof Signer>;
  /** `client` is resolved per call so the transport is made only when first needed. */
  constructor(client: () => Client<typeof Signer>) {
    this.#client = client;
  }

  async issueAgentCertificate(request: AgentCertificateRequest): Promise<IssuedAgentCertificate> {
    const response = await this.#client().issueAgentCertificate({
      tenant: request.tenant,
      publicKeySpki: request.publicKeySpki,
      spiffeId: request.spiffeId,
      notAfter: timestampFromMs(request.notAfter),
    });
    if (!response.notBefore || !response.notAfter) throw new ConnectError("the Signer returned no validity");
    return {
      certificateDer: response.certificateDer,
      chainDer: response.chainDer,
      serial: response.serial,
      notBefore: timestampDate(response.notBefore).getTime(),
      notAfter: timestampDate(response.notAfter).getTime(),
      issuerKid: response.issuerKid,
    };
  }

  async trustBundle(tenant: string): Promise<AgentTrustBundle> {
    const response = await this.#client().getAgentTrustBundle({ tenant });
    const bundle = response.spiffeBundle as {
      keys?: unknown;
      spiffe_sequence?: unknown;
      spiffe_refresh_hint?: unknown;
    };
    if (!Array.isArray(bundle?.keys)) throw new ConnectError("the Signer returned a malformed SPIFFE bundle");
    return {
      roots: response.rootsDer,
      intermediates: response.intermediatesDer,
      spiffeBundle: {
        keys: bundle.keys as JWK[],
        spiffe_sequence: Number(bundle.spiffe_sequence),
        spiffe_refresh_hint: Number(bundle.spiffe_refresh_hint),
      },
      maxAgeSeconds: response.maxAgeSeconds,
    };
  }

  async signCrls(tenant: string, revoked: readonly RevokedAgentCertificate[], nextUpdate: number) {
    const response = await this.#client().signAgentCrls({
      tenant,
      revoked: revoked.map((entry) => ({
        serial: entry.serial,
        revokeTime: timestampFromMs(entry.revokedAt),
        reason: entry.reason ?? "",
      })),
      nextUpdate: timestampFromMs(nextUpdate),
    });
    return response.crls.map((crl) => ({ issuerKid: crl.issuerKid, der: crl.der }));
  }
}
