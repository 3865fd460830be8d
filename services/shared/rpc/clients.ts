// How one service reaches another: in the same process through an in-memory Connect transport
// over the same wrapped implementation (so validation and errors are identical), in another
// process over native gRPC at the configured address. Callers get the same typed client either way.
import type { DescService } from "@bufbuild/protobuf";
import {
  type Client,
  createClient,
  createRouterTransport,
  type HandlerContext,
  type Transport,
} from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { context as otelContext, propagation } from "@opentelemetry/api";
import { unavailable } from "../errors.ts";
import type { BoundService } from "./grpc-server.ts";

export class ServiceClients {
  readonly #local = new Map<string, BoundService>();
  readonly #remote: Map<string, string>;
  readonly #transports = new Map<string, Transport>();
  /** One HTTP/2 session per remote address, shared by every service (and health check) behind it. */
  readonly #remoteTransports = new Map<string, Transport>();

  /** `remote` maps a service's full name (mandate.v1.Signer) to its gRPC address (host:port). */
  constructor(remote: Map<string, string>) {
    this.#remote = remote;
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
      transport = createRouterTransport((router) => router.service(local.service, local.impl as never));
    } else if (address) {
      transport = this.remoteTransport(address);
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
    let transport = this.#remoteTransports.get(address);
    if (!transport) {
      transport = createGrpcTransport({ baseUrl: `http://${address}` });
      this.#remoteTransports.set(address, transport);
    }
    return transport;
  }
}

/**
 * An implementation that forwards every call to the service's client: what the edge registers for a
 * service hosted in another process, so gRPC-Web reaches the one real implementation there.
 */
export function forwardingImpl(service: DescService, clients: ServiceClients): object {
  const forwards: Record<string, unknown> = {};
  for (const method of service.methods) {
    forwards[method.localName] = (request: unknown, context: HandlerContext) => {
      const client = clients.get(service) as Record<string, (req: unknown, options: object) => unknown>;
      const call = client[method.localName] as (req: unknown, options: object) => unknown;
      const headers = new Headers();
      propagation.inject(otelContext.active(), headers, { set: (carrier, key, value) => carrier.set(key, value) });
      return call(request, { signal: context.signal, timeoutMs: context.timeoutMs(), headers });
    };
  }
  return forwards;
}
