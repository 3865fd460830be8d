// protectMcp: the enforcement stage in front of an MCP SDK Streamable HTTP transport. For each
// request: the access token verified (stage 1, resource/), each JSON-RPC message mapped to AuthZEN
// requests (stage 2, coaz/) and decided by a Pdp — all the messages of one HTTP request in one PDP
// call (pdp.ts: a DPoP proof reaches Authorize once) — then either the parsed body goes on to
// `transport.handleRequest(req, res, parsedBody)`, or the PEP answers (COAZ-MCP binding "Error
// Handling": -32001 denied, -32602 mapping error, -32603 PDP unreachable; MCP "Step-Up Authorization
// Flow": 403 insufficient_scope; RFC 9470 §3: 401 insufficient_user_authentication).
//
// Tools are declared to the guard as a map (name → declaration, as the tool's tools/list entry says
// it: `inputSchema["x-authzen-mapping"]`, and the kit's `inputSchema["x-mandate-usage"]`), not read
// back from the SDK server's tools/list: the PEP must not learn what to enforce from the component it
// protects at run time, and a map needs no extra round trip. Pass the same objects you register the
// tools with.
//
// A JSON-RPC batch is all or nothing: if any message is refused, none goes to the MCP server (the
// PEP cannot merge its errors into the SDK's response stream), and the others are answered -32001
// "not executed". (MCP 2025-06-18 and later clients send no batches.)
//
// Usage (README "Policy decisions", Mandates): with a PDP that counts (AuthorizePdp), a tools/call
// under a mandate is charged with its allow, keyed by the token's jti and the JSON-RPC id — a retry
// of the same request with the same token is not counted again. A charge is Authorize's, made with
// the decision: an allowed call of a batch refused whole, or an allow that also asks for step-up,
// stays counted (a retry with the same token and id is free; a new token is a new key).
import { createHash } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { JSONRPCMessageSchema } from "@modelcontextprotocol/sdk/types.js";
import { tokenScopes } from "../../shared/oauth/access-token.ts";
import type { Template } from "../coaz/expression.ts";
import {
  ABSENT,
  CoazMethodDenied,
  compileTemplate,
  expandEvaluations,
  type MapOptions,
  mapMessage,
  resolveServerAudience,
} from "../coaz/index.ts";
import { type McpResourceServer, type ProtectedRequest, protect, sendRefusal } from "../resource/index.ts";
import {
  type AuthzenEvaluation,
  CoazMappingError,
  JSONRPC_ACCESS_DENIED,
  JSONRPC_INTERNAL_ERROR,
  JSONRPC_INVALID_PARAMS,
  type JsonRpcRequest,
  type MappedMessage,
  type Pdp,
  type PdpDecision,
  PdpUnavailable,
  type UsageCharge,
  type VerifiedCaller,
} from "../types.ts";
import { isBatchingPdp, type PdpQuestion } from "./pdp.ts";

/** How a tool call charges its mandate (`inputSchema["x-mandate-usage"]`): literals or COAZ expressions. */
export interface MandateUsageDeclaration {
  /** The meter, as the mandate's usage limits name it. Default "calls". */
  meter?: string;
  /** A positive number, or an expression over `$params` / `$token` (e.g. "$params.arguments.amount"). Default 1. */
  amount?: number | string;
  /**
   * True: the call needs a mandate that limits the meter (one that does not refuses it,
   * `mandate_meter_unlimited`). Default false: counted where the mandate limits the meter, else free.
   */
  required?: boolean;
}

/** What the guard knows of a tool: its tools/list entry's schema extensions, and the scopes it needs. */
export interface McpToolDeclaration {
  /** The tool's JSON Schema: `x-authzen-mapping` (COAZ-MCP), `x-mandate-usage` (a MandateUsageDeclaration). */
  inputSchema?: Readonly<Record<string, unknown>>;
  /** Scopes the token must hold to call it: without one, a 403 insufficient_scope naming them, the PDP not asked. */
  scopes?: readonly string[];
}

export interface ProtectMcpOptions {
  /** Stage 1: verifies the token (and answers the RFC 9728 metadata, CORS preflights). */
  server: McpResourceServer;
  pdp: Pdp;
  /** The tools' declarations by name; a tool not here gets the binding's default mapping. */
  tools?: Readonly<Record<string, McpToolDeclaration>> | ReadonlyArray<McpToolDeclaration & { name: string }>;
  /** Stage 2 settings besides the resource and the declared mappings (subject and agent claims...). */
  mapping?: Omit<MapOptions, "resource" | "declared">;
  /** Request body limit. Default 4 MiB (the MCP SDK's). */
  maxBodyBytes?: number;
  /** Told about failures the caller only sees as -32603 / 503 (the PDP down, a bug). */
  onError?: (error: unknown) => void;
}

/** Next stage: the SDK transport, e.g. `(body) => transport.handleRequest(req, res, body)`. */
export type McpNext = (parsedBody: unknown) => void | Promise<void>;

export type McpGuard = (req: IncomingMessage, res: ServerResponse, next: McpNext) => Promise<void>;

const DEFAULT_MAX_BODY = 4 * 1024 * 1024;
const MAX_BATCH = 100;
const STEP_UP = "step_up";
/** The reason code of a deny for a scope the token lacks (policies/library, the demo policy). */
const SCOPE_MISSING = "scope_missing";

type Outcome =
  | { kind: "allowed" }
  | { kind: "refused"; code: number; message: string; data?: JsonObject }
  | { kind: "step_up"; acrValues?: string; maxAge?: number; message: string }
  | { kind: "scope"; scopes: readonly string[]; message: string }
  | { kind: "token"; error: "invalid_token" | "invalid_dpop_proof"; message: string };

interface Message {
  raw: JsonObject;
  request?: JsonRpcRequest;
  outcome?: Outcome;
  question?: PdpQuestion;
}

export function protectMcp(options: ProtectMcpOptions): McpGuard {
  const tools: Record<string, McpToolDeclaration> = Array.isArray(options.tools)
    ? Object.fromEntries(options.tools.map((tool) => [tool.name, tool]))
    : { ...options.tools };
  const usage = compileUsage(tools);
  const verify = protect(options.server);
  const mapOptions: MapOptions = {
    ...options.mapping,
    resource: options.server.resource,
    declared: (name) => (Object.hasOwn(tools, name) ? tools[name]?.inputSchema?.["x-authzen-mapping"] : undefined),
  };
  const mapper: MessageMapper = (message, caller) => mapMessage(message, caller.claims, mapOptions);
  return async (req, res, next) => {
    try {
      // Stage 1 (resource/ protect): the refusal answered with its challenge; req.auth set for the SDK.
      if (!(await verify(req, res))) return;
      const caller = (req as Partial<ProtectedRequest>).mandate;
      // GET (the SSE stream), DELETE (session end), OPTIONS: no JSON-RPC message, the token is all there is.
      if (!caller || req.method !== "POST") return await next(undefined);
      await guard({ ...options, tools }, mapper, usage, caller, req, res, next);
    } catch (error) {
      options.onError?.(error);
      if (!res.headersSent) sendJson(res, 503, { error: "temporarily_unavailable" });
      else res.end();
    }
  };
}

/** The options with the tools by name. */
type Settings = Omit<ProtectMcpOptions, "tools"> & { tools: Readonly<Record<string, McpToolDeclaration>> };

type MessageMapper = (message: JsonRpcRequest, caller: VerifiedCaller) => MappedMessage;

async function guard(
  options: Settings,
  mapper: MessageMapper,
  usage: Map<string, CompiledUsage>,
  caller: VerifiedCaller,
  req: IncomingMessage,
  res: ServerResponse,
  next: McpNext,
): Promise<void> {
  const body = await readMessages(req, res, options.maxBodyBytes ?? DEFAULT_MAX_BODY);
  if (!body) return;
  const messages = body.messages;
  for (const message of messages) mapOne(options, mapper, usage, caller, message);
  await decide(options, caller, messages);
  if (challenged(options, caller, messages, res)) return;
  if (!messages.some((m) => m.outcome?.kind === "refused")) return next(body.value);
  answerRefused(res, messages, body.batch);
}

/** The body's JSON-RPC messages, or undefined once the request has been answered as the SDK would. */
async function readMessages(
  req: IncomingMessage,
  res: ServerResponse,
  maxBytes: number,
): Promise<{ value: JsonValue; batch: boolean; messages: Message[] } | undefined> {
  const body = await readJson(req, maxBytes);
  if (body.kind === "too_large") return sendRpcError(res, 413, -32000, "Request body too large");
  if (body.kind === "invalid") return sendRpcError(res, 400, -32700, "Parse error: Invalid JSON");
  const batch = Array.isArray(body.value);
  const raws = batch ? (body.value as JsonValue[]) : [body.value];
  if (batch && (raws.length === 0 || raws.length > MAX_BATCH)) {
    return sendRpcError(res, 400, -32600, "Invalid Request: a batch holds 1 to 100 messages");
  }
  // The messages the SDK would accept, and only those (it refuses the rest the same way).
  if (!raws.every((raw) => JSONRPCMessageSchema.safeParse(raw).success)) {
    return sendRpcError(res, 400, -32700, "Parse error: Invalid JSON-RPC message");
  }
  return { value: body.value, batch, messages: raws.map((raw) => messageOf(raw as JsonObject)) };
}

/** Stage 2 for one message: its question for the PDP, or already its outcome. */
function mapOne(
  options: Settings,
  mapper: MessageMapper,
  usage: Map<string, CompiledUsage>,
  caller: VerifiedCaller,
  message: Message,
): void {
  const request = message.request;
  if (!request) return;
  try {
    const scopes = missingScopes(options.tools, request, caller);
    if (scopes) {
      message.outcome = { kind: "scope", scopes, message: `this tool needs the scope ${scopes.join(" ")}` };
      return;
    }
    const mapped = mapper(request, caller);
    const evaluations = evaluationsOf(mapped);
    if (evaluations.length === 0) message.outcome = { kind: "allowed" };
    else {
      // AuthZEN §7.1.2, passed on to PDPs that honour it; the message is allowed only if all permit anyway.
      const semantic = mapped.kind === "evaluations" ? mapped.request.options?.evaluations_semantic : undefined;
      message.question = { evaluations, semantic, charge: chargeOf(options, usage, request, caller) };
    }
  } catch (error) {
    message.outcome = mappingOutcome(error, options);
  }
}

/**
 * A step-up or a missing scope is about the token, not one message: the whole request is answered
 * with the challenge, step-up first (a new token with more scope would still need it).
 */
function challenged(options: Settings, caller: VerifiedCaller, messages: Message[], res: ServerResponse) {
  const outcomes = messages.map((m) => m.outcome);
  const token = outcomes.find((o) => o?.kind === "token");
  if (token?.kind === "token") {
    // RFC 6750 §3.1 / RFC 9449 §7.1: the token (or its proof) is not good, whatever the message.
    sendRefusal(res, options.server.refusal({ error: token.error, description: token.message }));
    return true;
  }
  const stepUp = outcomes.find((o) => o?.kind === "step_up");
  if (stepUp?.kind === "step_up") {
    // RFC 9470 §3: the user's authentication is not enough; the client asks the AS for acr_values / max_age.
    sendRefusal(
      res,
      options.server.refusal({
        error: "insufficient_user_authentication",
        description: stepUp.message,
        acrValues: stepUp.acrValues,
        maxAge: stepUp.maxAge,
      }),
    );
    return true;
  }
  const scope = outcomes.find((o) => o?.kind === "scope");
  if (scope?.kind === "scope") {
    // RFC 6750 §3.1 / MCP "Step-Up Authorization Flow": 403 naming the scopes to ask for (those held too).
    sendRefusal(
      res,
      options.server.refusal({
        error: "insufficient_scope",
        description: scope.message,
        // Without a declared scope to add, the server's own (its required scopes) are named, if any.
        scope: scope.scopes.length > 0 ? [...new Set([...tokenScopes(caller.claims), ...scope.scopes])] : undefined,
      }),
    );
    return true;
  }
  return false;
}

/** COAZ-MCP "Error Handling": an error per refused request (same id); a batch is refused whole. */
function answerRefused(res: ServerResponse, messages: Message[], batch: boolean): void {
  const responses: JsonObject[] = [];
  for (const message of messages) {
    const id = message.request?.id;
    if (id === undefined) continue; // notifications and responses get no answer
    const outcome = message.outcome?.kind === "refused" ? message.outcome : NOT_EXECUTED;
    responses.push(rpcError(id, outcome.code, outcome.message, outcome.data));
  }
  if (responses.length === 0) {
    res.writeHead(202).end();
    return;
  }
  sendJson(res, 200, batch ? responses : responses[0]);
}

/** Decides every question in one PDP call when the PDP can (the DPoP proof is single use), else one per message. */
async function decide(options: Settings, caller: VerifiedCaller, messages: Message[]): Promise<void> {
  const asking = messages.filter((m): m is Message & { question: PdpQuestion } => m.question !== undefined);
  if (asking.length === 0) return;
  const { pdp } = options;
  let answers: PdpDecision[][];
  try {
    answers = isBatchingPdp(pdp)
      ? await pdp.evaluateAll(
          caller,
          asking.map((m) => m.question),
        )
      : await Promise.all(
          asking.map((m) =>
            pdp.evaluate(caller, m.question.evaluations, {
              ...(m.question.semantic ? { semantic: m.question.semantic } : {}),
              ...(m.question.charge ? { charge: m.question.charge } : {}),
            }),
          ),
        );
  } catch (error) {
    const outcome = mappingOutcome(error, options);
    for (const message of asking) message.outcome = outcome;
    return;
  }
  asking.forEach((message, i) => {
    message.outcome = outcomeOf(options.tools, message.request as JsonRpcRequest, answers[i] ?? []);
  });
}

/** All permit, or the first deny's refusal; a step_up obligation on any decision asks for step-up. */
function outcomeOf(tools: Settings["tools"], request: JsonRpcRequest, decisions: PdpDecision[]): Outcome {
  const stepUp = stepUpOf(decisions);
  if (stepUp) return stepUp;
  if (decisions.length > 0 && decisions.every((d) => d.decision === true)) return { kind: "allowed" };
  const denied = decisions.find((d) => d.decision !== true);
  const codes = denied ? reasonCodes(denied) : [];
  // Authorize refused the token itself (access-token mode: revoked, expired, proof...): a 401 as the
  // resource server would give (resource-server.ts authorize()), so the client gets a new token.
  const refusal = codes.find((code) => /^(token|dpop)_/.test(code));
  if (refusal) {
    const error = refusal.startsWith("dpop_") ? "invalid_dpop_proof" : "invalid_token";
    return { kind: "token", error, message: reasonText(denied) ?? "the access token was refused" };
  }
  // The policy's scope_missing, alone: the MCP step-up flow, naming the tool's declared scopes when it
  // has some. With another reason more scope would not help: a plain denial.
  if (codes.length > 0 && codes.every((code) => code === SCOPE_MISSING)) {
    const scopes = toolOf(tools, request)?.scopes ?? [];
    return { kind: "scope", scopes, message: reasonText(denied) ?? "insufficient scope" };
  }
  const decisionId = denied?.context?.decision_id;
  return {
    kind: "refused",
    code: JSONRPC_ACCESS_DENIED,
    message: `Access denied: ${(denied && reasonText(denied)) ?? "the policy does not allow this request"}`,
    data: { reasons: codes, ...(typeof decisionId === "string" ? { decision_id: decisionId } : {}) },
  };
}

/** The first decision (allowed or not) carrying a step_up obligation, as a step-up outcome. */
function stepUpOf(decisions: PdpDecision[]): Outcome | undefined {
  for (const decision of decisions) {
    const stepUp = (decision.obligations ?? []).find((o) => o.type === STEP_UP);
    if (!stepUp) continue;
    return {
      kind: "step_up",
      message: reasonText(decision) ?? "a stronger authentication is required",
      ...(typeof stepUp.acr_values === "string" ? { acrValues: stepUp.acr_values } : {}),
      ...(typeof stepUp.max_age === "number" ? { maxAge: stepUp.max_age } : {}),
    };
  }
  return undefined;
}

/**
 * The binding says no field name for a deny's reason (§"Authorization Denial"): Mandate's
 * `reasons[].message`, a `reason` string or object (AuthZEN examples), whichever the context has.
 */
function reasonText(decision: PdpDecision | undefined): string | undefined {
  const context = decision?.context;
  if (!context) return undefined;
  const reasons = Array.isArray(context.reasons) ? context.reasons : [];
  const messages = reasons
    .map((r) => (typeof r === "object" && r !== null && !Array.isArray(r) ? r.message : undefined))
    .filter((m): m is string => typeof m === "string" && m !== "");
  if (messages.length > 0) return messages.join("; ");
  const reason = context.reason;
  if (typeof reason === "string") return reason;
  if (typeof reason === "object" && reason !== null && !Array.isArray(reason)) {
    const text = Object.values(reason).find((v) => typeof v === "string");
    if (typeof text === "string") return text;
  }
  return undefined;
}

function reasonCodes(decision: PdpDecision): string[] {
  const reasons = Array.isArray(decision.context?.reasons) ? decision.context.reasons : [];
  return reasons
    .map((r) => (typeof r === "object" && r !== null && !Array.isArray(r) ? r.code : undefined))
    .filter((c): c is string => typeof c === "string");
}

const NOT_EXECUTED: Extract<Outcome, { kind: "refused" }> = {
  kind: "refused",
  code: JSONRPC_ACCESS_DENIED,
  message: "Access denied: not executed, another message of this batch was refused",
};

function mappingOutcome(error: unknown, options: Settings): Outcome {
  if (error instanceof CoazMappingError)
    return { kind: "refused", code: JSONRPC_INVALID_PARAMS, message: error.message };
  // Binding "Unknown Methods": a method without a mapping is a denial, the PDP never asked.
  if (error instanceof CoazMethodDenied)
    return { kind: "refused", code: JSONRPC_ACCESS_DENIED, message: error.message };
  options.onError?.(error);
  const message = error instanceof PdpUnavailable ? "Authorization service unavailable" : "Authorization failed";
  return { kind: "refused", code: JSONRPC_INTERNAL_ERROR, message };
}

function evaluationsOf(mapped: MappedMessage): AuthzenEvaluation[] {
  if (mapped.kind === "pass_through") return [];
  if (mapped.kind === "evaluation") return [mapped.request];
  const evaluations = expandEvaluations(mapped.request);
  // An evaluations request that expands to nothing asks nothing: refused rather than waved through.
  if (evaluations.length === 0) throw new CoazMappingError("COAZ mapping error: the mapping has no evaluations");
  return evaluations;
}

function messageOf(raw: JsonObject): Message {
  if (typeof raw.method !== "string") return { raw }; // a response to a server request: nothing to decide
  const id = raw.id;
  const request: JsonRpcRequest = {
    jsonrpc: "2.0",
    method: raw.method,
    ...(typeof id === "string" || typeof id === "number" || id === null ? { id } : {}),
    ...(isObject(raw.params) ? { params: raw.params } : {}),
  };
  return { raw, request };
}

function toolOf(
  tools: Readonly<Record<string, McpToolDeclaration>> | undefined,
  request: JsonRpcRequest,
): McpToolDeclaration | undefined {
  if (request.method !== "tools/call" || !tools) return undefined;
  const name = request.params?.name;
  return typeof name === "string" && Object.hasOwn(tools, name) ? tools[name] : undefined;
}

/** The declared scopes of the called tool the token lacks, or undefined when it has them all. */
function missingScopes(
  tools: Settings["tools"],
  request: JsonRpcRequest,
  caller: VerifiedCaller,
): readonly string[] | undefined {
  const declared = toolOf(tools, request)?.scopes;
  if (!declared || declared.length === 0) return undefined;
  const held = new Set(tokenScopes(caller.claims));
  return declared.every((scope) => held.has(scope)) ? undefined : declared;
}

interface CompiledUsage {
  meter: Template;
  amount: Template;
  required: boolean;
}

function compileUsage(tools: Readonly<Record<string, McpToolDeclaration>>): Map<string, CompiledUsage> {
  const compiled = new Map<string, CompiledUsage>();
  for (const [name, tool] of Object.entries(tools)) {
    const declared = tool.inputSchema?.["x-mandate-usage"] as MandateUsageDeclaration | undefined;
    if (declared === undefined) continue;
    if (typeof declared !== "object" || declared === null || Array.isArray(declared)) {
      throw new CoazMappingError(`the x-mandate-usage of the tool ${name} is not an object`);
    }
    // Compiled when the guard is made: a malformed declaration fails at start-up, not per call.
    compiled.set(name, {
      meter: compileTemplate(declared.meter ?? "calls"),
      amount: compileTemplate(declared.amount ?? 1),
      required: declared.required === true,
    });
  }
  return compiled;
}

/**
 * README "Policy decisions", Mandates: a tools/call under a mandate (the token's `mandate_id`) is
 * counted through CheckRequest.consume — meter "calls" by 1, or the tool's `x-mandate-usage`. The
 * idempotency key is the token's jti with the JSON-RPC id: a retried request is counted once.
 */
function chargeOf(
  options: Settings,
  usage: Map<string, CompiledUsage>,
  request: JsonRpcRequest,
  caller: VerifiedCaller,
): UsageCharge | undefined {
  const { pdp } = options;
  if (request.method !== "tools/call" || !isBatchingPdp(pdp) || !pdp.countsUsage) return undefined;
  const claims = caller.claims;
  if (typeof claims.mandate_id !== "string" || claims.mandate_id === "") return undefined;
  const name = request.params?.name;
  const declared = typeof name === "string" ? usage.get(name) : undefined;
  let meter: JsonValue = "calls";
  let amount: JsonValue = 1;
  if (declared) {
    const input = {
      params: request.params ?? {},
      token: claims as Record<string, unknown>,
      serverAudience: () => resolveServerAudience(claims.aud, options.server.resource),
    };
    const resolvedMeter = declared.meter(input);
    const resolvedAmount = declared.amount(input);
    if (resolvedMeter === ABSENT || resolvedAmount === ABSENT) {
      throw new CoazMappingError("COAZ mapping error: x-mandate-usage resolved to no value");
    }
    meter = resolvedMeter;
    amount = resolvedAmount;
  }
  if (typeof meter !== "string" || !/^[!-~]{1,64}$/.test(meter)) {
    throw new CoazMappingError("COAZ mapping error: x-mandate-usage meter is not a meter name");
  }
  if (typeof amount !== "number" || !Number.isFinite(amount) || amount <= 0) {
    throw new CoazMappingError("COAZ mapping error: x-mandate-usage amount is not a positive number");
  }
  const key = createHash("sha256")
    .update(JSON.stringify([claims.jti, request.id ?? null]))
    .digest("base64url");
  // "Where the mandate says so": a meter no mandate of the chain limits is not counted, unless the
  // tool requires it to be.
  return { meter, amount, idempotencyKey: `mcp:${key}`, onlyIfLimited: !declared?.required };
}

type Body = { kind: "ok"; value: JsonValue } | { kind: "invalid" } | { kind: "too_large" };

/** The JSON body: parsed already (express.json()), or read here within the limit. */
async function readJson(req: IncomingMessage, maxBytes: number): Promise<Body> {
  const parsed = (req as { body?: unknown }).body;
  if (parsed !== undefined) return { kind: "ok", value: parsed as JsonValue };
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > maxBytes) return { kind: "too_large" };
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > maxBytes) return { kind: "too_large" };
    chunks.push(chunk as Buffer);
  }
  try {
    return { kind: "ok", value: JSON.parse(Buffer.concat(chunks).toString("utf8")) as JsonValue };
  } catch {
    return { kind: "invalid" };
  }
}

function rpcError(id: string | number | null, code: number, message: string, data?: JsonObject): JsonObject {
  return { jsonrpc: "2.0", id, error: { code, message, ...(data ? { data } : {}) } };
}

/** An error the request as a whole gets (its id unknown: null, JSON-RPC 2.0 §5); returns nothing to return. */
function sendRpcError(res: ServerResponse, status: number, code: number, message: string): undefined {
  sendJson(res, status, rpcError(null, code, message));
  return undefined;
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
