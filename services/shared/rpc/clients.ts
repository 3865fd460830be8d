// How one service reaches another: in the same process through the same wrapped implementation
// (so access, validation and errors are identical), its unary calls handed over as messages
// (direct-transport.ts) and its streams through an in-memory Connect transport; in another process
// over native gRPC at the configured address. Callers get the same typed client either way.
import type { DescService } from "@bufbuild/protobuf";
import {
  type Client,
  createClient,
  createRouterTransport,
  type HandlerContext,
  type Transport,
} from "@connectrpc/connect";
import { createGrpcTransport, type Http2SessionOptions } from "@connectrpc/connect-node";
import { context as otelContext, propagation } from "@opentelemetry/api";
import { unavailable } from "../errors.ts";
import { FORWARDED_CLIENT_CERT_HEADER, FORWARDED_FOR_HEADER, PEER } from "./access.ts";
import { directTransport } from "./direct-transport.ts";
import type { BoundService } from "./grpc-server.ts";
import type { TlsFiles } from "./mtls.ts";
import { retryRefusedStreams } from "./refused-stream.ts";

/**
 * HTTP/2 keepalive for sessions to other Mandate processes. A peer that vanished without closing its
 * connections (a killed pod or container whose address is gone) answers nothing, not even a reset:
 * without PINGs a call on that session would wait for its deadline, and a stream for ever. With them,
 * a session idle longer than the interval is checked before it is used (and replaced if dead), and a
 * session with open streams is checked every interval.
 */
export const PEER_SESSIONS: Http2SessionOptions = { pingIntervalMs: 30_000, pingTimeoutMs: 10_000 };

export class ServiceClients {
  readonly #local = new Map<string, BoundService>();
  readonly #remote: Map<string, string>;
  readonly #tls: TlsFiles | undefined;
  readonly #transports = new Map<string, Transport>();
  /** One HTTP/2 session per remote address, shared by every service (and health check) behind it. */
  readonly #remoteTransports = new Map<string, { transport: Transport; generation: number }>();

  /**
   * `remote` maps a service's full name (mandate.v1.Signer) to its gRPC address (host:port); with
   * `tls`, calls to other processes use mTLS and the server must be a service configured there.
   */
  readonly #sessions: Http2SessionOptions;

  constructor(remote: Map<string, string>, tls?: TlsFiles, sessions: Http2SessionOptions = PEER_SESSIONS) {
    this.#remote = remote;
    this.#tls = tls;
    this.#sessions = sessions;
  }

  addLocal(bound: BoundService): void {
    this.#local.set(bound.service.typeName, bound);
  }

  isLocal(service: DescService): boolean {
    return this.#local.has(service.typeName);
  }

  isReachable(service: DescService): boolean {
    return this.#local.has(service.typeName) || this.#remote.has(service.typeName);
  }

  get<S extends DescService>(service: S): Client<S> {
    return createClient(service, this.#transport(service));
  }

  #transport(service: DescService): Transport {
    const cached = this.#transports.get(service.typeName);
    if (cached) return cached;
    const local = this.#local.get(service.typeName);
    const address = this.#remote.get(service.typeName);
    let transport: Transport;
    if (local) {
      const router = createRouterTransport((routes) => routes.service(local.service, local.impl as never));
      transport = directTransport(local.service, local.impl, router);
    } else if (address) {
      // Not cached here: the remote transport is renewed when the certificates change.
      return this.remoteTransport(address);
    } else {
      throw unavailable(
        `${service.typeName} runs in another process but no address is configured: set services.<name> or MANDATE_<NAME>_ADDRESS`,
        "SERVICE_ADDRESS_MISSING",
      );
    }
    this.#transports.set(service.typeName, transport);
    return transport;
  }

  /** The shared native-gRPC transport to another Mandate process at `address` (host:port). */
  remoteTransport(address: string): Transport {
    const tls = this.#tls;
    const generation = tls?.generation ?? 0;
    const cached = this.#remoteTransports.get(address);
    if (cached && cached.generation === generation) return cached.transport;
    const common = { ...this.#sessions, interceptors: [retryRefusedStreams] };
    const transport = tls
      ? createGrpcTransport({
          ...common,
          baseUrl: `https://${address}`,
          nodeOptions: tls.clientOptions(this.#servicesAt(address)),
        })
      : createGrpcTransport({ ...common, baseUrl: `http://${address}` });
    this.#remoteTransports.set(address, { transport, generation });
    return transport;
  }

  /** Short names of the services configured at an address: the identities its certificate may carry. */
  #servicesAt(address: string): string[] {
    return [...this.#remote]
      .filter(([, at]) => at === address)
      .map(([typeName]) => (typeName.split(".").at(-1) as string).toLowerCase());
  }
}

/**
 * An implementation that forwards every call to the service's client: what the edge registers for a
 * service hosted in another process, so gRPC-Web reaches the one real implementation there. The
 * caller's credentials and address travel with the call; the edge's own identity grants nothing.
 */
export function forwardingImpl(service: DescService, clients: ServiceClients): object {
  const forwards: Record<string, unknown> = {};
  for (const method of service.methods) {
    forwards[method.localName] = (request: unknown, context: HandlerContext) => {
      const client = clients.get(service) as Record<string, (req: unknown, options: object) => unknown>;
      const call = client[method.localName] as (req: unknown, options: object) => unknown;
      const headers = new Headers();
      propagation.inject(otelContext.active(), headers, { set: (carrier, key, value) => carrier.set(key, value) });
      // The caller's credentials go along; the process hosting the service checks them.
      for (const name of ["authorization", "dpop"]) {
        const value = context.requestHeader.get(name);
        if (value !== null) headers.set(name, value);
      }
      // Always set: it also tells the other process that the edge's own identity must not count.
      const peer = context.values.get(PEER);
      headers.set(FORWARDED_FOR_HEADER, peer?.address ?? "unknown");
      // The caller's client certificate too (RFC 8705: a token bound to it is checked over there).
      const certificate = peer?.clientCertificate;
      if (certificate) {
        const encoded = [certificate.leaf, ...certificate.chain].map((der) => Buffer.from(der).toString("base64"));
        headers.set(FORWARDED_CLIENT_CERT_HEADER, encoded.join(","));
      }
      return call(request, { signal: context.signal, timeoutMs: context.timeoutMs(), headers });
    };
  }
  return forwards;
}
