// `mandate dev` with a 10-second rotation, observed from outside as a relying party would: the JWKS
// over HTTP, tokens signed over gRPC, keys managed with the CLI.
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createLocalJWKSet, type JWK, jwtVerify } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KeyPurpose, Signer } from "../../gen/mandate/v1/signer_pb.js";
import type { DevCa } from "../../services/cli/certs.ts";
import { serviceTransport, testCa } from "../helpers/admin.ts";
import { type MandateProcess, runMandate, startDevProcess, tlsEnv } from "../helpers/mandate-process.ts";

const PREPUBLISH_MS = 4000;
const OVERLAP_MS = 5000;
const OBSERVE_MS = 24_000;

describe("mandate dev with a 10-second rotation interval", () => {
  let dev: MandateProcess;
  let ca: DevCa;
  /** Signing is internal: the test calls as Mandate's own services, with their certificates (mTLS). */
  const as = (service: string) => createClient(Signer, serviceTransport(dev.summary.grpc as string, ca, service));
  /** The CLI as the operator runs it: the admin credentials `mandate dev` wrote, TLS to the gRPC port. */
  const cli = (args: string[]) => runMandate(args, { MANDATE_ADMIN_FILE: dev.adminFile, MANDATE_TLS_CA_FILE: ca.ca });
  beforeAll(async () => {
    ca = await testCa();
    dev = await startDevProcess({
      MANDATE_SIGNER_ROTATION_INTERVAL: "10s",
      MANDATE_SIGNER_PREPUBLISH: `${PREPUBLISH_MS}ms`,
      MANDATE_SIGNER_OVERLAP: `${OVERLAP_MS}ms`,
      // No token may outlive the overlap: the admin token the CLI gets lives 4 s.
      MANDATE_OAUTH_ACCESS_TOKEN_TTL: "4s",
      ...tlsEnv(ca, "signer"),
    });
  });
  afterAll(async () => {
    await dev?.stop();
  });

  it("serves the next key before it signs and keeps the old one through the overlap", async () => {
    const signer = as("issue");
    const jwksUrl = `${dev.summary.http}/t/demo/.well-known/jwks.json`;
    const observations: Array<{ at: number; keys: JWK[] }> = [];
    const tokens: Array<{ at: number; kid: string; jwt: string; exp: number }> = [];
    const started = Date.now();
    while (Date.now() - started < OBSERVE_MS) {
      const response = await fetch(jwksUrl);
      expect(response.status).toBe(200);
      expect(response.headers.get("content-type")).toBe("application/jwk-set+json");
      expect(response.headers.get("cache-control")).toBe("public, max-age=2");
      observations.push({ at: Date.now(), keys: ((await response.json()) as { keys: JWK[] }).keys });
      const exp = Math.floor(Date.now() / 1000) + 4;
      const claims = Buffer.from(JSON.stringify({ sub: "agent-1", exp }));
      const signed = await signer.signJwt({ tenant: "demo", claims, typ: "at+jwt" });
      tokens.push({ at: Date.now(), kid: signed.kid, jwt: signed.jwt, exp: exp * 1000 });
      await new Promise((resolve) => setTimeout(resolve, 250));
    }

    const used = [...new Set(tokens.map((t) => t.kid))];
    expect(used.length).toBeGreaterThanOrEqual(2);
    const seen = (kid: string) => observations.filter((o) => o.keys.some((k) => k.kid === kid)).map((o) => o.at);
    for (const kid of used.slice(1)) {
      // Pre-publication: visible in the JWKS seconds before the first token carries it.
      const firstUse = Math.min(...tokens.filter((t) => t.kid === kid).map((t) => t.at));
      expect(firstUse - Math.min(...seen(kid))).toBeGreaterThanOrEqual(PREPUBLISH_MS / 2);
    }
    for (const kid of used.slice(0, -1)) {
      // Overlap: still in the JWKS after its last token, until that token has expired.
      const lastUse = Math.max(...tokens.filter((t) => t.kid === kid).map((t) => t.at));
      if (lastUse + OVERLAP_MS > started + OBSERVE_MS) continue;
      expect(Math.max(...seen(kid)) - lastUse).toBeGreaterThanOrEqual(OVERLAP_MS - 1500);
    }
    // Every token verifies against every JWKS served after it, until it expires.
    for (const token of tokens) {
      for (const o of observations.filter((o) => o.at >= token.at && o.at < token.exp)) {
        await jwtVerify(token.jwt, createLocalJWKSet({ keys: o.keys }), { currentDate: new Date(o.at) });
      }
    }
  }, 60_000);

  it("lists keys and revokes the current one from the CLI; the JWKS drops it at once", async () => {
    const address = ["--address", dev.summary.grpc as string];
    const listed = await cli(["keys", "list", "--tenant", "demo", "--purpose", "token", "--json", ...address]);
    expect(listed.code, listed.stderr).toBe(0);
    const keys = JSON.parse(listed.stdout) as Array<{ kid: string; state: string; publishTime: string }>;
    const active = keys.find((k) => k.state === "KEY_STATE_ACTIVE");
    expect(active?.publishTime).toBeTruthy();

    const rotated = await cli([
      "keys",
      "rotate",
      "--tenant",
      "demo",
      "--revoke-current",
      "--reason",
      "test",
      "--json",
      ...address,
    ]);
    expect(rotated.code, rotated.stderr).toBe(0);
    const after = JSON.parse(rotated.stdout) as Array<{ kid: string; state: string }>;
    // Revoked, then destroyed at once: nothing may sign or verify with it again.
    expect(after.find((k) => k.kid === active?.kid)?.state).toBe("KEY_STATE_DESTROYED");
    expect(after.filter((k) => k.state === "KEY_STATE_ACTIVE")).toHaveLength(1);
    const jwks = (await (await fetch(`${dev.summary.http}/t/demo/.well-known/jwks.json`)).json()) as { keys: JWK[] };
    expect(jwks.keys.map((k) => k.kid)).not.toContain(active?.kid);

    const human = await cli(["keys", "list", "--tenant", "demo", ...address]);
    expect(human.stdout).toMatch(/^STATE\s+PURPOSE\s+ALG\s+KID/);
    const unknown = await fetch(`${dev.summary.http}/t/nobody/.well-known/jwks.json`);
    expect(unknown.status).toBe(404);
  }, 30_000);

  it("refuses bad signing requests with INVALID_ARGUMENT or NOT_FOUND naming the problem", async () => {
    const signer = as("issue");
    const auditor = as("audit");
    const exp = Math.floor(Date.now() / 1000) + 4;
    // Each call starts only when its turn comes, so no refusal goes unobserved.
    const failure = (call: () => Promise<unknown>) => call().then(() => undefined, ConnectError.from);
    const json = (value: unknown) => Buffer.from(JSON.stringify(value));
    const cases: Array<[() => Promise<unknown>, Code, RegExp]> = [
      [
        () => signer.signJwt({ tenant: "demo", claims: Buffer.from("not json") }),
        Code.InvalidArgument,
        /claims: must be a JSON object/,
      ],
      [
        () => signer.signJwt({ tenant: "demo", claims: json([1, 2]) }),
        Code.InvalidArgument,
        /claims: must be a JSON object/,
      ],
      [() => signer.signJwt({ tenant: "demo", claims: json({ sub: "x" }) }), Code.InvalidArgument, /numeric exp/],
      [
        () => signer.signJwt({ tenant: "demo", claims: json({ exp: exp + 3600 }) }),
        Code.InvalidArgument,
        /longest lifetime signed is 5 s/,
      ],
      [() => signer.signJwt({ tenant: "demo", claims: json({ exp }), typ: 'at+jwt",' }), Code.InvalidArgument, /typ/],
      [() => signer.signJwt({ tenant: "nobody", claims: json({ exp }) }), Code.NotFound, /tenant "nobody"/],
      [
        () => auditor.sign({ tenant: "demo", purpose: KeyPurpose.TOKEN_SIGNING, payload: Buffer.from("a.b") }),
        Code.InvalidArgument,
        /only through SignJwt/,
      ],
      [() => signer.getJwks({ tenant: "demo", purpose: KeyPurpose.UNSPECIFIED }), Code.InvalidArgument, /purpose/],
    ];
    for (const [call, code, message] of cases) {
      const error = await failure(call);
      expect(error?.code, message.source).toBe(code);
      expect(error?.rawMessage).toMatch(message);
    }
  });
});
