// The MCP kit's client side (issue 19, item 3): an MCP SDK client calling an MCP server for an agent
// that holds a mandate — token exchange of the mandate (RFC 8693), DPoP-bound tokens and proofs
// (RFC 9449), refresh or re-exchange before expiry and on invalid_token, and typed refusals.
//
//   const transport = mandateTransport("https://mcp.example.com/mcp", {
//     issuer: "https://mandate.example.com/t/demo",
//     clientId, clientAuthentication: { method: "client_secret_basic", clientSecret },
//     dpopKeys, mandateId,
//   });
//   await new Client({ name: "agent", version: "1.0.0" }).connect(transport);
//
// or `new StreamableHTTPClientTransport(url, mandateClientAuth(options))` (its authProvider and fetch).
export {
  AccessTokenRefused,
  InsufficientScope,
  MandateClientError,
  type MandateCondition,
  MandateUnusable,
  StepUpRequired,
  TokenRequestRefused,
} from "./errors.ts";
export { type MandateClientAuth, mandateClientAuth, mandateTransport } from "./mandate-client-auth.ts";
export {
  type ClientAuthentication,
  MANDATE_TOKEN_TYPE,
  type MandateClientAuthOptions,
  MandateSession,
  type MandateTokenStorage,
  type MandateTokens,
  TOKEN_EXCHANGE,
} from "./session.ts";
