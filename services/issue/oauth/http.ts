// HTTP plumbing shared by every OAuth endpoint: bounded body reading, form parsing with the
// RFC 6749 §3.1 "no repeated parameters" rule, and responses that are never cached. Every form,
// query string and JSON body is read here, and its text checked here (services/shared/text.ts):
// invalid UTF-8 or a lone surrogate is `invalid_request` naming the parameter or member.
import type { IncomingMessage, ServerResponse } from "node:http";
import { readRequestBody } from "../../shared/net/request-body.ts";
import {
  decodeUtf8,
  deepJsonTextFault,
  IllFormedText,
  parseFormStrict,
  printable,
  requireJsonText,
} from "../../shared/text.ts";
import { InvalidRequest, type OAuthError } from "./errors.ts";

/** Parameters that RFC 8707 §2 (resource) and RFC 9396 allow more than once. */
const REPEATABLE = new Set(["resource", "audience"]);
const MAX_FORM_BYTES = 64 * 1024;

export class Params {
  readonly #values: Map<string, string[]>;
  constructor(values: Map<string, string[]>) {
    this.#values = values;
  }

  static from(search: Iterable<[string, string]>): Params {
    const values = new Map<string, string[]>();
    for (const [key, value] of search) {
      const list = values.get(key);
      if (list) list.push(value);
      else values.set(key, [value]);
    }
    for (const [key, list] of values) {
      // RFC 6749 §3.1 / §3.2: request and response parameters MUST NOT be included more than once.
      if (list.length > 1 && !REPEATABLE.has(key)) {
        throw new InvalidRequest(`parameter "${printable(key)}" is repeated`);
      }
    }
    return new Params(values);
  }

  /** A single-valued parameter; empty values count as absent (RFC 6749 §3.1). */
  get(name: string): string | undefined {
    const value = this.#values.get(name)?.[0];
    return value === "" ? undefined : value;
  }

  require(name: string): string {
    const value = this.get(name);
    if (value === undefined) throw new InvalidRequest(`parameter "${name}" is required`);
    return value;
  }

  all(name: string): string[] {
    return (this.#values.get(name) ?? []).filter((v) => v !== "");
  }

  has(name: string): boolean {
    return this.get(name) !== undefined;
  }

  entries(): Array<[string, string[]]> {
    return [...this.#values];
  }
}

/** Reads an application/x-www-form-urlencoded body (RFC 6749 §3.2: the token endpoint takes POST forms). */
export async function readForm(req: IncomingMessage): Promise<Params> {
  const type = (req.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase();
  if (type !== "application/x-www-form-urlencoded") {
    throw new InvalidRequest("the request body must be application/x-www-form-urlencoded");
  }
  return formParams(await readBytes(req, MAX_FORM_BYTES));
}

/** The parameters of the request URI's query (RFC 6749 §3.1: the authorization endpoint takes GET). */
export function queryParams(req: IncomingMessage): Params {
  const url = req.url ?? "/";
  const start = url.indexOf("?");
  if (start < 0) return new Params(new Map());
  const end = url.indexOf("#", start);
  return formParams(url.slice(start + 1, end < 0 ? undefined : end));
}

function formParams(input: Uint8Array | string): Params {
  try {
    return Params.from(parseFormStrict(input));
  } catch (error) {
    // RFC 6749 §5.2 invalid_request: a parameter that is not UTF-8 text is malformed.
    if (error instanceof IllFormedText) throw new InvalidRequest(error.message);
    throw error;
  }
}

export interface ReadJsonOptions {
  /** The error for a member whose text is ill-formed (default: invalid_request, RFC 6749 §5.2). */
  illFormed?: (description: string) => OAuthError;
}

/** Reads a JSON body (RFC 8259 §8.1: UTF-8), every string of it well-formed. */
export async function readJson(req: IncomingMessage, options: ReadJsonOptions = {}): Promise<unknown> {
  const type = (req.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase();
  if (type !== "application/json") throw new InvalidRequest("the request body must be application/json");
  const bytes = await readBytes(req, MAX_FORM_BYTES);
  let text: string;
  try {
    text = decodeUtf8(bytes, "the request body");
  } catch (error) {
    throw new InvalidRequest((error as Error).message);
  }
  // Nested thousands deep: refused before JSON.parse, which may run out of stack on it (text.ts).
  const tooDeep = deepJsonTextFault(text);
  if (tooDeep) {
    const description = `${tooDeep.field}: ${tooDeep.problem}`;
    throw options.illFormed ? options.illFormed(description) : new InvalidRequest(description);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new InvalidRequest("the request body is not valid JSON");
  }
  try {
    requireJsonText(value);
  } catch (error) {
    const description = (error as Error).message;
    throw options.illFormed ? options.illFormed(description) : new InvalidRequest(description);
  }
  return value;
}

/** The client went away before its request body arrived: nobody to answer, nothing to log above debug. */

/** The request body, at most `limit` bytes (else invalid_request). */
export function readBytes(req: IncomingMessage, limit: number): Promise<Buffer> {
  return readRequestBody(req, limit, () => new InvalidRequest(`the request body is larger than ${limit} bytes`));
}

/** JSON with `Cache-Control: no-store` (RFC 6749 §5.1: token responses; we apply it to every OAuth response). */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
  contentType = "application/json",
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": contentType,
    "content-length": Buffer.byteLength(text),
    "cache-control": "no-store",
    pragma: "no-cache",
    ...headers,
  });
  res.end(text);
}

export function sendText(
  res: ServerResponse,
  status: number,
  text: string,
  contentType: string,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, {
    "content-type": contentType,
    "content-length": Buffer.byteLength(text),
    "cache-control": "no-store",
    ...headers,
  });
  res.end(text);
}

/** RFC 6749 §5.2 error body with the error's status and headers. */
export function sendOAuthError(
  res: ServerResponse,
  error: OAuthError,
  extraHeaders: Record<string, string> = {},
): void {
  sendJson(res, error.status, error.body(), { ...error.headers, ...extraHeaders });
}

export function redirect(res: ServerResponse, location: string, headers: Record<string, string> = {}): void {
  res.writeHead(303, { location, "cache-control": "no-store", ...headers });
  res.end();
}

/** Cookies of the request (RFC 6265 §5.4 syntax). */
export function cookies(req: IncomingMessage): Map<string, string> {
  const jar = new Map<string, string>();
  for (const part of (req.headers.cookie ?? "").split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0) jar.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  return jar;
}
