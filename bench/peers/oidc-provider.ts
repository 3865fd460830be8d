// The baseline for bench/oauth.ts: panva's oidc-provider (OpenID-certified, the usual Node.js
// choice), configured like Mandate's benchmark tenant: client_credentials with client_secret_basic,
// ES256-signed JWT access tokens (RFC 9068) for a resource indicator, 300 s lifetime, introspection
// on. Runs in its own process; prints {"port": N} on stdout once listening.
//
//   node bench/peers/oidc-provider.ts <port> <client_id> <client_secret> [opaque]
import { generateKeyPairSync } from "node:crypto";
import { createServer } from "node:http";
import Provider from "oidc-provider";

const [portArg, clientId, clientSecret, format] = process.argv.slice(2);
if (!portArg || !clientId || !clientSecret) {
  process.stderr.write("usage: node bench/peers/oidc-provider.ts <port> <client_id> <client_secret> [opaque]\n");
  process.exit(2);
}
const port = Number(portArg);
const issuer = `http://127.0.0.1:${port}`;
const resource = "https://api.example.com/";
const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
const jwk = { ...privateKey.export({ format: "jwk" }), kid: "bench-es256", alg: "ES256", use: "sig" };

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      grant_types: ["client_credentials"],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: "client_secret_basic",
      id_token_signed_response_alg: "ES256",
      scope: "orders.read",
    },
  ],
  jwks: { keys: [jwk as never] },
  scopes: ["orders.read"],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: "orders.read",
        audience: resource,
        accessTokenTTL: 300,
        accessTokenFormat: format === "opaque" ? "opaque" : "jwt",
        jwt: { sign: { alg: "ES256" } },
      }),
    },
  },
});
provider.proxy = false;
const server = createServer(provider.callback());
server.keepAliveTimeout = 65_000;
server.listen(port, "127.0.0.1", () => process.stdout.write(`${JSON.stringify({ port, issuer })}\n`));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
