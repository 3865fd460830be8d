// The MCP kit (issue 19): protect any MCP server with Mandate, and give agents' MCP clients tokens
// from a mandate. One entry for its four parts and their contract (types.ts):
//   resource/ — RFC 9728 metadata, WWW-Authenticate challenges, the token verifier and guards;
//   coaz/     — JSON-RPC messages mapped to AuthZEN requests (COAZ-MCP binding);
//   pep/      — protectMcp(): the requests decided (Authorize or any AuthZEN PDP), usage counted;
//   client/   — an MCP SDK client's OAuthClientProvider and DPoP fetch backed by a mandate.
// Authorize's gRPC client, for AuthorizePdp in a process of its own.
export { AuthorizeClient, type AuthorizeClientOptions } from "../authorize/client.ts";
export * from "./client/index.ts";
export * from "./coaz/index.ts";
export * from "./pep/index.ts";
export * from "./resource/index.ts";
export * from "./types.ts";
