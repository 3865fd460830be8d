// Issue.ExchangeToken as an agent calls it over native gRPC: client authentication in the request,
// the DPoP proof in binding.dpop (made for POST to the tenant's token endpoint), the server's DPoP
// nonce retried once (ErrorInfo USE_DPOP_NONCE, RFC 9449 §8).
import { randomUUID } from "node:crypto";
import { ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { exportJWK, SignJWT } from "jose";
import { ErrorInfoSchema, PreconditionFailureSchema } from "../../gen/google/rpc/error_details_pb.js";
import { Issue } from "../../gen/mandate/v1/issue_pb.js";

/** What of an agent the call needs: its client credentials and its DPoP key pair. */
export interface RpcAgent {
  clientId: string;
  secret: string;
  keys: CryptoKeyPair;
}

export interface RpcExchangeTarget {
  /** host:port of the native gRPC listener. */
  grpc: string;
  /** The tenant's issuer (its token endpoint is the proof's htu). */
  issuer: string;
  tenant: string;
}

export async function bindingProof(agent: RpcAgent, issuer: string, nonce?: string) {
  const htu = `${issuer}/oauth2/token`;
  const jwt = await new SignJWT({ htm: "POST", htu, jti: randomUUID(), ...(nonce ? { nonce } : {}) })
    .setProtectedHeader({ alg: "ES256", typ: "dpop+jwt", jwk: await exportJWK(agent.keys.publicKey) })
    .setIssuedAt()
    .sign(agent.keys.privateKey);
  return { proof: jwt, httpMethod: "POST", httpUri: htu };
}

export async function rpcExchange(
  target: RpcExchangeTarget,
  agent: RpcAgent,
  fields: Record<string, unknown>,
  bind = true,
) {
  const issue = createClient(Issue, createGrpcTransport({ baseUrl: `http://${target.grpc}` }));
  const call = async (nonce?: string) =>
    issue.exchangeToken({
      tenant: target.tenant,
      client: { clientId: agent.clientId, method: "client_secret_basic", clientSecret: agent.secret },
      ...fields,
      ...(bind ? { binding: { dpop: await bindingProof(agent, target.issuer, nonce) } } : {}),
    });
  try {
    return await call();
  } catch (error) {
    const info = ConnectError.from(error).findDetails(ErrorInfoSchema)[0];
    if (info?.reason !== "USE_DPOP_NONCE") throw error;
    return call(info.metadata.dpop_nonce);
  }
}

/** How an RPC was refused: status, message, ErrorInfo reason and metadata, first precondition violation. */
export async function rpcRefusal(call: Promise<unknown>) {
  const error = ConnectError.from(
    await call.then(
      () => undefined,
      (e: unknown) => e,
    ),
  );
  const info = error.findDetails(ErrorInfoSchema)[0];
  const precondition = error.findDetails(PreconditionFailureSchema)[0]?.violations[0];
  return {
    code: error.code,
    message: error.rawMessage,
    reason: info?.reason,
    metadata: info?.metadata,
    precondition: precondition && { type: precondition.type, subject: precondition.subject },
  };
}
