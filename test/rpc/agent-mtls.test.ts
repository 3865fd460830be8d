// Agents' mTLS on native gRPC, over real TLS 1.3 with certificates `openssl` made: the server trusts
// the deployment's CA and every tenant's agent CA (roots and intermediates, re-read when they
// change), so an agent's certificate reaches the handler (Peer.clientCertificate) — and only as an
// agent's: a certificate a tenant's CA issued never names a Mandate service, even one whose SAN
// says spiffe://<deployment>/mandate/issue. A certificate of no trusted CA does not fail the
// handshake (token callers need none): it is ignored, and the call goes on without it.
import { X509Certificate } from "node:crypto";
import { connect } from "node:tls";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  Health,
  HealthCheckRequestSchema,
  HealthCheckResponse_ServingStatus,
  HealthCheckResponseSchema,
} from "../../gen/grpc/health/v1/health_pb.js";
import { loadConfig } from "../../services/shared/config.ts";
import { createLogger } from "../../services/shared/logger.ts";
import {
  FORWARDED_CLIENT_CERT_HEADER,
  FORWARDED_FOR_HEADER,
  PEER,
  type Peer,
} from "../../services/shared/rpc/access.ts";
import { bindGrpcServer, createGrpcServer, shutdownGrpcServer } from "../../services/shared/rpc/grpc-server.ts";
import { AgentCaBundles, MandateServerCredentials, peerIdentity, TlsFiles } from "../../services/shared/rpc/mtls.ts";
import { intermediateCa, leafCertificate, type PkiCertificate, rootCa } from "../helpers/openssl-pki.ts";

const TRUST_DOMAIN = "mandate.test";
const agentId = (tenant: string, client: string) => `spiffe://${tenant}.agents.mandate.local/agent/${client}`;

interface TenantCa {
  root: PkiCertificate;
  intermediate: PkiCertificate;
}

let deployment: PkiCertificate;
let server: grpc.Server;
let address: string;
let bundles: AgentCaBundles;
const cas = new Map<string, TenantCa>();
let seen: Peer | undefined;

function tenantCa(): TenantCa {
  const root = rootCa();
  return { root, intermediate: intermediateCa(root) };
}

beforeAll(async () => {
  deployment = rootCa({ subject: "/CN=deployment CA" });
  const serverCertificate = leafCertificate(deployment, {
    uris: [`spiffe://${TRUST_DOMAIN}/mandate/issue`],
    dnsNames: ["localhost"],
  });
  cas.set("acme", tenantCa());
  cas.set("globex", tenantCa());
  const config = loadConfig({
    env: {},
    overrides: {
      tls: {
        certFile: serverCertificate.certFile,
        keyFile: serverCertificate.keyFile,
        caFile: deployment.certFile,
        trustDomain: TRUST_DOMAIN,
      },
    },
  });
  const files = new TlsFiles(config.tls);
  bundles = new AgentCaBundles(
    {
      tenants: async () => [...cas.keys()],
      trustBundle: async (tenant) => {
        const ca = cas.get(tenant) as TenantCa;
        return { roots: [ca.root.der], intermediates: [ca.intermediate.der] };
      },
    },
    createLogger("silent"),
  );
  // The tenant list is looked at often here, so a new tenant's CA is read without waiting.
  await bundles.start(60_000, 100);
  const credentials = new MandateServerCredentials(files, bundles);
  const impl = {
    check: (_request: unknown, context: HandlerContext) => {
      seen = context.values.get(PEER);
      return { status: HealthCheckResponse_ServingStatus.SERVING };
    },
    list: () => ({ statuses: {} }),
    watch: async function* () {},
  };
  server = createGrpcServer([{ service: Health, impl }], {
    maxReceiveMessageBytes: 1 << 20,
    maxSendMessageBytes: 1 << 20,
    peerIdentity: peerIdentity(files),
  });
  address = `localhost:${await bindGrpcServer(server, "127.0.0.1", 0, credentials)}`;
}, 60_000);

afterAll(async () => {
  bundles?.stop();
  if (server) await shutdownGrpcServer(server, 1000);
});

/** One Health/Check over a fresh grpc-js channel presenting `client` (leaf first, then what it sends along). */
async function peerSeenWith(
  client?: { key: PkiCertificate; chain: PkiCertificate[] },
  metadata = new grpc.Metadata(),
): Promise<Peer | undefined> {
  const credentials = grpc.credentials.createSsl(
    Buffer.from(deployment.pem),
    client ? Buffer.from(client.key.keyPem) : null,
    client ? Buffer.from(client.chain.map((c) => c.pem).join("")) : null,
  );
  const channel = new grpc.Client(address, credentials);
  seen = undefined;
  try {
    const response = await new Promise<unknown>((resolve, reject) =>
      channel.makeUnaryRequest(
        "/grpc.health.v1.Health/Check",
        (message: unknown) =>
          Buffer.from(toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, message as never))),
        (bytes: Buffer) => fromBinary(HealthCheckResponseSchema, bytes),
        {},
        metadata,
        {},
        (error, value) => (error ? reject(error) : resolve(value)),
      ),
    );
    expect(response).toMatchObject({ status: HealthCheckResponse_ServingStatus.SERVING });
    return seen;
  } finally {
    channel.close();
  }
}

const derOf = (certificate: PkiCertificate) => Buffer.from(certificate.der);

describe("agent certificates on native gRPC", () => {
  it("hand a tenant agent's verified certificate to the handler, as a presented certificate, not a service", async () => {
    const acme = cas.get("acme") as TenantCa;
    const agent = leafCertificate(acme.intermediate, { uris: [agentId("acme", "a1")] });
    // The agent sends its leaf alone: the published intermediate completes the chain.
    const peer = await peerSeenWith({ key: agent, chain: [agent] });
    expect(peer?.service).toBeUndefined();
    expect(peer?.clientCertificate?.source).toBe("tls");
    expect(Buffer.from(peer?.clientCertificate?.leaf ?? [])).toEqual(derOf(agent));
    // Another tenant's agent passes TLS too: which tenant it belongs to is for the client's authentication.
    const globex = cas.get("globex") as TenantCa;
    const other = leafCertificate(globex.intermediate, { uris: [agentId("globex", "g1")] });
    const otherPeer = await peerSeenWith({ key: other, chain: [other, globex.intermediate] });
    expect(Buffer.from(otherPeer?.clientCertificate?.leaf ?? [])).toEqual(derOf(other));
  });

  it("take a Mandate service's identity only from a certificate of the deployment's CA", async () => {
    const service = leafCertificate(deployment, { uris: [`spiffe://${TRUST_DOMAIN}/mandate/authorize`] });
    const peer = await peerSeenWith({ key: service, chain: [service] });
    expect(peer?.service).toBe("authorize");
    expect(peer?.clientCertificate).toBeUndefined();
    // The same SPIFFE ID from a tenant's agent CA (root or intermediate): an agent's certificate, never a service.
    const acme = cas.get("acme") as TenantCa;
    for (const issuer of [acme.intermediate, acme.root]) {
      const forged = leafCertificate(issuer, { uris: [`spiffe://${TRUST_DOMAIN}/mandate/authorize`] });
      const forgedPeer = await peerSeenWith({ key: forged, chain: [forged] });
      expect(forgedPeer?.service).toBeUndefined();
      expect(Buffer.from(forgedPeer?.clientCertificate?.leaf ?? [])).toEqual(derOf(forged));
    }
  });

  it("ignore a certificate of no trusted CA: the call goes on without a certificate or identity", async () => {
    const unknown = rootCa();
    const stranger = leafCertificate(unknown, { uris: [agentId("acme", "a1")] });
    const peer = await peerSeenWith({ key: stranger, chain: [stranger, unknown] });
    expect(peer).toMatchObject({ service: undefined, forwarded: false });
    expect(peer?.clientCertificate).toBeUndefined();
    // Nor does a self-signed certificate that names a service pass as one.
    const selfSigned = rootCa({ uris: [`spiffe://${TRUST_DOMAIN}/mandate/issue`] });
    const selfPeer = await peerSeenWith({ key: selfSigned, chain: [selfSigned] });
    expect(selfPeer?.service).toBeUndefined();
    expect(selfPeer?.clientCertificate).toBeUndefined();
  });

  it("trust a new tenant's agent CA as soon as the tenant appears, for new connections", async () => {
    const initech = tenantCa();
    const agent = leafCertificate(initech.intermediate, { uris: [agentId("initech", "i1")] });
    expect((await peerSeenWith({ key: agent, chain: [agent] }))?.clientCertificate).toBeUndefined();
    cas.set("initech", initech);
    const intermediate = new X509Certificate(initech.intermediate.pem).toString();
    for (let waited = 0; !bundles.pems.includes(intermediate); waited += 50) {
      if (waited > 5000) throw new Error("the new tenant's CA was not read");
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const peer = await peerSeenWith({ key: agent, chain: [agent] });
    expect(Buffer.from(peer?.clientCertificate?.leaf ?? [])).toEqual(derOf(agent));
    // The replaced TLS context still speaks TLS 1.3 only.
    const port = Number(address.slice(address.lastIndexOf(":") + 1));
    const outcome = await new Promise<string>((resolve) => {
      const socket = connect({
        host: "localhost",
        port,
        ca: deployment.pem,
        maxVersion: "TLSv1.2",
        ALPNProtocols: ["h2"],
      });
      socket.once("secureConnect", () => {
        resolve(`connected with ${socket.getProtocol()}`);
        socket.destroy();
      });
      socket.once("error", (error) => resolve(`refused: ${(error as NodeJS.ErrnoException).code}`));
    });
    expect(outcome).toMatch(/^refused/);
  });

  it("take an outside caller's certificate from a forwarding Mandate service's header, and from no one else", async () => {
    const acme = cas.get("acme") as TenantCa;
    const agent = leafCertificate(acme.intermediate, { uris: [agentId("acme", "a1")] });
    const forwarded = new grpc.Metadata();
    forwarded.set(FORWARDED_FOR_HEADER, "192.0.2.7");
    forwarded.set(
      FORWARDED_CLIENT_CERT_HEADER,
      [agent, acme.intermediate].map((c) => derOf(c).toString("base64")).join(","),
    );
    const edge = leafCertificate(deployment, { uris: [`spiffe://${TRUST_DOMAIN}/mandate/edge`] });
    const viaEdge = await peerSeenWith({ key: edge, chain: [edge] }, forwarded);
    expect(viaEdge).toMatchObject({ service: "edge", forwarded: true, address: "192.0.2.7" });
    expect(Buffer.from(viaEdge?.clientCertificate?.leaf ?? [])).toEqual(derOf(agent));
    expect(viaEdge?.clientCertificate?.chain.map((der) => Buffer.from(der))).toEqual([derOf(acme.intermediate)]);
    // Split deployments host the edge with Issue: a process of another Mandate service forwards as well.
    const issue = leafCertificate(deployment, { uris: [`spiffe://${TRUST_DOMAIN}/mandate/issue`] });
    const viaIssue = await peerSeenWith({ key: issue, chain: [issue] }, forwarded);
    expect(Buffer.from(viaIssue?.clientCertificate?.leaf ?? [])).toEqual(derOf(agent));
    // An agent, or a caller without certificate, sending the header: not believed.
    const other = leafCertificate(acme.intermediate, { uris: [agentId("acme", "a2")] });
    const fromAgent = await peerSeenWith({ key: other, chain: [other] }, forwarded);
    expect(Buffer.from(fromAgent?.clientCertificate?.leaf ?? [])).toEqual(derOf(other));
    expect((await peerSeenWith(undefined, forwarded))?.clientCertificate).toBeUndefined();
    // A service that does not say it forwards: its own call, no outside caller's certificate.
    const notForwarded = new grpc.Metadata();
    notForwarded.set(FORWARDED_CLIENT_CERT_HEADER, derOf(agent).toString("base64"));
    expect((await peerSeenWith({ key: issue, chain: [issue] }, notForwarded))?.clientCertificate).toBeUndefined();
  });

  it("read no certificate from a caller that presents none", async () => {
    const peer = await peerSeenWith();
    expect(peer).toMatchObject({ transport: "grpc", service: undefined });
    expect(peer?.clientCertificate).toBeUndefined();
  });
});
