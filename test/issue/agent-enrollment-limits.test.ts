// Failed enrollment proofs count against the client's address like failed client authentications
// (rateLimits.failedClientAuth.perIp): once the bucket is empty, even a valid token waits (429).
import { afterAll, beforeAll, expect, it } from "vitest";
import { type OAuthServer, registerKeylessAgent, startOAuthServer } from "../helpers/oauth-server.ts";
import { csr, privateKey } from "../helpers/openssl-pki.ts";

let server: OAuthServer;

beforeAll(async () => {
  server = await startOAuthServer({
    MANDATE_RATE_LIMITS_ENABLED: "true",
    MANDATE_RATE_LIMITS_FAILED_CLIENT_AUTH_PER_IP: "0.001:3",
  });
}, 120_000);

afterAll(async () => {
  await server?.stop();
});

it("refuses enrollment from an address after too many wrong tokens (slow_down, Retry-After)", async () => {
  // Created before the failures: the admin's own client authentication shares the address's bucket.
  const clientId = await registerKeylessAgent(server, { clientName: "limited agent" });
  const { token } = await server.issue.createAgentEnrollmentToken({ tenant: "demo", clientId });
  const pem = csr(privateKey("ec").keyPem).pem;
  const enroll = (enrollmentToken: string) =>
    fetch(`${server.issuer}/agents/enroll`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ csr: pem, enrollment_token: enrollmentToken }),
    });
  for (let i = 0; i < 3; i++) {
    const wrong = await enroll(`mandate_enroll_${"x".repeat(42)}${i}`);
    expect(wrong.status).toBe(400);
    expect(((await wrong.json()) as { error: string }).error).toBe("invalid_grant");
  }
  const limited = await enroll(token);
  expect(limited.status).toBe(429);
  expect(limited.headers.get("retry-after")).toMatch(/^\d+$/);
  expect(((await limited.json()) as { error: string }).error).toBe("slow_down");
});
