// Access-token mode's verification and derivation, with real tokens signed by a key of the tenant's
// key set and the shared TokenInspector over a real store: the subject, the actor chain (outermost
// `act` first, RFC 8693 §4.1), the client and the token's claims come from the token; every
// refusal is a reason code (token_invalid, token_expired, token_wrong_tenant, dpop_required,
// dpop_invalid), never a throw.
import { createHash, randomBytes } from "node:crypto";
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type TokenSubject,
  type TokenSubjectDeps,
  tokenSubject,
} from "../../services/authorize/engine/token-subject.ts";
import { createLogger } from "../../services/shared/logger.ts";
import { CachedKeySet } from "../../services/shared/oauth/access-token.ts";
import { accessTokenHash } from "../../services/shared/oauth/dpop.ts";
import { GrantStore } from "../../services/shared/oauth/grant-store.ts";
import { TokenInspector } from "../../services/shared/oauth/inspector.ts";
import { MemoryReplayCache, RedisReplayCache } from "../../services/shared/oauth/replay.ts";
import { RevocationIndex } from "../../services/shared/oauth/revocations.ts";
import { Store } from "../../services/shared/store/store.ts";
import { tempDatabaseUrl } from "../helpers/mandate-process.ts";

const issuer = (tenant: string) => `https://mandate.test/t/${tenant}`;
const API = "https://api.example.com/";
let store: Store;
let signingKey: CryptoKey;
let deps: TokenSubjectDeps;
let revocations: RevocationIndex;
const errors: unknown[] = [];

beforeAll(async () => {
  store = Store.open({ url: tempDatabaseUrl() });
  await store.migrate();
  revocations = RevocationIndex.readingStore(store, createLogger("silent"));
  await store.db.insertInto("tenants").values({ id: "demo", display_name: "Demo", created_at: 0 }).execute();
  const pair = await generateKeyPair("ES256");
  signingKey = pair.privateKey;
  const publicJwk = { ...(await exportJWK(pair.publicKey)), kid: "k1", alg: "ES256", use: "sig" };
  const keys = new CachedKeySet(async () => ({ jwks: { keys: [publicJwk] }, maxAgeSeconds: 300 }));
  const inspector = new TokenInspector({ store, keys: () => keys, issuer, revocations, now: () => Date.now() });
  deps = {
    inspector,
    replay: new MemoryReplayCache(),
    skewMs: 60_000,
    now: () => Date.now(),
    onError: (e) => errors.push(e),
  };
});

afterAll(async () => {
  await store?.close();
});

interface Mint {
  claims?: Record<string, unknown>;
  typ?: string;
  key?: CryptoKey;
  kid?: string;
}

async function mint({ claims = {}, typ = "at+jwt", key, kid = "k1" }: Mint = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({
    iss: issuer("demo"),
    sub: "alice",
    client_id: "agent-app",
    aud: API,
    scope: "orders.read orders.write",
    jti: crypto.randomUUID(),
    iat: now,
    exp: now + 300,
    ...claims,
  })
    .setProtectedHeader({ alg: "ES256", typ, kid })
    .sign(key ?? signingKey);
}

// The binding check hashes the DER it is given (RFC 8705 §3.1) without parsing it.
const certificate = new Uint8Array(randomBytes(300));
const certificateThumbprint = createHash("sha256").update(certificate).digest("base64url");

const subjectOf = (accessToken: string, extra: Partial<Parameters<typeof tokenSubject>[1]> = {}) =>
  tokenSubject(deps, { tenant: "demo", accessToken, ...extra });

function refusal(subject: TokenSubject): string | undefined {
  return subject.ok ? undefined : subject.reason.code;
}

describe("parties from a verified token", () => {
  it("takes the subject, the actor chain (outermost first), the client and the claims from the token", async () => {
    const token = await mint({
      claims: {
        amr: ["pwd", "mfa"],
        acr: "urn:mandate:acr:mfa",
        auth_time: 1_800_000_000,
        act: { sub: "agent-2", iss: "https://agents.example/", act: { sub: "agent-1" } },
        authorization_details: [{ type: "order", actions: ["orders.read"] }, "not an object"],
        mandate_id: "m-42",
        cnf: { "x5t#S256": certificateThumbprint },
      },
    });
    // Bound to a certificate (RFC 8705): decided only with it.
    const subject = await subjectOf(token, { clientCertificate: certificate });
    expect(subject.ok).toBe(true);
    if (!subject.ok) return;
    expect(subject.parties.subject).toEqual({
      id: "alice",
      kind: "human",
      attributes: { acr: "urn:mandate:acr:mfa", amr: ["pwd", "mfa"], auth_time: 1_800_000_000 },
    });
    expect(subject.parties.actors).toEqual([
      { id: "agent-2", kind: "agent", attributes: { iss: "https://agents.example/" } },
      { id: "agent-1", kind: "agent", attributes: {} },
    ]);
    expect(subject.parties.client).toEqual({ id: "agent-app", kind: "service", attributes: {} });
    expect(subject.parties.token).toMatchObject({
      scopes: ["orders.read", "orders.write"],
      aud: [API],
      authorization_details: [{ type: "order", actions: ["orders.read"] }],
      mandate_id: "m-42",
      cnf: { "x5t#S256": certificateThumbprint },
    });
    expect(subject.parties.token.jti).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("calls a client acting for itself (client credentials) a service", async () => {
    const subject = await subjectOf(await mint({ claims: { sub: "agent-app" } }));
    expect(subject.ok && subject.parties.subject).toEqual({ id: "agent-app", kind: "service", attributes: {} });
  });

  it("reads at most 16 actors of a deeper chain", async () => {
    let act: Record<string, unknown> = { sub: "agent-0" };
    for (let i = 1; i < 30; i++) act = { sub: `agent-${i}`, act };
    const subject = await subjectOf(await mint({ claims: { act } }));
    expect(subject.ok && subject.parties.actors.map((a) => a.id)).toEqual(
      Array.from({ length: 16 }, (_, i) => `agent-${29 - i}`),
    );
  });
});

describe("refusals", () => {
  it("token_expired for a token past its exp (beyond the allowed skew)", async () => {
    const past = Math.floor(Date.now() / 1000) - 600;
    expect(refusal(await subjectOf(await mint({ claims: { iat: past - 300, exp: past } })))).toBe("token_expired");
  });

  it("token_wrong_tenant for a token of another issuer", async () => {
    expect(refusal(await subjectOf(await mint({ claims: { iss: issuer("acme") } })))).toBe("token_wrong_tenant");
  });

  it("token_invalid for another key, a wrong typ, garbage, a refresh token, a revoked token, another audience", async () => {
    const stranger = (await generateKeyPair("ES256")).privateKey;
    expect(refusal(await subjectOf(await mint({ key: stranger })))).toBe("token_invalid");
    expect(refusal(await subjectOf(await mint({ key: stranger, kid: "k9" })))).toBe("token_invalid");
    expect(refusal(await subjectOf(await mint({ typ: "JWT" })))).toBe("token_invalid");
    expect(refusal(await subjectOf("a.b.c"))).toBe("token_invalid");
    expect(refusal(await subjectOf("mrt_0123456789"))).toBe("token_invalid");
    const revoked = await mint({ claims: { jti: "revoked-jti" } });
    expect(refusal(await subjectOf(revoked))).toBeUndefined();
    await store
      .forTenant("demo")
      .use(GrantStore)
      .revokeAccessToken("revoked-jti", Date.now() + 600_000);
    expect(refusal(await subjectOf(revoked))).toBe("token_invalid");
    const token = await mint();
    expect(refusal(await subjectOf(token, { expectedAudience: "https://other.example/" }))).toBe("token_invalid");
    expect(refusal(await subjectOf(token, { expectedAudience: API }))).toBeUndefined();
  });

  it("token_invalid, never a throw, when the tenant's keys cannot be fetched", async () => {
    const unreachable = new CachedKeySet(async () => {
      throw new Error("the Signer is unreachable");
    });
    const inspector = new TokenInspector({
      store,
      keys: () => unreachable,
      issuer,
      revocations,
      now: () => Date.now(),
    });
    errors.length = 0;
    const subject = await tokenSubject({ ...deps, inspector }, { tenant: "demo", accessToken: await mint() });
    expect(refusal(subject)).toBe("token_invalid");
    expect(errors).toHaveLength(1);
  });
});

describe("DPoP-bound tokens (RFC 9449 §7.1)", () => {
  async function boundToken() {
    const pair = await generateKeyPair("ES256");
    const jwk = (await exportJWK(pair.publicKey)) as JWK;
    const jkt = await calculateJwkThumbprint(jwk);
    const token = await mint({ claims: { cnf: { jkt } } });
    const proof = async (claims: Record<string, unknown> = {}) => ({
      proof: await new SignJWT({
        jti: crypto.randomUUID(),
        iat: Math.floor(Date.now() / 1000),
        htm: "POST",
        htu: `${API}orders`,
        ath: accessTokenHash(token),
        ...claims,
      })
        .setProtectedHeader({ alg: "ES256", typ: "dpop+jwt", jwk })
        .sign(pair.privateKey),
      httpMethod: "POST",
      httpUri: `${API}orders`,
    });
    return { token, proof };
  }

  it("requires the proof, by the bound key, for this request and token, once", async () => {
    const { token, proof } = await boundToken();
    expect(refusal(await subjectOf(token))).toBe("dpop_required");
    const good = await proof();
    expect(refusal(await subjectOf(token, { dpop: good }))).toBeUndefined();
    expect(refusal(await subjectOf(token, { dpop: good }))).toBe("dpop_invalid"); // replayed (§11.1)
    expect(refusal(await subjectOf(token, { dpop: await proof({ htm: "GET" }) }))).toBe("dpop_invalid");
    expect(refusal(await subjectOf(token, { dpop: await proof({ ath: accessTokenHash("other") }) }))).toBe(
      "dpop_invalid",
    );
    const other = await boundToken();
    expect(refusal(await subjectOf(token, { dpop: await other.proof({ ath: accessTokenHash(token) }) }))).toBe(
      "dpop_invalid",
    );
  });

  it("denies dpop_invalid, never a throw, when the replay cache cannot be reached", async () => {
    const { token, proof } = await boundToken();
    const replay = new RedisReplayCache("redis://127.0.0.1:1/0");
    errors.length = 0;
    try {
      const subject = await tokenSubject(
        { ...deps, replay },
        { tenant: "demo", accessToken: token, dpop: await proof() },
      );
      expect(refusal(subject)).toBe("dpop_invalid");
      expect(errors).toHaveLength(1);
    } finally {
      await replay.close();
    }
  });
});
