// Wrong API keys at the token endpoint count against the client's address like failed client
// authentications (rateLimits.failedClientAuth.perIp): once the bucket is empty, even a valid key
// waits (429 slow_down with Retry-After), so keys cannot be guessed at the request rate.
import { afterAll, beforeAll, expect, it } from "vitest";
import { registerAgent } from "../helpers/agents.ts";
import { type OAuthServer, startOAuthServer } from "../helpers/oauth-server.ts";

const TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange";
const API_KEY_TYPE = "urn:mandate:params:oauth:token-type:api-key";

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

function exchange(subjectToken: string): Promise<Response> {
  return fetch(`${server.issuer}/oauth2/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: TOKEN_EXCHANGE,
      subject_token: subjectToken,
      subject_token_type: API_KEY_TYPE,
    }),
  });
}

it("refuses exchanges from an address after too many wrong keys (slow_down, Retry-After)", async () => {
  // Made before the failures: the admin's own client authentication shares the address's bucket.
  const agent = await registerAgent(server.issue, { scope: "orders:read", resources: ["https://orders.example"] });
  const { key } = await server.issue.createApiKey({
    tenant: "demo",
    clientId: agent.clientId,
    scopes: ["orders:read"],
  });
  const guesses = ["mdk_not_a_key", `mdk_0000000000000000_${"A".repeat(43)}000000`, `${key.slice(0, -1)}?`];
  for (const guess of guesses) {
    const wrong = await exchange(guess);
    expect(wrong.status).toBe(400);
    expect(((await wrong.json()) as { error: string }).error).toBe("invalid_grant");
  }
  const limited = await exchange(key);
  expect(limited.status).toBe(429);
  expect(limited.headers.get("retry-after")).toMatch(/^\d+$/);
  expect(((await limited.json()) as { error: string }).error).toBe("slow_down");
});
