// Workload attestation (issue 17 item 2) against a real upstream: an HTTPS server (node:https, a
// certificate made by openssl) publishing OpenID-style discovery and the JWK Set of keys generated
// here, as a Kubernetes cluster's service-account issuer does, and tokens shaped exactly like
// Kubernetes projected service-account tokens (iss, sub system:serviceaccount:<ns>:<name>, aud, exp,
// iat, nbf, jti, kubernetes.io). The JWK Set is fetched through the SSRF-safe fetcher; the store is
// the real one. Every check has its refusal: wrong or unknown issuer, wrong audience, expired, not
// yet valid, too long-lived, alg none and HS256 keyed with the public key (alg confusion), another
// key's signature, a replay, an unbound subject, a deleted or non-agent client, kubernetes.io
// disagreeing with sub, and a JWKS host the fetcher refuses.
import { randomUUID } from "node:crypto";
import { createServer, type Server } from "node:https";
import { getCACertificates, setDefaultCACertificates } from "node:tls";
import { exportJWK, exportSPKI, generateKeyPair, type JWK, type JWTPayload, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AgentAttestation,
  AgentAttestors,
  type AttestationRefusal,
  AttestationRefused,
  AttestorChangeRefused,
} from "../../services/issue/agents/attestation.ts";
import { ClientRegistry } from "../../services/issue/clients/registry.ts";
import { systemClock } from "../../services/shared/clock.ts";
import { loadConfig } from "../../services/shared/config.ts";
import { RemoteJwks } from "../../services/shared/net/remote-jwks.ts";
import { MemoryReplayCache, RedisReplayCache } from "../../services/shared/oauth/replay.ts";
import { engines } from "../helpers/engines.ts";
import { type OpenedStore, openStore } from "../helpers/store.ts";
import { listen, selfSignedCertificate } from "../helpers/tls.ts";

const TENANT = "demo";
const AUDIENCE = "mandate";
const SUBJECT = "system:serviceaccount:agents:orders-agent";
const ADMIN = { by: { role: "test administrator" } };

let opened: OpenedStore;
let upstream: Server;
let issuer: string;
let signingKey: CryptoKey;
let publicKeyPem: string;
let kid: string;
let attestation: AgentAttestation;
let attestors: AgentAttestors;
let clients: ClientRegistry;
let agentId: string;
const config = loadConfig({ env: { MANDATE_OAUTH_ALLOW_PRIVATE_METADATA_HOSTS: "true" } });
const strictConfig = loadConfig({ env: {} });
const REDIS_URL = process.env.MANDATE_TEST_REDIS_URL ?? "redis://127.0.0.1:6379/0";
/** The issuer's published keys: rotation replaces them. */
let published: JWK[] = [];

/** A Kubernetes projected service-account token (audience `mandate`, 10 minutes), `changes` applied. */
async function serviceAccountToken(
  changes: { claims?: JWTPayload; header?: Record<string, unknown>; key?: CryptoKey; lifetimeS?: number } = {},
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const lifetime = changes.lifetimeS ?? 600;
  const claims: JWTPayload = {
    aud: [AUDIENCE],
    exp: now + lifetime,
    iat: now,
    nbf: now,
    iss: issuer,
    jti: randomUUID(),
    sub: SUBJECT,
    "kubernetes.io": {
      namespace: "agents",
      node: { name: "node-1", uid: randomUUID() },
      pod: { name: "orders-agent-7d9f8c6b5-x2k4q", uid: randomUUID() },
      serviceaccount: { name: "orders-agent", uid: randomUUID() },
    },
    ...changes.claims,
  };
  return new SignJWT(claims)
    .setProtectedHeader({ alg: "RS256", kid, ...changes.header })
    .sign(changes.key ?? signingKey);
}

async function refusal(jwt: string, using = attestation): Promise<AttestationRefusal> {
  const error = await using.attest(TENANT, jwt).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, "the attestation was accepted").toBeInstanceOf(AttestationRefused);
  return (error as AttestationRefused).reason;
}

function b64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString("base64url");
}

async function newAgent(owner = "alice"): Promise<string> {
  const { client } = await clients.create(TENANT, {
    kind: "agent",
    owner,
    client_name: "Orders agent",
    grant_types: ["client_credentials"],
    dpop_jkt: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I",
  });
  return client.clientId;
}

beforeAll(async () => {
  opened = await openStore(engines.at(-1) as (typeof engines)[number], {
    tenants: { demo: "Demo" },
    createdAt: Date.now(),
    poolSize: 2,
  });
  const { publicKey, privateKey } = await generateKeyPair("RS256", { extractable: true });
  signingKey = privateKey;
  publicKeyPem = await exportSPKI(publicKey);
  kid = randomUUID();
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid, alg: "RS256", use: "sig" };
  published = [jwk];
  // The cluster's issuer: discovery and the JWK Set over HTTPS, trusted here as a cluster's CA would be.
  const tls = selfSignedCertificate();
  setDefaultCACertificates([...getCACertificates("default"), tls.cert]);
  upstream = createServer({ key: tls.key, cert: tls.cert }, (req, res) => {
    const body =
      req.url === "/.well-known/openid-configuration"
        ? {
            issuer,
            jwks_uri: `${issuer}/openid/v1/jwks`,
            response_types_supported: ["id_token"],
            subject_types_supported: ["public"],
            id_token_signing_alg_values_supported: ["RS256"],
          }
        : req.url === "/openid/v1/jwks"
          ? { keys: published }
          : undefined;
    res.writeHead(body ? 200 : 404, { "content-type": "application/json" });
    res.end(JSON.stringify(body ?? { error: "not found" }));
  });
  issuer = `https://127.0.0.1:${await listen(upstream)}`;

  clients = new ClientRegistry(opened.store, systemClock);
  const services = {
    store: opened.store,
    clock: systemClock,
    config,
    clients,
    jwks: new RemoteJwks({ allowPrivate: true, cooldownMs: 0 }),
    replay: new MemoryReplayCache(),
  };
  attestation = new AgentAttestation(services);
  attestors = new AgentAttestors(services);
  agentId = await newAgent();
  // As an administrator would: the JWK Set URL from the issuer's discovery document.
  const discovery = (await (await fetch(`${issuer}/.well-known/openid-configuration`)).json()) as { jwks_uri: string };
  const jwksUri = discovery.jwks_uri;
  await attestors.createAttestor(TENANT, { name: "cluster-1", issuer, audience: AUDIENCE, jwksUri }, ADMIN);
  await attestors.bindWorkload(TENANT, { attestor: "cluster-1", subject: SUBJECT, clientId: agentId }, ADMIN);
}, 60_000);

afterAll(async () => {
  upstream?.close();
  await opened?.close();
});

describe("a Kubernetes service-account token", () => {
  it("attests the agent its subject is bound to, once", async () => {
    const jwt = await serviceAccountToken();
    expect(await attestation.attest(TENANT, jwt)).toEqual({
      clientId: agentId,
      attestor: "cluster-1",
      subject: SUBJECT,
    });
    expect(await refusal(jwt)).toBe("replayed");
  });

  it("without a jti is accepted once, keyed on its hash", async () => {
    const jwt = await serviceAccountToken({ claims: { jti: undefined } });
    expect((await attestation.attest(TENANT, jwt)).clientId).toBe(agentId);
    expect(await refusal(jwt)).toBe("replayed");
  });

  it("may carry several audiences, ours among them", async () => {
    const jwt = await serviceAccountToken({ claims: { aud: ["https://kubernetes.default.svc", AUDIENCE] } });
    expect((await attestation.attest(TENANT, jwt)).clientId).toBe(agentId);
  });
});

describe("refusals", () => {
  it("an issuer no attestor has, and one differing from the attestor's by a byte", async () => {
    expect(await refusal(await serviceAccountToken({ claims: { iss: "https://cluster-2.example" } }))).toBe(
      "unknown_issuer",
    );
    expect(await refusal(await serviceAccountToken({ claims: { iss: `${issuer}/` } }))).toBe("unknown_issuer");
    expect(await refusal(await serviceAccountToken({ claims: { iss: undefined } }))).toBe("malformed");
    expect(await refusal("not.a.jwt")).toBe("malformed");
  });

  it("a wrong audience", async () => {
    expect(await refusal(await serviceAccountToken({ claims: { aud: ["https://kubernetes.default.svc"] } }))).toBe(
      "wrong_audience",
    );
  });

  it("expired, not yet valid, issued in the future, no exp", async () => {
    const now = Math.floor(Date.now() / 1000);
    expect(
      await refusal(await serviceAccountToken({ claims: { iat: now - 900, nbf: now - 900, exp: now - 300 } })),
    ).toBe("expired");
    expect(await refusal(await serviceAccountToken({ claims: { nbf: now + 600 } }))).toBe("not_yet_valid");
    expect(await refusal(await serviceAccountToken({ claims: { iat: now + 600, exp: now + 900 } }))).toBe(
      "not_yet_valid",
    );
    expect(await refusal(await serviceAccountToken({ claims: { exp: undefined } }))).toBe("missing_claim");
  });

  it("a token living longer than an hour", async () => {
    expect(await refusal(await serviceAccountToken({ lifetimeS: 3601 }))).toBe("too_long_lived");
    // Kubernetes' default projected lifetime, exactly an hour, is accepted.
    expect((await attestation.attest(TENANT, await serviceAccountToken({ lifetimeS: 3600 }))).clientId).toBe(agentId);
  });

  it("alg none, and HS256 keyed with the issuer's public key (algorithm confusion)", async () => {
    const now = Math.floor(Date.now() / 1000);
    const claims = { iss: issuer, sub: SUBJECT, aud: [AUDIENCE], iat: now, exp: now + 600, jti: randomUUID() };
    expect(await refusal(`${b64url({ alg: "none", typ: "JWT" })}.${b64url(claims)}.`)).toBe("algorithm_not_allowed");
    const confused = await new SignJWT(claims)
      .setProtectedHeader({ alg: "HS256", kid })
      .sign(new TextEncoder().encode(publicKeyPem));
    expect(await refusal(confused)).toBe("algorithm_not_allowed");
  });

  it("a signature by another key, under the issuer's kid or its own", async () => {
    const other = (await generateKeyPair("RS256")).privateKey;
    expect(await refusal(await serviceAccountToken({ key: other }))).toBe("bad_signature");
    expect(await refusal(await serviceAccountToken({ key: other, header: { kid: "someone-else" } }))).toBe(
      "bad_signature",
    );
  });

  it("a subject bound to no agent", async () => {
    expect(await refusal(await serviceAccountToken({ claims: unboundAccount("billing-agent") }))).toBe(
      "unbound_subject",
    );
  });

  it("kubernetes.io naming another service account or namespace than sub", async () => {
    const k8s = (namespace: string, name: string) => ({
      "kubernetes.io": { namespace, serviceaccount: { name, uid: randomUUID() } },
    });
    expect(await refusal(await serviceAccountToken({ claims: k8s("agents", "billing-agent") }))).toBe(
      "kubernetes_claims_mismatch",
    );
    expect(await refusal(await serviceAccountToken({ claims: k8s("kube-system", "orders-agent") }))).toBe(
      "kubernetes_claims_mismatch",
    );
    expect(await refusal(await serviceAccountToken({ claims: { "kubernetes.io": { namespace: "agents" } } }))).toBe(
      "kubernetes_claims_mismatch",
    );
  });

  it("a binding whose client was deleted, or is not an agent", async () => {
    const doomed = await newAgent();
    const subject = "system:serviceaccount:agents:doomed-agent";
    await attestors.bindWorkload(TENANT, { attestor: "cluster-1", subject, clientId: doomed }, ADMIN);
    await clients.delete(TENANT, doomed);
    expect(await refusal(await serviceAccountToken({ claims: unboundAccount("doomed-agent") }))).toBe("not_an_agent");

    // A binding made to an application behind the admin API's back (bindWorkload refuses it).
    const { client: application } = await clients.create(TENANT, { grant_types: ["client_credentials"] });
    await opened.store
      .forTenant(TENANT)
      .db.insertInto("agent_workload_bindings")
      .values({
        tenant_id: TENANT,
        attestor: "cluster-1",
        subject: "system:serviceaccount:agents:app",
        client_id: application.clientId,
        created_at: Date.now(),
      })
      .execute();
    expect(await refusal(await serviceAccountToken({ claims: unboundAccount("app") }))).toBe("not_an_agent");
  });

  it("a JWK Set on a private address when private hosts are not allowed", async () => {
    const strict = new AgentAttestation({
      store: opened.store,
      clock: systemClock,
      config: strictConfig,
      clients,
      jwks: new RemoteJwks({ allowPrivate: false }),
      replay: new MemoryReplayCache(),
    });
    expect(await refusal(await serviceAccountToken(), strict)).toBe("jwks_unavailable");
    // Registering such a URL is refused outright.
    const strictAdmin = new AgentAttestors({ store: opened.store, clock: systemClock, config: strictConfig, clients });
    await expect(
      strictAdmin.createAttestor(
        TENANT,
        { name: "private", issuer: "https://private.example", audience: AUDIENCE, jwksUri: `${issuer}/openid/v1/jwks` },
        ADMIN,
      ),
    ).rejects.toThrow(/127\.0\.0\.1 is not a public address/);
  });
});

describe("replicas and key rotation", () => {
  it("two replicas sharing Redis accept a token once between them", async () => {
    const replica = (replay: RedisReplayCache) =>
      new AgentAttestation({
        store: opened.store,
        clock: systemClock,
        config,
        clients,
        jwks: new RemoteJwks({ allowPrivate: true }),
        replay,
      });
    const caches = [new RedisReplayCache(REDIS_URL), new RedisReplayCache(REDIS_URL)];
    try {
      const [one, two] = caches.map(replica) as [AgentAttestation, AgentAttestation];
      const jwt = await serviceAccountToken();
      expect((await one.attest(TENANT, jwt)).clientId).toBe(agentId);
      expect(await refusal(jwt, two)).toBe("replayed");
    } finally {
      for (const cache of caches) await cache.close();
    }
  });

  it("a token signed with the issuer's new key verifies once the key is published (refetched on an unknown kid)", async () => {
    const { publicKey, privateKey } = await generateKeyPair("ES256");
    const rotated: JWK = { ...(await exportJWK(publicKey)), kid: "rotated-key", alg: "ES256", use: "sig" };
    const token = () => serviceAccountToken({ key: privateKey, header: { alg: "ES256", kid: "rotated-key" } });
    // Not yet published: no key matches.
    expect(await refusal(await token())).toBe("bad_signature");
    published = [...published, rotated];
    expect((await attestation.attest(TENANT, await token())).clientId).toBe(agentId);
  });
});

describe("administration", () => {
  it("an attestor with an inline JWK Set verifies tokens without fetching", async () => {
    const { publicKey, privateKey } = await generateKeyPair("ES256");
    const inlineIssuer = "https://oidc.cluster-2.example";
    const jwk = { ...(await exportJWK(publicKey)), kid: "k1" };
    await attestors.createAttestor(
      TENANT,
      { name: "cluster-2", issuer: inlineIssuer, audience: AUDIENCE, jwks: { keys: [jwk] } },
      ADMIN,
    );
    await attestors.bindWorkload(
      TENANT,
      { attestor: "cluster-2", subject: "spiffe-less-workload", clientId: agentId },
      ADMIN,
    );
    const now = Math.floor(Date.now() / 1000);
    const jwt = await new SignJWT({ sub: "spiffe-less-workload", aud: AUDIENCE })
      .setProtectedHeader({ alg: "ES256", kid: "k1" })
      .setIssuer(inlineIssuer)
      .setIssuedAt(now)
      .setExpirationTime(now + 300)
      .sign(privateKey);
    expect(await attestation.attest(TENANT, jwt)).toEqual({
      clientId: agentId,
      attestor: "cluster-2",
      subject: "spiffe-less-workload",
    });
    // Deleting it removes its bindings: its tokens attest nobody any more.
    expect(await attestors.deleteAttestor(TENANT, "cluster-2", ADMIN)).toBe(1);
    expect(await refusal(jwt)).toBe("unknown_issuer");
    expect(await attestors.deleteAttestor(TENANT, "cluster-2", ADMIN)).toBeUndefined();
  });

  it("refuses duplicates, private or symmetric keys, non-https URLs, non-agents, unknown names", async () => {
    const change = (fn: () => Promise<unknown>) =>
      fn().then(
        () => undefined,
        (e: unknown) => (e instanceof AttestorChangeRefused ? `${e.kind}:${e.field}` : String(e)),
      );
    const base = { issuer: "https://other.example", audience: AUDIENCE };
    expect(
      await change(() =>
        attestors.createAttestor(TENANT, { ...base, name: "cluster-1", jwksUri: "https://x.example/jwks" }, ADMIN),
      ),
    ).toBe("exists:name");
    expect(
      await change(() =>
        attestors.createAttestor(TENANT, { ...base, issuer, name: "again", jwksUri: "https://x.example/jwks" }, ADMIN),
      ),
    ).toBe("exists:issuer");
    expect(
      await change(() =>
        attestors.createAttestor(TENANT, { ...base, name: "plain", jwksUri: "http://x.example/jwks" }, ADMIN),
      ),
    ).toBe("invalid:jwks_uri");
    expect(
      await change(() =>
        attestors.createAttestor(
          TENANT,
          { ...base, name: "hmac", jwks: { keys: [{ kty: "oct", k: "c2VjcmV0" }] } },
          ADMIN,
        ),
      ),
    ).toBe("invalid:jwks");
    const { privateKey } = await generateKeyPair("ES256", { extractable: true });
    const privateJwk = await exportJWK(privateKey);
    expect(
      await change(() =>
        attestors.createAttestor(TENANT, { ...base, name: "private", jwks: { keys: [privateJwk] } }, ADMIN),
      ),
    ).toBe("invalid:jwks");
    const { client: application } = await clients.create(TENANT, { grant_types: ["client_credentials"] });
    const bind = (attestor: string, clientId: string) =>
      attestors.bindWorkload(TENANT, { attestor, subject: "s", clientId }, ADMIN);
    expect(await change(() => bind("cluster-1", application.clientId))).toBe("invalid:client_id");
    expect(await change(() => bind("cluster-1", "no-such-client"))).toBe("not_found:client_id");
    expect(await change(() => bind("no-such-attestor", agentId))).toBe("not_found:attestor");
    expect(
      await change(() =>
        attestors.bindWorkload(TENANT, { attestor: "cluster-1", subject: SUBJECT, clientId: agentId }, ADMIN),
      ),
    ).toBe("exists:subject");
  });

  it("each change is audited in its transaction; an unbound subject attests nobody", async () => {
    const subject = "system:serviceaccount:agents:temp-agent";
    await attestors.bindWorkload(TENANT, { attestor: "cluster-1", subject, clientId: agentId }, ADMIN);
    const listed = await attestors.listAttestors(TENANT);
    expect(listed.find((a) => a.name === "cluster-1")?.bindings.map((b) => b.subject)).toContain(subject);
    expect(await attestors.unbindWorkload(TENANT, "cluster-1", subject, ADMIN)).toBe(true);
    expect(await attestors.unbindWorkload(TENANT, "cluster-1", subject, ADMIN)).toBe(false);
    expect(await refusal(await serviceAccountToken({ claims: unboundAccount("temp-agent") }))).toBe("unbound_subject");
    const events = await opened.store
      .forTenant(TENANT)
      .db.selectFrom("audit_outbox")
      .select(["type", "payload"])
      .where("tenant_id", "=", TENANT)
      .where("type", "like", "agent.%")
      .execute();
    const types = events.map((e) => e.type);
    expect(types).toContain("agent.attestor.created.v1");
    expect(types).toContain("agent.attestor.deleted.v1");
    expect(types).toContain("agent.workload.bound.v1");
    expect(types).toContain("agent.workload.unbound.v1");
    const unbound = events.find((e) => e.type === "agent.workload.unbound.v1");
    expect(JSON.parse(unbound?.payload ?? "{}")).toMatchObject({ attestor: "cluster-1", subject, client_id: agentId });
  });
});

function unboundAccount(name: string): JWTPayload {
  return {
    sub: `system:serviceaccount:agents:${name}`,
    "kubernetes.io": { namespace: "agents", serviceaccount: { name, uid: randomUUID() } },
  };
}
