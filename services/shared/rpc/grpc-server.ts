// Native gRPC on @grpc/grpc-js, built from the generated descriptors: for every method of every
// service, grpc-js gets a definition whose (de)serialisers are protobuf-es's, and a handler that
// calls the one shared implementation with a Connect HandlerContext. Adds server reflection (v1 and
// v1alpha) over the same descriptors, message-size limits and graceful, draining shutdown.
import { create, type DescMethod, type DescService, fromBinary, toBinary } from "@bufbuild/protobuf";
import { anyPack, FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { type ConnectError, createContextValues, createHandlerContext, type HandlerContext } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { ReflectionService } from "@grpc/reflection";
import { StatusSchema } from "../../../gen/google/rpc/status_pb.js";
import { invalidArgument, toPublicError, unavailable } from "../errors.ts";
import type { PresentedCertificate } from "../x509/types.ts";
import { FORWARDED_CLIENT_CERT_HEADER, FORWARDED_FOR_HEADER, PEER, type Peer } from "./access.ts";
import type { PeerIdentity } from "./mtls.ts";

export interface GrpcServerOptions {
  maxReceiveMessageBytes: number;
  maxSendMessageBytes: number;
  /** The Mandate service a verified client certificate names (mTLS); absent without TLS. */
  peerIdentity?: PeerIdentity | undefined;
}

/** A bound service: its descriptor and its complete (wrapped) implementation. */
export interface BoundService {
  service: DescService;
  impl: object;
}

const MALFORMED = Symbol("malformed");
interface Malformed {
  [MALFORMED]: Error;
}

/**
 * Each server's open server streams, as functions that end one. A stream (a revocation feed) never
 * finishes on its own: a graceful shutdown ends them first, so it does not wait out its whole grace
 * period for them, and their callers reconnect (to another replica) at once.
 */
const openStreams = new WeakMap<grpc.Server, Set<() => void>>();

export function createGrpcServer(services: BoundService[], options: GrpcServerOptions): grpc.Server {
  const server = new grpc.Server({
    "grpc.max_receive_message_length": options.maxReceiveMessageBytes,
    "grpc.max_send_message_length": options.maxSendMessageBytes,
    "grpc.keepalive_permit_without_calls": 1,
    interceptors: [clientFaultsAreInvalidArgument],
  });
  const streams = new Set<() => void>();
  openStreams.set(server, streams);
  for (const { service, impl } of services) {
    const definition: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
    const handlers: grpc.UntypedServiceImplementation = {};
    for (const method of service.methods) {
      definition[method.localName] = methodDefinition(service, method);
      const fn = (impl as Record<string, (req: unknown, ctx: HandlerContext) => unknown>)[method.localName];
      if (!fn) throw new Error(`${service.typeName}/${method.name} has no implementation`);
      handlers[method.localName] =
        method.methodKind === "server_streaming"
          ? serverStreamingHandler(service, method, fn, options.peerIdentity, streams)
          : unaryHandler(service, method, fn, options.peerIdentity);
    }
    server.addService(definition as grpc.ServiceDefinition, handlers);
  }
  new ReflectionService(reflectionPackage(services.map((s) => s.service)) as never).addToServer(server);
  return server;
}

export function bindGrpcServer(
  server: grpc.Server,
  host: string,
  port: number,
  credentials: grpc.ServerCredentials = grpc.ServerCredentials.createInsecure(),
): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(`${host.includes(":") ? `[${host}]` : host}:${port}`, credentials, (error, boundPort) =>
      error ? reject(error) : resolve(boundPort),
    );
  });
}

/**
 * Stops accepting calls, ends open server streams with UNAVAILABLE (their callers reconnect), lets
 * in-flight unary calls finish for up to `graceMs`, then cuts the rest.
 */
export function shutdownGrpcServer(server: grpc.Server, graceMs: number): Promise<void> {
  for (const end of openStreams.get(server) ?? []) end();
  return new Promise((resolve) => {
    const force = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(force);
      resolve();
    });
  });
}

function methodDefinition(service: DescService, method: DescMethod): grpc.MethodDefinition<unknown, unknown> {
  return {
    path: `/${service.typeName}/${method.name}`,
    requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
    responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
    requestSerialize: (message) => Buffer.from(toBinary(method.input, create(method.input, message as never))),
    // Never throws: a malformed payload is answered INVALID_ARGUMENT by the handler, not INTERNAL.
    requestDeserialize: (bytes: Buffer): unknown => {
      try {
        return fromBinary(method.input, bytes);
      } catch (error) {
        return { [MALFORMED]: error as Error } satisfies Malformed;
      }
    },
    responseSerialize: (message) => Buffer.from(toBinary(method.output, create(method.output, message as never))),
    responseDeserialize: (bytes: Buffer) => fromBinary(method.output, bytes),
    originalName: method.localName,
  };
}

/**
 * grpc-js answers two faults of the caller's request with INTERNAL before any handler runs: a
 * compressed message that does not decompress, and a grpc-timeout header that is not one
 * (PROTOCOL-HTTP2: TimeoutValue is 1-8 digits and a unit). Neither is the server failing: both are
 * INVALID_ARGUMENT, as an undecodable message is (requestDeserialize). grpc-js sends these statuses
 * from its own call object (the innermost, which this interceptor receives), through its public
 * sendStatus, so an override on that object sees them (without the google.rpc.Status details every
 * status of ours carries); every other status passes unchanged.
 */
const CLIENT_FAULTS = [/^Failed to decompress message$/, /^Invalid grpc-timeout value /];

function clientFaultsAreInvalidArgument(
  _method: grpc.ServerMethodDefinition<unknown, unknown>,
  call: grpc.ServerInterceptingCallInterface,
): grpc.ServerInterceptingCall {
  const sendStatus = call.sendStatus.bind(call);
  call.sendStatus = (status) =>
    sendStatus(
      status.code === grpc.status.INTERNAL &&
        // Ours always carry google.rpc.Status details (toServiceError); grpc-js's own carry no metadata.
        !status.metadata?.get("grpc-status-details-bin").length &&
        CLIENT_FAULTS.some((fault) => fault.test(status.details ?? ""))
        ? { ...status, code: grpc.status.INVALID_ARGUMENT, details: `the request is malformed: ${status.details}` }
        : status,
    );
  // The call itself, not a wrapper around it: an extra intercepting layer would cost every call.
  return call as grpc.ServerInterceptingCall;
}

type Call = grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>;

function handlerContext(
  service: DescService,
  method: DescMethod,
  call: Call,
  peerIdentity: PeerIdentity | undefined,
  /** Aborts the call's signal: the client's cancellation, or the server's shutdown for a stream. */
  controller = new AbortController(),
): HandlerContext {
  const deadline = call.getDeadline();
  const deadlineMs = deadline instanceof Date ? deadline.getTime() : Number(deadline);
  const timeoutMs = Number.isFinite(deadlineMs) ? Math.max(0, deadlineMs - Date.now()) : undefined;
  call.on("cancelled", () => controller.abort(new Error("cancelled by the client or deadline exceeded")));
  // Every value of every text key: a repeated header (two DPoP proofs) must stay visible to the checks.
  // As pairs, not Headers: createHandlerContext copies whatever it gets into a Headers of its own.
  const requestHeader: [string, string][] = [];
  for (const [key, values] of Object.entries(call.metadata.toJSON())) {
    if (key.endsWith("-bin")) continue;
    for (const value of values) if (typeof value === "string") requestHeader.push([key, value]);
  }
  return createHandlerContext({
    contextValues: createContextValues().set(PEER, peerOf(call, requestHeader, peerIdentity)),
    service,
    method,
    protocolName: "grpc",
    requestMethod: "POST",
    url: `/${service.typeName}/${method.name}`,
    timeoutMs,
    requestSignal: controller.signal,
    requestHeader,
  });
}

/**
 * The transport's facts about the caller: its address and, with mTLS, the Mandate service it is, or
 * else the client certificate it presented (an agent's: verified by TLS against some CA the server
 * trusts, which authenticates no one yet; never a service's, see mtls.ts peerIdentity).
 */
function peerOf(call: Call, header: readonly [string, string][], peerIdentity: PeerIdentity | undefined): Peer {
  const certificate = call.getAuthContext()?.sslPeerCertificate;
  const service = certificate && peerIdentity ? peerIdentity(certificate) : undefined;
  // grpc-js reports "<remote address>:<port>" (IPv6 unbracketed), or "unknown".
  const raw = call.getPeer();
  const socket = raw.includes(":") ? raw.slice(0, raw.lastIndexOf(":")) : undefined;
  // Only another Mandate service (the edge) may say on whose behalf it calls.
  const forwardedFor = headerValue(header, FORWARDED_FOR_HEADER);
  const forwarded = forwardedFor !== null;
  const address = service && forwarded && forwardedFor !== "unknown" ? forwardedFor : socket;
  const clientCertificate =
    service && forwarded
      ? forwardedCertificate(headerValue(header, FORWARDED_CLIENT_CERT_HEADER))
      : certificate && !service
        ? ({ leaf: new Uint8Array(certificate.raw), chain: [], source: "tls" } satisfies PresentedCertificate)
        : undefined;
  return { transport: "grpc", address, service, forwarded, ...(clientCertificate ? { clientCertificate } : {}) };
}

/** A (lower-case) metadata key's values joined by ", " as Headers.get joins them, or null. */
function headerValue(header: readonly [string, string][], key: string): string | null {
  const values = header.filter(([name]) => name === key).map(([, value]) => value);
  return values.length > 0 ? values.join(", ") : null;
}

/**
 * The outside caller's certificate as the edge forwards it (FORWARDED_CLIENT_CERT_HEADER), with
 * source "tls": the edge's mTLS listener or its configured proxy vouched for it. A value that is not
 * base64 is ignored (no certificate).
 */
function forwardedCertificate(value: string | null): PresentedCertificate | undefined {
  if (!value) return undefined;
  const parts = value.split(",").map((part) => part.trim());
  if (parts.some((part) => !/^[A-Za-z0-9+/]+={0,2}$/.test(part))) return undefined;
  const [leaf, ...chain] = parts.map((part) => new Uint8Array(Buffer.from(part, "base64")));
  return leaf ? { leaf, chain, source: "tls" } : undefined;
}

function rejectMalformed(request: unknown): void {
  if (request !== null && typeof request === "object" && MALFORMED in request) {
    throw invalidArgument(
      [
        {
          field: "(request)",
          description: `not a valid protobuf message: ${(request as Malformed)[MALFORMED].message}`,
        },
      ],
      "request message could not be decoded",
    );
  }
}

function unaryHandler(
  service: DescService,
  method: DescMethod,
  fn: (req: unknown, ctx: HandlerContext) => unknown,
  peerIdentity: PeerIdentity | undefined,
): grpc.handleUnaryCall<unknown, unknown> {
  return (call, callback) => {
    const context = handlerContext(service, method, call, peerIdentity);
    Promise.resolve()
      .then(() => {
        rejectMalformed(call.request);
        return fn(call.request, context);
      })
      .then(
        (response) => callback(null, response),
        (error: unknown) => callback(toServiceError(error)),
      );
  };
}

function serverStreamingHandler(
  service: DescService,
  method: DescMethod,
  fn: (req: unknown, ctx: HandlerContext) => unknown,
  peerIdentity: PeerIdentity | undefined,
  open: Set<() => void>,
): grpc.handleServerStreamingCall<unknown, unknown> {
  return async (call) => {
    const controller = new AbortController();
    const context = handlerContext(service, method, call, peerIdentity, controller);
    let ended = false;
    // grpc-js ends a server stream with a status through an 'error' event (destroy() would drop it).
    const fail = (error: unknown) => {
      if (ended || call.cancelled) return;
      ended = true;
      call.emit("error", toServiceError(error));
    };
    const endForShutdown = () => {
      const error = unavailable("the server is shutting down: reconnect", "SHUTTING_DOWN");
      fail(error);
      controller.abort(error); // the implementation's iteration stops at its signal
    };
    open.add(endForShutdown);
    try {
      rejectMalformed(call.request);
      for await (const message of fn(call.request, context) as AsyncIterable<unknown>) {
        if (ended || call.cancelled) return;
        if (!call.write(message)) await new Promise((resolve) => call.once("drain", resolve));
      }
      if (!ended) {
        ended = true;
        call.end();
      }
    } catch (error) {
      fail(error);
    } finally {
      open.delete(endForShutdown);
    }
  };
}

/** A gRPC status with its google.rpc.Status (and details) in `grpc-status-details-bin`. */
export function toServiceError(error: unknown): grpc.ServiceError {
  const { error: publicError } = toPublicError(error);
  const metadata = new grpc.Metadata();
  // Response metadata the error carries (www-authenticate, retry-after) travels as trailers; a value
  // a header cannot carry is dropped rather than failing the answer (grpc-js throws on it).
  for (const [key, value] of publicError.metadata) {
    try {
      metadata.set(key, value);
    } catch {
      // (nothing: the status and its details still go out)
    }
  }
  const details = detailsOf(publicError);
  const status = create(StatusSchema, { code: publicError.code, message: publicError.rawMessage, details });
  metadata.set("grpc-status-details-bin", Buffer.from(toBinary(StatusSchema, status)));
  return Object.assign(new Error(publicError.rawMessage), {
    code: publicError.code as number as grpc.status,
    details: publicError.rawMessage,
    metadata,
  });
}

function detailsOf(error: ConnectError) {
  return error.details.flatMap((detail) =>
    "desc" in detail ? [anyPack(detail.desc, create(detail.desc, detail.value as never))] : [],
  );
}

/** The shape @grpc/reflection reads: serialized FileDescriptorProtos of every file and dependency. */
function reflectionPackage(services: DescService[]): Record<string, { fileDescriptorProtos: Buffer[] }> {
  const files = new Map<string, Buffer>();
  const visit = (file: DescService["file"]) => {
    if (files.has(file.proto.name)) return;
    for (const dependency of file.dependencies) visit(dependency);
    files.set(file.proto.name, Buffer.from(toBinary(FileDescriptorProtoSchema, file.proto)));
  };
  for (const service of services) visit(service.file);
  const fileDescriptorProtos = [...files.values()];
  return Object.fromEntries(services.map((s) => [s.typeName, { fileDescriptorProtos }]));
}
