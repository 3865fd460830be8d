// The Signer's client: a SigningClient (services/shared/signing.ts) over its gRPC API, for services
// running in another process than the Signer. In the same process they get the KeyManager itself.
import { type Client, ConnectError } from "@connectrpc/connect";
import type { JWK } from "jose";
import { KeyPurpose, type Signer } from "../../gen/mandate/v1/signer_pb.js";
import type { KeyPurposeName, SigningClient } from "../shared/signing.ts";

export const PURPOSE_TO_PROTO: Record<KeyPurposeName, KeyPurpose> = {
  token_signing: KeyPurpose.TOKEN_SIGNING,
  audit_checkpoint: KeyPurpose.AUDIT_CHECKPOINT,
  agent_ca_root: KeyPurpose.AGENT_CA_ROOT,
  agent_ca: KeyPurpose.AGENT_CA,
};

export function purposeFromProto(purpose: KeyPurpose): KeyPurposeName | undefined {
  if (purpose === KeyPurpose.TOKEN_SIGNING) return "token_signing";
  if (purpose === KeyPurpose.AUDIT_CHECKPOINT) return "audit_checkpoint";
  if (purpose === KeyPurpose.AGENT_CA_ROOT) return "agent_ca_root";
  if (purpose === KeyPurpose.AGENT_CA) return "agent_ca";
  return undefined;
}

export class RemoteSigningClient implements SigningClient {
  readonly #client: () => Client<typeof Signer>;
  /** `client` is resolved per call so the transport is made only when first needed. */
  constructor(client: () => Client<typeof Signer>) {
    this.#client = client;
  }

  async signJwt(tenant: string, claims: Record<string, unknown>, typ = "") {
    const response = await this.#client().signJwt({ tenant, claims: Buffer.from(JSON.stringify(claims)), typ });
    return { jwt: response.jwt, kid: response.kid, alg: response.alg };
  }

  async sign(tenant: string, purpose: KeyPurposeName, payload: Uint8Array) {
    const response = await this.#client().sign({ tenant, purpose: PURPOSE_TO_PROTO[purpose], payload });
    return { signature: response.signature, kid: response.kid, alg: response.alg };
  }

  async jwks(tenant: string, purpose: KeyPurposeName) {
    const response = await this.#client().getJwks({ tenant, purpose: PURPOSE_TO_PROTO[purpose] });
    const keys = (response.jwks?.keys ?? []) as JWK[];
    if (!Array.isArray(keys)) throw new ConnectError("the Signer returned a malformed JWKS");
    return { jwks: { keys }, maxAgeSeconds: response.maxAgeSeconds };
  }
}
