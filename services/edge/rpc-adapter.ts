// The edge's RPC adapter: connect-node's, plus one check it lacks. Connect answers a binary body
// that is not a protobuf message with INTERNAL (HTTP 500), as if the server had failed; the caller
// sent garbage, which is INVALID_ARGUMENT (HTTP 400). So binary bodies are read (within the size
// limit Connect applies anyway) and decoded once here first; a malformed one is answered in the
// caller's protocol, a sound one goes on to Connect's handler unchanged.
import type { IncomingMessage, ServerResponse } from "node:http";
import { type DescMethod, fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter, type ContextValues, createConnectRouter } from "@connectrpc/connect";
import { createAsyncIterable, readAllBytes } from "@connectrpc/connect/protocol";
import { codeToHttpStatus, codeToString } from "@connectrpc/connect/protocol-connect";
import {
  compressionBrotli,
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from "@connectrpc/connect-node";

export interface RpcAdapterOptions {
  routes(router: ConnectRouter): void;
  readMaxBytes: number;
  shutdownSignal: AbortSignal;
  contextValues(req: IncomingMessage): ContextValues;
  /** Requests for no registered method. */
  fallback(req: IncomingMessage, res: ServerResponse): void;
  onFailure(error: unknown, method: DescMethod): void;
}

export function createRpcAdapter(options: RpcAdapterOptions) {
  const router = createConnectRouter({
    grpcWeb: true,
    connect: true,
    grpc: false,
    readMaxBytes: options.readMaxBytes,
    shutdownSignal: options.shutdownSignal,
    acceptCompression: [compressionGzip, compressionBrotli],
  });
  options.routes(router);
  const handlers = new Map(router.handlers.map((handler) => [handler.requestPath, handler]));
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const handler = handlers.get((req.url ?? "").split("?", 1)[0] ?? "");
    if (!handler) return options.fallback(req, res);
    let request = universalRequestFromNodeRequest(req, res, undefined, options.contextValues(req));
    const framing = binaryFraming(req);
    const body = request.body;
    if (framing && body && typeof body === "object" && Symbol.asyncIterator in body) {
      let bytes: Uint8Array;
      try {
        bytes = await readAllBytes(body, options.readMaxBytes);
      } catch (error) {
        // Over the size limit (RESOURCE_EXHAUSTED) or cut short.
        return refuse(res, framing, ConnectError.from(error, Code.InvalidArgument));
      }
      const problem = bytes.byteLength > 0 ? undecodable(handler.method, bytes, framing) : undefined;
      if (problem) {
        const message = `the request body is not a valid protobuf message: ${problem}`;
        return refuse(res, framing, new ConnectError(message, Code.InvalidArgument));
      }
      request = { ...request, body: createAsyncIterable([bytes]) };
    }
    try {
      await universalResponseToNodeResponse(await handler(request), res);
    } catch (error) {
      if (ConnectError.from(error).code !== Code.Aborted) options.onFailure(error, handler.method);
    }
  };
}

type Framing = "connect" | "grpc-web";

/** Binary bodies we can check: Connect unary (the message itself) and gRPC-Web (enveloped), uncompressed. */
function binaryFraming(req: IncomingMessage): Framing | undefined {
  const type = (req.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase();
  const encoding = req.headers["content-encoding"];
  if (type === "application/proto" && (!encoding || encoding === "identity")) return "connect";
  if (type === "application/grpc-web" || type === "application/grpc-web+proto") return "grpc-web";
  return undefined;
}

/** Why `bytes` is not a request of `method` in this framing, or undefined when it decodes. */
function undecodable(method: DescMethod, bytes: Uint8Array, framing: Framing): string | undefined {
  try {
    if (framing === "connect") {
      fromBinary(method.input, bytes);
      return undefined;
    }
    // gRPC-Web: frames of flags (1 byte), length (4 bytes, big endian), data.
    let offset = 0;
    while (offset < bytes.byteLength) {
      if (bytes.byteLength - offset < 5) return "a gRPC-Web frame header is cut short";
      const view = new DataView(bytes.buffer, bytes.byteOffset + offset, 5);
      const flags = view.getUint8(0);
      const length = view.getUint32(1);
      const end = offset + 5 + length;
      if (end > bytes.byteLength) return "a gRPC-Web frame is longer than the body";
      // Compressed frames are for Connect to decompress and judge.
      if ((flags & 0x01) === 0) fromBinary(method.input, bytes.subarray(offset + 5, end));
      offset = end;
    }
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

/** Answers `error` in the caller's protocol, without reaching a handler. */
function refuse(res: ServerResponse, framing: Framing, error: ConnectError): void {
  if (framing === "connect") {
    // Connect protocol: an HTTP status for the code and a JSON error body.
    const body = JSON.stringify({ code: codeToString(error.code), message: error.rawMessage });
    res.writeHead(codeToHttpStatus(error.code), {
      "content-type": "application/json",
      "content-length": Buffer.byteLength(body),
    });
    res.end(body);
    return;
  }
  // gRPC-Web: a trailers-only response, the status in the headers.
  res.writeHead(200, {
    "content-type": "application/grpc-web+proto",
    "grpc-status": String(error.code),
    "grpc-message": encodeURIComponent(error.rawMessage),
  });
  res.end();
}
