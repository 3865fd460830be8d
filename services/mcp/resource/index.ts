// The resource-server kit for MCP servers (issue 19, item 1): RFC 9728 metadata, WWW-Authenticate
// challenges, the token verifier (also as the MCP SDK's OAuthTokenVerifier) and the guards for
// plain http, Express and Fastify-style frameworks. In a few lines:
//
//   const mcp = new McpResourceServer({ issuer: "https://mandate.example/t/acme",
//     resource: "https://mcp.example.com/mcp", scopesSupported: ["mcp:tools"], revocations: feed });
//   const guard = protect(mcp);            // serves the metadata too
//   http.createServer(async (req, res) => { if (await guard(req, res)) transport.handleRequest(req, res); });
//   // Express: app.use(mcp.metadataHandler()); app.use("/mcp", guard)
//   // or the SDK's: app.post("/mcp", withRequestContext(), requireBearerAuth({ verifier: mcp.tokenVerifier(),
//   //   resourceMetadataUrl: mcp.resourceMetadataUrl }), handler)   — bearer tokens only (verifier.ts)
export {
  type ChallengeError,
  type ChallengeOptions,
  challengeStatus,
  McpAuthError,
  quotedValue,
  wwwAuthenticate,
} from "./challenge.ts";
export { type IntrospectionOptions, type Introspector, introspector } from "./introspection.ts";
export {
  canonicalResource,
  type MetadataHandler,
  metadataHandler,
  metadataUrls,
  type ProtectedResourceMetadata,
  type ProtectedResourceMetadataOptions,
  protectedResourceMetadata,
  serveMetadata,
} from "./metadata.ts";
export {
  fastifyHook,
  type Guard,
  type HookReply,
  type HookRequest,
  type ProtectedRequest,
  type ProtectOptions,
  protect,
  sendRefusal,
} from "./middleware.ts";
export { authInfo, McpResourceServer, type McpResourceServerOptions, withRequestContext } from "./verifier.ts";
