// The HTTPS JSON binding's plumbing (§10.1): reading a request body as a JSON object, and writing
// JSON answers and error answers (§10.1.2: the status says what went wrong, the body an error
// message string — here under `error_description`, beside a short `error` code).
import type { IncomingMessage, ServerResponse } from "node:http";
import { readRequestBody } from "../../shared/net/request-body.ts";
import { decodeUtf8, deepJsonTextFault, jsonTextFault, MAX_JSON_DEPTH } from "../../shared/text.ts";
import { BadRequest } from "./requests.ts";

/** An answer other than 200: its status, a short code, the message, and headers to send. */
export class HttpFailure extends Error {
  readonly status: number;
  readonly code: string;
  readonly headers: Record<string, string>;
  constructor(status: number, code: string, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.name = "HttpFailure";
    this.status = status;
    this.code = code;
    this.headers = headers;
  }
}

/**
 * §10.1: requests carry `Content-Type: application/json` and a JSON body; anything else is a 400
 * (the certification scenario asks 400 for another content type, §C-2.4.3). The body is UTF-8
 * (RFC 8259 §8.1) with well-formed strings nested at most MAX_JSON_DEPTH deep (§11.5, I-JSON).
 */
export async function readJsonBody(req: IncomingMessage, maxBytes: number): Promise<unknown> {
  const type = (req.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase();
  if (type !== "application/json") {
    throw new BadRequest(`the request must have Content-Type: application/json${type ? `, not ${type}` : ""}`);
  }
  const bytes = await readBytes(req, maxBytes);
  if (bytes.length === 0) throw new BadRequest("the request body is empty: send a JSON object");
  let text: string;
  try {
    text = decodeUtf8(bytes, "the request body");
  } catch (error) {
    throw new BadRequest((error as Error).message);
  }
  // Nested thousands deep: refused before JSON.parse, which may run out of stack on it (text.ts).
  const tooDeep = deepJsonTextFault(text, "(body)", MAX_JSON_DEPTH);
  if (tooDeep) throw new BadRequest(`${tooDeep.field} ${tooDeep.problem}`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new BadRequest(`the request body is not valid JSON: ${(error as Error).message}`);
  }
  const fault = jsonTextFault(value, "(body)", MAX_JSON_DEPTH);
  if (fault) throw new BadRequest(`${fault.field} ${fault.problem}`);
  return value;
}

/** The request body, at most `limit` bytes (else 413). */
function readBytes(req: IncomingMessage, limit: number): Promise<Buffer> {
  return readRequestBody(
    req,
    limit,
    () => new HttpFailure(413, "payload_too_large", `the request body is larger than ${limit} bytes`),
  );
}

/** A JSON answer; decisions are never cached (`no-store`) unless `headers` say otherwise. */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
    "cache-control": "no-store",
    ...headers,
  });
  res.end(text);
}

/** §10.1.2 An error answer: the status, and the message as `error_description`. */
export function sendFailure(res: ServerResponse, failure: HttpFailure): void {
  sendJson(res, failure.status, { error: failure.code, error_description: failure.message }, failure.headers);
}
