// Mandate in this process with every service, native gRPC over mutual TLS (TLS 1.3) and the HTTP
// edge, its deployment CA and server certificate made by `openssl`: for tests of agents' certificates
// and certificate-bound tokens that need the Signer's own keys and agent CA at hand.
import { createPublicKey, X509Certificate } from "node:crypto";
import type { Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { type Running, startMandate } from "../../services/runtime/start.ts";
import { systemClock } from "../../services/shared/clock.ts";
import { type Config, loadConfig, SERVICE_NAMES, withHttpPort } from "../../services/shared/config.ts";
import { createLogger } from "../../services/shared/logger.ts";
import { issuerUrl } from "../../services/shared/oauth/issuer.ts";
import { Store } from "../../services/shared/store/store.ts";
import { agentSpiffeId, agentTrustDomain } from "../../services/shared/x509/spiffe.ts";
import { AgentCertificateAuthority } from "../../services/signer/ca/authority.ts";
import type { KeyManager } from "../../services/signer/keys.ts";
import { freePort, tempDatabaseUrl } from "./mandate-process.ts";
import { leafCertificate, type PkiCertificate, privateKey, rootCa } from "./openssl-pki.ts";

/** A TLS client's certificate: its key, the leaf and what it sends along (PEM), the leaf's DER. */
export interface ClientCertificate {
  keyPem: string;
  certPem: string;
  der: Uint8Array;
}

export interface MtlsMandate {
  running: Running;
  config: Config;
  /** host:port of native gRPC, by a name the server certificate carries. */
  address: string;
  /** The deployment's CA: it signed the server's certificate (trust it) and may sign test clients'. */
  deployment: PkiCertificate;
  /** An access token of `tenant` with `claims`, signed by its current key through the Signer, as the token endpoint signs. */
  accessToken(tenant: string, claims: Record<string, unknown>): Promise<string>;
  /** Native gRPC over TLS, presenting `certificate` when given and `token` as Bearer when given. */
  transport(options: { token?: string | undefined; certificate?: ClientCertificate | undefined }): Transport;
  stop(): Promise<void>;
}

export interface MtlsMandateOptions {
  /** Tenants made before Mandate starts (native gRPC reads their agent CAs as it starts). */
  tenants: readonly string[];
  /** Extra configuration (e.g. http.clientCertificate for a proxy's header). */
  http?: Record<string, unknown>;
}

export async function startMtlsMandate(options: MtlsMandateOptions): Promise<MtlsMandate> {
  const deployment = rootCa({ subject: "/CN=deployment CA" });
  const serverCertificate = leafCertificate(deployment, {
    uris: ["spiffe://mandate.test/mandate/issue"],
    dnsNames: ["localhost"],
  });
  const loaded = loadConfig({
    env: {},
    overrides: {
      database: { url: tempDatabaseUrl() },
      grpc: { host: "127.0.0.1", port: 0 },
      http: { host: "127.0.0.1", port: 0, ...options.http },
      tls: {
        certFile: serverCertificate.certFile,
        keyFile: serverCertificate.keyFile,
        caFile: deployment.certFile,
        trustDomain: "mandate.test",
      },
    },
  });
  const config = withHttpPort(loaded, await freePort("127.0.0.1"));
  const store = Store.open({ url: config.database.url });
  await store.migrate();
  for (const id of options.tenants) {
    await store.db.insertInto("tenants").values({ id, display_name: id, created_at: 0 }).execute();
  }
  await store.close();
  const running = await startMandate({
    config,
    logger: createLogger("silent"),
    services: SERVICE_NAMES,
    grpc: true,
    edge: true,
    migrate: true,
    dev: true,
  });
  const address = `localhost:${running.grpcPort}`;
  return {
    running,
    config,
    address,
    deployment,
    async accessToken(tenant, claims) {
      const now = Math.floor(Date.now() / 1000);
      const base = { iss: issuerUrl(config.publicBaseUrl, tenant), jti: crypto.randomUUID(), iat: now, exp: now + 300 };
      return (await (running.keys as KeyManager).signJwt(tenant, { ...base, ...claims }, "at+jwt")).jwt;
    },
    transport({ token, certificate }) {
      return createGrpcTransport({
        baseUrl: `https://${address}`,
        nodeOptions: {
          ca: deployment.pem,
          ...(certificate ? { key: certificate.keyPem, cert: certificate.certPem } : {}),
        },
        interceptors: token
          ? [
              (next) => (request) => {
                request.header.set("authorization", `Bearer ${token}`);
                return next(request);
              },
            ]
          : [],
      });
    },
    stop: () => running.stop(),
  };
}

/** A ClientCertificate of an openssl-made certificate and the chain it sends along. */
export function clientCertificateOf(certificate: PkiCertificate, ...chain: PkiCertificate[]): ClientCertificate {
  return {
    keyPem: certificate.keyPem,
    certPem: [certificate, ...chain].map((c) => c.pem).join(""),
    der: certificate.der,
  };
}

/** A ClientCertificate of DER certificates (the leaf first) and the key's PEM. */
export function clientCertificateOfDer(
  keyPem: string,
  leaf: Uint8Array,
  chain: readonly Uint8Array[] = [],
): ClientCertificate {
  const certPem = [leaf, ...chain].map((der) => new X509Certificate(der).toString()).join("");
  return { keyPem, certPem, der: leaf };
}

/**
 * A certificate of `tenant`'s agent CA (the Signer's, through the same keys and store) naming
 * `clientId`, for a key `openssl` made; not recorded by enrollment (the deny list does not know it).
 */
export async function agentCaCertificate(mandate: MtlsMandate, tenant: string, clientId: string) {
  const { running, config } = mandate;
  const ca = new AgentCertificateAuthority({
    keys: running.keys as KeyManager,
    store: running.store as Store,
    clock: systemClock,
    logger: createLogger("silent"),
    trustDomainSuffix: config.agents.trustDomainSuffix,
    publicBaseUrl: config.publicBaseUrl,
  });
  const key = privateKey("ec");
  const publicKeySpki = new Uint8Array(createPublicKey(key.keyPem).export({ type: "spki", format: "der" }));
  const spiffeId = agentSpiffeId(agentTrustDomain(tenant, config.agents.trustDomainSuffix), clientId);
  const issued = await ca.issueAgentCertificate({ tenant, publicKeySpki, spiffeId, notAfter: Date.now() + 3_600_000 });
  return { ca, issued, certificate: clientCertificateOfDer(key.keyPem, issued.certificateDer, issued.chainDer) };
}
