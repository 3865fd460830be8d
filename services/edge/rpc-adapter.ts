// The edge's RPC adapter: connect-node's, plus one check it lacks. Connect answers a request body it
// cannot decode — bytes that are not a protobuf message, invalid UTF-8 in a string field, nesting
// past protobuf-es's depth limit, a compressed frame with no encoding to decompress it — with
// INTERNAL (HTTP 500), as if the server had failed; the caller sent garbage, which is
// INVALID_ARGUMENT (HTTP 400). So request bodies are read (within the size limit Connect applies
// anyway), decompressed and decoded once here first, for every protocol and codec the router serves
// (Connect unary POST and GET, Connect streaming, gRPC-Web; binary and JSON); a malformed one is
// answered in the caller's protocol, a sound one goes on to Connect's handler unchanged. JSON text
// must be UTF-8 without replacement (RFC 8259 §8.1).
import type { IncomingMessage, ServerResponse } from "node:http";
import { type DescMethod, fromBinary, fromJsonString } from "@bufbuild/protobuf";
import { base64Decode } from "@bufbuild/protobuf/wire";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ConnectRouter, type ContextValues, createConnectRouter } from "@connectrpc/connect";
import {
  type Compression,
  createAsyncIterable,
  readAllBytes,
  type UniversalServerRequest,
} from "@connectrpc/connect/protocol";
import {
  codeToHttpStatus,
  errorToJson,
  errorToJsonBytes,
  parseContentType as parseConnectContentType,
} from "@connectrpc/connect/protocol-connect";
import { parseContentType as parseGrpcWebContentType } from "@connectrpc/connect/protocol-grpc-web";
import {
  compressionBrotli,
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from "@connectrpc/connect-node";
import { decodeUtf8, parseFormStrict } from "../shared/text.ts";

export interface RpcAdapterOptions {
  routes(router: ConnectRouter): void;
  readMaxBytes: number;
  shutdownSignal: AbortSignal;
  contextValues(req: IncomingMessage): ContextValues;
  /** Requests for no registered method. */
  fallback(req: IncomingMessage, res: ServerResponse): void;
  /** A call that could not be answered; `aborted`: because the client went away (its doing, not ours). */
  onFailure(error: unknown, method: DescMethod, aborted: boolean): void;
}

const COMPRESSIONS: Compression[] = [compressionGzip, compressionBrotli];

export function createRpcAdapter(options: RpcAdapterOptions) {
  const router = createConnectRouter({
    grpcWeb: true,
    connect: true,
    grpc: false,
    readMaxBytes: options.readMaxBytes,
    shutdownSignal: options.shutdownSignal,
    acceptCompression: COMPRESSIONS,
  });
  options.routes(router);
  const handlers = new Map(router.handlers.map((handler) => [handler.requestPath, handler]));
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const handler = handlers.get((req.url ?? "").split("?", 1)[0] ?? "");
    if (!handler) return options.fallback(req, res);
    const received = universalRequestFromNodeRequest(req, res, undefined, options.contextValues(req));
    // GET is Connect's for methods without side effects; for the rest Connect answers 405 itself.
    const get = req.method === "GET";
    const framing =
      get && handler.method.idempotency !== MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS ? undefined : framingOf(req);
    const request = framing
      ? await checkedRequest(received, { req, res, framing, method: handler.method }, options)
      : received;
    if (!request) return;
    try {
      await universalResponseToNodeResponse(await handler(request), res);
    } catch (error) {
      const aborted = ConnectError.from(error).code === Code.Aborted || clientWentAway(req, res);
      options.onFailure(error, handler.method, aborted);
    }
  };
}

/** One call in flight: the exchange, how its messages travel, and the method called. */
interface Call {
  req: IncomingMessage;
  res: ServerResponse;
  framing: Framing;
  method: DescMethod;
}

/**
 * The request once its body is known to decode (read into memory on the way, and handed on as
 * such), or undefined when it has been answered already.
 */
async function checkedRequest(
  request: UniversalServerRequest,
  call: Call,
  options: RpcAdapterOptions,
): Promise<UniversalServerRequest | undefined> {
  const { req, res, framing, method } = call;
  let checked = request;
  let bytes: Uint8Array | undefined;
  const body = request.body;
  if (req.method === "POST" && body && typeof body === "object" && Symbol.asyncIterator in body) {
    try {
      bytes = await readAllBytes(body, options.readMaxBytes);
    } catch (error) {
      if (clientWentAway(req, res)) options.onFailure(error, method, true);
      // Over the size limit (RESOURCE_EXHAUSTED) or cut short.
      else refuse(res, framing, ConnectError.from(error, Code.InvalidArgument));
      return undefined;
    }
    checked = { ...request, body: createAsyncIterable([bytes]) };
  }
  const problem = await undecodable(method, req, framing, bytes, options.readMaxBytes);
  if (!problem) return checked;
  refuse(res, framing, problem);
  return undefined;
}

/** The client closed the connection before the exchange ended. */
function clientWentAway(req: IncomingMessage, res: ServerResponse): boolean {
  return (req.destroyed && !req.complete) || (res.destroyed && !res.writableFinished);
}

interface Framing {
  protocol: "connect" | "connect-stream" | "grpc-web";
  binary: boolean;
  /** The request's declared message encoding (compression), if any. */
  encoding: string | undefined;
}

/** How the request's messages travel, for the protocols and codecs the router serves; undefined: Connect judges. */
function framingOf(req: IncomingMessage): Framing | undefined {
  const header = (name: string) => {
    const value = req.headers[name];
    return (Array.isArray(value) ? value[0] : value)?.trim().toLowerCase() || undefined;
  };
  if (req.method === "GET") {
    // Connect unary GET (NO_SIDE_EFFECTS methods): the message is in the query.
    const query = new URLSearchParams((req.url ?? "").split("?")[1] ?? "");
    const encoding = query.get("encoding");
    if (encoding !== "proto" && encoding !== "json") return undefined;
    return { protocol: "connect", binary: encoding === "proto", encoding: query.get("compression") ?? undefined };
  }
  if (req.method !== "POST") return undefined;
  const contentType = header("content-type") ?? "";
  const connect = parseConnectContentType(contentType);
  if (connect) {
    return connect.stream
      ? { protocol: "connect-stream", binary: connect.binary, encoding: header("connect-content-encoding") }
      : { protocol: "connect", binary: connect.binary, encoding: header("content-encoding") };
  }
  const grpcWeb = parseGrpcWebContentType(contentType);
  if (grpcWeb && !grpcWeb.text)
    return { protocol: "grpc-web", binary: grpcWeb.binary, encoding: header("grpc-encoding") };
  return undefined;
}

/** How one request's messages are decoded. */
interface Decoding {
  method: DescMethod;
  binary: boolean;
  compression: Compression | undefined;
  readMaxBytes: number;
}

/** Why the request is not a decodable request of `method` in its framing, or undefined when it decodes. */
async function undecodable(
  method: DescMethod,
  req: IncomingMessage,
  framing: Framing,
  body: Uint8Array | undefined,
  readMaxBytes: number,
): Promise<ConnectError | undefined> {
  const compression = compressionOf(framing);
  // An encoding we do not speak: Connect answers UNIMPLEMENTED with the ones we do (gRPC compression spec).
  if (compression === null) return undefined;
  const decoding = { method, binary: framing.binary, compression, readMaxBytes };
  try {
    if (framing.protocol !== "connect") return await undecodableEnvelopes(decoding, body ?? new Uint8Array(0));
    await decodeUnary(decoding, req.method === "GET" ? messageInQuery(req) : (body ?? new Uint8Array(0)));
    return undefined;
  } catch (error) {
    // Decompression reports its own code (INVALID_ARGUMENT, RESOURCE_EXHAUSTED past the limit).
    if (error instanceof ConnectError && error.code !== Code.Internal && error.code !== Code.Unknown) return error;
    const what = framing.binary ? "not a valid protobuf message" : "not a valid JSON message";
    return malformed(`${what}: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/** The compression the request declares: none (undefined), one we speak, or null for one we do not. */
function compressionOf(framing: Framing): Compression | undefined | null {
  const encoding = framing.encoding === "identity" ? undefined : framing.encoding;
  if (encoding === undefined) return undefined;
  return COMPRESSIONS.find((c) => c.name === encoding) ?? null;
}

function malformed(message: string): ConnectError {
  return new ConnectError(`the request is malformed: ${message}`, Code.InvalidArgument);
}

/** The message of a Connect unary GET: every query parameter must be UTF-8 text; the message may be base64. */
function messageInQuery(req: IncomingMessage): Uint8Array {
  const query = new Map(parseFormStrict((req.url ?? "").split("?")[1] ?? ""));
  const message = query.get("message") ?? "";
  return query.get("base64") === "1" ? base64Decode(message) : new TextEncoder().encode(message);
}

/** A Connect unary message: the whole body (or query message), compressed as a whole when encoded. */
async function decodeUnary(decoding: Decoding, bytes: Uint8Array): Promise<void> {
  const message = decoding.compression ? await decoding.compression.decompress(bytes, decoding.readMaxBytes) : bytes;
  decode(decoding.method, decoding.binary, message);
}

/** Enveloped messages (Connect streaming, gRPC-Web), each decoded in turn. */
async function undecodableEnvelopes(decoding: Decoding, bytes: Uint8Array): Promise<ConnectError | undefined> {
  let offset = 0;
  while (offset < bytes.byteLength) {
    const envelope = envelopeAt(bytes, offset);
    if (envelope instanceof ConnectError) return envelope;
    let data = envelope.data;
    if (envelope.compressed) {
      if (!decoding.compression) return malformed("a frame is marked compressed, but the request names no encoding");
      data = await decoding.compression.decompress(data, decoding.readMaxBytes);
    }
    decode(decoding.method, decoding.binary, data);
    offset = envelope.end;
  }
  return undefined;
}

/** The envelope at `offset`: flags (1 byte), length (4 bytes, big endian), data; or why it is not one. */
function envelopeAt(
  bytes: Uint8Array,
  offset: number,
): { compressed: boolean; data: Uint8Array; end: number } | ConnectError {
  if (bytes.byteLength - offset < 5) return malformed("a frame header is cut short");
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, 5);
  const flags = view.getUint8(0);
  const end = offset + 5 + view.getUint32(1);
  if (end > bytes.byteLength) return malformed("a frame is longer than the body");
  // A request carries message frames only: the end-of-stream and trailer flags are the server's.
  if ((flags & ~0x01) !== 0) return malformed(`a request frame has flags 0x${flags.toString(16)}`);
  return { compressed: (flags & 0x01) !== 0, data: bytes.subarray(offset + 5, end), end };
}

function decode(method: DescMethod, binary: boolean, bytes: Uint8Array): void {
  if (binary) fromBinary(method.input, bytes);
  else fromJsonString(method.input, decodeUtf8(bytes, "the JSON message"), { ignoreUnknownFields: true });
}

/** Answers `error` in the caller's protocol, without reaching a handler. */
function refuse(res: ServerResponse, framing: Framing, error: ConnectError): void {
  if (res.headersSent || res.destroyed) return;
  if (framing.protocol === "connect") {
    // Connect unary: an HTTP status for the code and a JSON error body.
    const body = errorToJsonBytes(error, {});
    res.writeHead(codeToHttpStatus(error.code), {
      "content-type": "application/json",
      "content-length": body.byteLength,
    });
    res.end(body);
    return;
  }
  if (framing.protocol === "connect-stream") {
    // Connect streaming: HTTP 200 and a single end-of-stream envelope (flag 0x02) holding the error.
    const json = Buffer.from(JSON.stringify({ error: errorToJson(error, {}) }));
    const envelope = Buffer.alloc(5 + json.byteLength);
    envelope.writeUInt8(0x02, 0);
    envelope.writeUInt32BE(json.byteLength, 1);
    json.copy(envelope, 5);
    res.writeHead(200, {
      "content-type": framing.binary ? "application/connect+proto" : "application/connect+json",
      "content-length": envelope.byteLength,
    });
    res.end(envelope);
    return;
  }
  // gRPC-Web: a trailers-only response, the status in the headers.
  res.writeHead(200, {
    "content-type": framing.binary ? "application/grpc-web+proto" : "application/grpc-web+json",
    "grpc-status": String(error.code),
    "grpc-message": encodeURIComponent(error.rawMessage),
  });
  res.end();
}
