// The MCP kit's enforcement stage (issue 19, item 1): protectMcp() in front of an MCP SDK Streamable
// HTTP transport — token verified, each JSON-RPC message mapped (COAZ-MCP) and decided, a mandate's
// usage counted per tool call, a deny turned into a JSON-RPC error or a step-up challenge — with
// two PDPs: Mandate's Authorize (access-token mode, any transport) and any AuthZEN 1.0 PDP over HTTP.
//
//   const guard = protectMcp({ server, tools, pdp: new AuthorizePdp({ authorize, tenant, audience }) });
//   http.createServer((req, res) => guard(req, res, (body) => transport.handleRequest(req, res, body)));
export {
  AUTHZEN_CONTEXT_KEY,
  type AuthorizeDecider,
  AuthorizePdp,
  type AuthorizePdpOptions,
  connectAuthorize,
  pdpDecision,
} from "./authorize-pdp.ts";
export { AuthzenHttpPdp, type AuthzenHttpPdpOptions } from "./authzen-http-pdp.ts";
export {
  type MandateUsageDeclaration,
  type McpGuard,
  type McpNext,
  type McpToolDeclaration,
  type ProtectMcpOptions,
  protectMcp,
} from "./guard.ts";
export { type BatchingPdp, isBatchingPdp, type PdpQuestion } from "./pdp.ts";
