// OpenID AuthZEN Authorization API 1.0 at the HTTP edge, one PDP per tenant under
// `{publicBaseUrl}/t/{tenant}`:
//   GET  /.well-known/authzen-configuration/t/{t}   PDP metadata (§9.2, path inserted as RFC 8414 §3.1)
//   GET  /t/{t}/.well-known/authzen-configuration   the same document
//   POST /t/{t}/access/v1/evaluation                Access Evaluation (§6)
//   POST /t/{t}/access/v1/evaluations               Access Evaluations (§7)
//   POST /t/{t}/access/v1/search/{subject|resource|action}   Search (§8)
// Metadata is public, like OAuth discovery; every API call authenticates as a PUBLIC RPC does (a
// Mandate access token with `mandate:authorize` for the tenant, through the RPC gate, with its
// limits). Every answer carries X-Request-ID (§10.1.3): the caller's, or one made up here.
import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Clock } from "../../shared/clock.ts";
import type { Config } from "../../shared/config.ts";
import type { Logger } from "../../shared/logger.ts";
import { ClientAddresses } from "../../shared/net/client-ip.ts";
import { RequestAborted } from "../../shared/net/request-body.ts";
import { API_SCOPES } from "../../shared/oauth/mandate-api.ts";
import { ReplayStoreUnavailable } from "../../shared/oauth/replay.ts";
import { type HttpCallerGate, httpClientCertificate } from "../../shared/rpc/caller-authentication.ts";
import type { HttpHandler, TenantLookup } from "../../shared/rpc/service.ts";
import { type AuthzenPolicy, Evaluator } from "./evaluate.ts";
import { HttpFailure, readJsonBody, sendFailure, sendJson } from "./http.ts";
import { pdpMetadata } from "./metadata.ts";
import {
  BadRequest,
  evaluationRequest,
  evaluationsRequest,
  type JsonObject,
  type SearchKind,
  searchRequest,
} from "./requests.ts";
import { searchPage } from "./search.ts";

/** Most evaluations in one Access Evaluations request, as in Authorize.BatchCheck. */
export const MAX_EVALUATIONS = 100;

const TENANT = "([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)";
const API_PATH = new RegExp(
  `^/t/${TENANT}/access/v1/(evaluation|evaluations|search/subject|search/resource|search/action)$`,
);
const METADATA_PATHS = [
  new RegExp(`^/\\.well-known/authzen-configuration/t/${TENANT}$`),
  new RegExp(`^/t/${TENANT}/\\.well-known/authzen-configuration$`),
];

type Api = "evaluation" | "evaluations" | `search/${SearchKind}`;
type Route = { tenant: string; api: Api } | { tenant: string; api: "metadata" };

const API_NAMES: Record<Api, string> = {
  evaluation: "AuthZEN access evaluation",
  evaluations: "AuthZEN access evaluations",
  "search/subject": "AuthZEN subject search",
  "search/resource": "AuthZEN resource search",
  "search/action": "AuthZEN action search",
};

export type { HttpCallerGate };

export interface AuthzenHandlerOptions {
  config: Config;
  tenants: TenantLookup;
  logger: Logger;
  clock: Clock;
  /** Admits an HTTP API's caller as a PUBLIC RPC's (CallerAuthentication.admitHttp). */
  callers: HttpCallerGate;
  policy: AuthzenPolicy;
}

export function authzenHandler(options: AuthzenHandlerOptions): HttpHandler {
  const addresses = new ClientAddresses(options.config.http.trustedProxies);
  return async (req, res) => {
    const path = (req.url ?? "/").split("?", 1)[0] as string;
    const route = routeOf(path);
    if (!route) return false;
    const sent = callerRequestId(req);
    const requestId = sent ?? randomUUID();
    res.setHeader("x-request-id", requestId);
    try {
      if (route.api === "metadata") await serveMetadata(options, req, res, route.tenant);
      else
        await serveApi(
          options,
          { req, res, path, requestId, sent: sent !== undefined, address: addresses.of(req) },
          route,
        );
    } catch (error) {
      answerFailure(error, res, path, options.logger);
    }
    return true;
  };
}

function routeOf(path: string): Route | undefined {
  const api = API_PATH.exec(path);
  if (api) return { tenant: api[1] as string, api: api[2] as Api };
  for (const pattern of METADATA_PATHS) {
    const metadata = pattern.exec(path);
    if (metadata) return { tenant: metadata[1] as string, api: "metadata" };
  }
  return undefined;
}

/** §10.1.3: the caller's X-Request-ID, echoed as sent; undefined when it sent none. */
function callerRequestId(req: IncomingMessage): string | undefined {
  const sent = req.headers["x-request-id"];
  return (Array.isArray(sent) ? sent.join(", ") : sent) || undefined;
}

/** §9.2: GET, public, cacheable (§11.8); 404 for a tenant that does not exist. */
async function serveMetadata(
  { config, tenants }: AuthzenHandlerOptions,
  req: IncomingMessage,
  res: ServerResponse,
  tenant: string,
): Promise<void> {
  if (req.method !== "GET" && req.method !== "HEAD") {
    throw new HttpFailure(405, "method_not_allowed", "the PDP metadata is read with GET", { allow: "GET, HEAD" });
  }
  await requireTenant(tenants, tenant);
  sendJson(res, 200, pdpMetadata(config.publicBaseUrl, tenant), { "cache-control": "public, max-age=300" });
}

interface Exchange {
  req: IncomingMessage;
  res: ServerResponse;
  path: string;
  requestId: string;
  /** Whether the caller sent the X-Request-ID. */
  sent: boolean;
  address: string;
}

/** One API call: method, tenant, caller, then the body, then the answer (§10.1). */
async function serveApi(options: AuthzenHandlerOptions, exchange: Exchange, route: Route): Promise<void> {
  const { req, res, path, requestId } = exchange;
  const api = route.api as Api;
  if (req.method !== "POST") {
    throw new HttpFailure(405, "method_not_allowed", `${API_NAMES[api]} is called with POST`, { allow: "POST" });
  }
  await requireTenant(options.tenants, route.tenant);
  await options.callers.admitHttp({
    name: API_NAMES[api],
    method: "POST",
    url: `${options.config.publicBaseUrl}${path}`,
    authorization: req.headers.authorization,
    dpop: headerValue(req.headers.dpop),
    // RFC 8705 §3: a caller token bound to a certificate is good with that certificate only.
    clientCertificate: httpClientCertificate(req, options.config, options.logger),
    address: exchange.address,
    tenant: route.tenant,
    scopes: [API_SCOPES.authorize],
  });
  const body = await readJsonBody(req, options.config.http.maxRequestBytes);
  const { policy, clock, logger } = options;
  const evaluator = new Evaluator({
    policy,
    tenant: route.tenant,
    requestId,
    callerRequestId: exchange.sent,
    now: () => clock.now(),
    logger,
  });
  sendJson(res, 200, await answer(api, body, evaluator, options, route.tenant));
}

/** The body of a 200 answer to `api`. */
async function answer(
  api: Api,
  body: unknown,
  evaluator: Evaluator,
  options: AuthzenHandlerOptions,
  tenant: string,
): Promise<unknown> {
  if (api === "evaluation") return evaluator.decide(evaluationRequest(body));
  if (api === "evaluations") {
    const request = evaluationsRequest(body, MAX_EVALUATIONS);
    // §7.1: without evaluations, the answer is a single Decision; with them, `decision` is omitted (§7.2).
    if (request.kind === "single") return evaluator.decide(request.evaluation);
    return { evaluations: await evaluator.decideAll(request.items, request.semantic) };
  }
  const request = searchRequest(api.slice("search/".length) as SearchKind, body);
  const data = await searchData(options, tenant);
  return searchPage(tenant, request, data, async (evaluation) => (await evaluator.decide(evaluation)).decision);
}

/** The policy's search candidates; none when they cannot be read (a search then finds nothing: fail closed). */
async function searchData({ policy, logger }: AuthzenHandlerOptions, tenant: string): Promise<unknown> {
  try {
    return await policy.searchCandidates(tenant);
  } catch (error) {
    logger.error({ err: error, tenant }, "AuthZEN search: the policy's candidates could not be read");
    return undefined;
  }
}

async function requireTenant(tenants: TenantLookup, tenant: string): Promise<void> {
  if (!(await tenants.exists(tenant))) throw new HttpFailure(404, "not_found", `no tenant "${tenant}"`);
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** Answers what a call threw: refusals with their status (§10.1.2, §11.3), outages 503, bugs 500 (logged). */
function answerFailure(error: unknown, res: ServerResponse, path: string, logger: Logger): void {
  if (error instanceof RequestAborted) {
    logger.debug({ path }, "AuthZEN request aborted by the client");
    res.destroy();
    return;
  }
  const failure = toFailure(error);
  if (failure.status >= 500) logger.error({ err: error, path }, "AuthZEN request failed");
  else logger.debug({ path, status: failure.status, reason: failure.message }, "AuthZEN request refused");
  if (res.headersSent) res.destroy();
  else sendFailure(res, failure);
}

const GATE_STATUS: Partial<Record<Code, [number, string]>> = {
  [Code.Unauthenticated]: [401, "unauthorized"],
  [Code.PermissionDenied]: [403, "forbidden"],
  [Code.ResourceExhausted]: [429, "too_many_requests"],
  [Code.Unavailable]: [503, "temporarily_unavailable"],
  [Code.DeadlineExceeded]: [503, "temporarily_unavailable"],
  [Code.FailedPrecondition]: [503, "temporarily_unavailable"],
};

function toFailure(error: unknown): HttpFailure {
  if (error instanceof HttpFailure) return error;
  if (error instanceof BadRequest) return new HttpFailure(400, "invalid_request", error.message);
  if (error instanceof ReplayStoreUnavailable) return unavailable("replay protection is unavailable; retry shortly");
  if (error instanceof ConnectError) {
    const [status, code] = GATE_STATUS[error.code] ?? [500, "internal_error"];
    if (status === 503) return unavailable("signing keys are unavailable; retry shortly");
    if (status === 500) return new HttpFailure(500, "internal_error", "the request could not be completed");
    // §11.3: a 401 carries the WWW-Authenticate challenge (Bearer, and DPoP); 429 its Retry-After.
    const headers: JsonObject = {};
    for (const name of ["www-authenticate", "retry-after"]) {
      const value = error.metadata.get(name);
      if (value) headers[name] = value;
    }
    return new HttpFailure(status, code, error.rawMessage, headers as Record<string, string>);
  }
  return new HttpFailure(500, "internal_error", "the request could not be completed");
}

function unavailable(message: string): HttpFailure {
  return new HttpFailure(503, "temporarily_unavailable", message, { "retry-after": "5" });
}
