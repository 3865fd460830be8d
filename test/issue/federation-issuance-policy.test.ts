// The federation gateway asks the tenant's policy before minting (issuance-policy.ts); with no
// answer there is no token. The allow/narrow/deny paths run end to end in tenant-trust.test.ts.
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { describe, expect, it } from "vitest";
import { Authorize } from "../../gen/mandate/v1/authorize_pb.js";
import { scopesPolicyAllows } from "../../services/issue/federation/gateway/issuance-policy.ts";
import type { OAuthServices } from "../../services/issue/oauth/context.ts";
import { TemporarilyUnavailable } from "../../services/issue/oauth/errors.ts";
import { createLogger } from "../../services/shared/logger.ts";

describe("policy at federated issuance", () => {
  it("is temporarily_unavailable, and issues nothing, when Authorize cannot be reached (fail closed)", async () => {
    // A real Authorize client whose server is gone: port 1 on loopback refuses the connection.
    const client = createClient(Authorize, createGrpcTransport({ baseUrl: "http://127.0.0.1:1" }));
    const services = { authorize: () => client, logger: createLogger("silent") } as unknown as OAuthServices;
    const asked = scopesPolicyAllows(services, {
      tenant: "demo",
      grantType: "urn:ietf:params:oauth:grant-type:jwt-bearer",
      clientId: "agent-1",
      identity: {
        clientId: "agent-1",
        act: { sub: "external", iss: "https://idp.example" },
        protocol: "jwt",
        issuer: "https://idp.example",
        subject: "external",
        trustId: "trust-1",
        allowedScopes: ["orders.read"],
        allowedResources: [],
      },
      scope: ["orders.read"],
      audience: [],
    });
    await expect(asked).rejects.toBeInstanceOf(TemporarilyUnavailable);
    await expect(asked).rejects.toThrow(/Authorize is unreachable/);
  });
});
