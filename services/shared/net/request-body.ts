// Reading an HTTP request body with a size limit, shared by the OAuth endpoints and the AuthZEN
// binding: each says how "too large" is reported in its protocol (OAuth invalid_request, HTTP 413).
import type { IncomingMessage } from "node:http";

export class RequestAborted extends Error {
  constructor() {
    super("the client aborted the request");
    this.name = "RequestAborted";
  }
}

/** The request body, at most `limit` bytes (else `tooLarge()`); RequestAborted when the client goes away. */
export function readRequestBody(req: IncomingMessage, limit: number, tooLarge: () => Error): Promise<Buffer> {
  if (Number(req.headers["content-length"] ?? 0) > limit) return Promise.reject(tooLarge());
  if (req.readableEnded) return Promise.resolve(Buffer.alloc(0));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.off("data", onData);
        req.resume();
        reject(tooLarge());
      } else chunks.push(chunk);
    };
    req.on("data", onData);
    req.once("end", () => resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks)));
    // An aborted upload emits "error" (ECONNRESET) and "close" without "end": never left pending.
    req.once("error", () => reject(new RequestAborted()));
    req.once("close", () => {
      if (!req.complete) reject(new RequestAborted());
    });
  });
}
