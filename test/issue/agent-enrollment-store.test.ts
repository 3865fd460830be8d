// Agent enrollment in process, over a real store and the Signer's real agent CA (software keystore),
// with a manual clock: what needs time to pass (an expired token, an expired certificate), and what
// happens when a transaction fails after the CA issued (a concurrent use of the token, an agent
// deleted meanwhile): no row, no spent token — and the certificate the CA made in vain is refused,
// since its serial was never recorded (fail closed).
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentTrust } from "../../services/issue/agents/agent-trust.ts";
import { AgentCertificates } from "../../services/issue/agents/certificates.ts";
import { checkCsr } from "../../services/issue/agents/csr.ts";
import { AgentEnrollment, createEnrollmentToken } from "../../services/issue/agents/enrollment.ts";
import { ClientRegistry } from "../../services/issue/clients/registry.ts";
import { AccessDenied, InvalidGrant } from "../../services/issue/oauth/errors.ts";
import { ManualClock } from "../../services/shared/clock.ts";
import { loadConfig } from "../../services/shared/config.ts";
import { createLogger } from "../../services/shared/logger.ts";
import type { AgentCaClient } from "../../services/shared/signing.ts";
import type { Store } from "../../services/shared/store/store.ts";
import { CertificateRefused, type PresentedCertificate } from "../../services/shared/x509/types.ts";
import { SoftwareBackend } from "../../services/signer/backends/software.ts";
import { AgentCertificateAuthority } from "../../services/signer/ca/authority.ts";
import { agentCaTiming } from "../../services/signer/ca/timing.ts";
import { KeyManager } from "../../services/signer/keys.ts";
import { engines } from "../helpers/engines.ts";
import { csr, privateKey } from "../helpers/openssl-pki.ts";
import { type OpenedStore, openStore } from "../helpers/store.ts";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const logger = createLogger("silent");
const config = loadConfig({ env: {} });
const admin = { by: { service: "test" } };

let opened: OpenedStore;
let store: Store;
let clock: ManualClock;
let keys: KeyManager;
let ca: AgentCertificateAuthority;
let clients: ClientRegistry;

beforeAll(async () => {
  opened = await openStore(engines.at(-1) as (typeof engines)[number], {
    tenants: { acme: "Acme" },
    createdAt: 0,
    poolSize: 4,
  });
  store = opened.store;
  clock = new ManualClock(Date.now());
  keys = new KeyManager({
    store,
    backend: new SoftwareBackend(store, randomBytes(32)),
    clock,
    logger,
    timing: { intervalMs: DAY, prepublishMs: 6 * HOUR, overlapMs: HOUR, checkMs: 10 * MINUTE },
    purposeTiming: agentCaTiming(config.agents.ca),
    defaultAlgorithm: "ES256",
  });
  await keys.start({ schedule: false });
  ca = new AgentCertificateAuthority({
    keys,
    store,
    clock,
    logger,
    trustDomainSuffix: config.agents.trustDomainSuffix,
    publicBaseUrl: "https://mandate.example",
  });
  clients = new ClientRegistry(store, clock);
}, 60_000);

afterAll(async () => {
  await keys?.stop();
  await opened?.close();
});

async function newAgent(): Promise<string> {
  const { client } = await clients.create("acme", {
    kind: "agent",
    owner: "alice",
    client_name: "store agent",
    dpop_jkt: randomBytes(32).toString("base64url"),
    grant_types: ["client_credentials"],
  });
  return client.clientId;
}

function enrollment(agentCa: AgentCaClient = ca): AgentEnrollment {
  return new AgentEnrollment({ store, clock, config, agentCa, logger });
}

async function token(clientId: string): Promise<{ token: string; id: string }> {
  return createEnrollmentToken({ store, clock, config }, { tenant: "acme", clientId }, admin);
}

async function tokenRow(id: string) {
  return store
    .forTenant("acme")
    .db.selectFrom("agent_enrollment_tokens")
    .selectAll()
    .where("tenant_id", "=", "acme")
    .where("id", "=", id)
    .executeTakeFirstOrThrow();
}

/** The payloads of the tenant's audit events of `type` (the outbox rows their transactions wrote). */
async function events(type: string): Promise<Array<Record<string, unknown>>> {
  const rows = await store
    .forTenant("acme")
    .db.selectFrom("audit_outbox")
    .select("payload")
    .where("tenant_id", "=", "acme")
    .where("type", "=", type)
    .execute();
  return rows.map((r) => JSON.parse(r.payload) as Record<string, unknown>);
}

async function newCsr() {
  return checkCsr(csr(privateKey("ec").keyPem).pem);
}

function presented(der: Uint8Array, chain: Uint8Array[]): PresentedCertificate {
  return { leaf: der, chain, source: "tls" };
}

async function refusal(call: Promise<unknown>): Promise<CertificateRefused> {
  const error = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(CertificateRefused);
  return error as CertificateRefused;
}

describe("enrollment tokens", () => {
  it("expire after their lifetime, which a request may shorten but never lengthen", async () => {
    const clientId = await newAgent();
    const short = await createEnrollmentToken(
      { store, clock, config },
      { tenant: "acme", clientId, ttlMs: 10 * MINUTE },
      admin,
    );
    expect(Number((await tokenRow(short.id)).expires_at)).toBe(clock.now() + 10 * MINUTE);
    const long = await createEnrollmentToken(
      { store, clock, config },
      { tenant: "acme", clientId, ttlMs: 30 * DAY },
      admin,
    );
    expect(Number((await tokenRow(long.id)).expires_at)).toBe(clock.now() + config.agents.enrollmentTokenTtl);
    const row = await tokenRow(short.id);
    expect(row.token_hash).not.toContain(short.token);
    expect(row.created_by).toBe("test");

    clock.advance(10 * MINUTE);
    const expired = enrollment().enrollWithToken("acme", short.token, await newCsr());
    await expect(expired).rejects.toThrow(new InvalidGrant("the enrollment token has expired; ask for a new one"));
    expect((await tokenRow(short.id)).used_at).toBeNull();
  });
});

describe("a transaction that fails after the CA issued", () => {
  it("leaves neither a spent token nor a row when the agent is deleted meanwhile; the certificate is refused", async () => {
    const clientId = await newAgent();
    const { token: secret, id } = await token(clientId);
    let issued: Awaited<ReturnType<AgentCaClient["issueAgentCertificate"]>> | undefined;
    // The real CA, and the agent deleted by an administrator between issuance and commit.
    const racing: AgentCaClient = {
      trustBundle: (tenant) => ca.trustBundle(tenant),
      signCrls: (tenant, revoked, next) => ca.signCrls(tenant, revoked, next),
      async issueAgentCertificate(request) {
        issued = await ca.issueAgentCertificate(request);
        await clients.delete("acme", clientId, admin);
        return issued;
      },
    };
    // The deletion voided the token (and would refuse the agent): the transaction aborts.
    const attempt = enrollment(racing).enrollWithToken("acme", secret, await newCsr());
    await expect(attempt).rejects.toThrow(
      new InvalidGrant("the enrollment token is no longer valid (used, expired or voided meanwhile)"),
    );
    expect(issued).toBeDefined();
    const row = await tokenRow(id);
    expect(row.used_at).toBeNull();
    expect(row.used_serial).toBeNull();
    expect(await new AgentCertificates(store).list("acme", clientId)).toEqual([]);
    const issuedEvents = await events("agent.certificate.issued.v1");
    expect(issuedEvents.filter((e) => e.serial === issued?.serial)).toEqual([]);

    const trust = new AgentTrust(store, ca, config, clock, logger);
    const refused = await refusal(
      trust.verify(
        "acme",
        presented((issued as { certificateDer: Uint8Array }).certificateDer, issued?.chainDer ?? []),
      ),
    );
    expect(refused.reason).toBe("revoked");
    expect(refused.message).toContain("not one this tenant's CA issued");
  });

  it("refuses a renewal whose current certificate is revoked while the CA issues (access_denied, no row)", async () => {
    const clientId = await newAgent();
    const first = await enrollment().enrollWithToken("acme", (await token(clientId)).token, await newCsr());
    const trust = new AgentTrust(store, ca, config, clock, logger);
    const current = await trust.verify("acme", presented(first.certificate.certificateDer, first.certificate.chainDer));
    const revoking: AgentCaClient = {
      trustBundle: (tenant) => ca.trustBundle(tenant),
      signCrls: (tenant, revoked, next) => ca.signCrls(tenant, revoked, next),
      async issueAgentCertificate(request) {
        const issued = await ca.issueAgentCertificate(request);
        await new AgentCertificates(store).revoke(
          "acme",
          clientId,
          { reason: "keyCompromise", now: clock.now() },
          admin,
        );
        return issued;
      },
    };
    const renewal = enrollment(revoking).renew("acme", current, await newCsr());
    await expect(renewal).rejects.toThrow(new AccessDenied("the current certificate was revoked"));
    const rows = await new AgentCertificates(store).list("acme", clientId);
    expect(rows.map((r) => r.serial)).toEqual([first.certificate.serial]);
  });

  it("lets exactly one of two concurrent uses of a token record its certificate", async () => {
    const clientId = await newAgent();
    const { token: secret, id } = await token(clientId);
    const results = await Promise.allSettled([
      enrollment().enrollWithToken("acme", secret, await newCsr()),
      enrollment().enrollWithToken("acme", secret, await newCsr()),
    ]);
    const won = results.filter((r) => r.status === "fulfilled");
    const lost = results.filter((r) => r.status === "rejected");
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(1);
    expect((lost[0] as PromiseRejectedResult).reason).toBeInstanceOf(InvalidGrant);
    const recorded = await new AgentCertificates(store).list("acme", clientId);
    expect(recorded).toHaveLength(1);
    expect((await tokenRow(id)).used_serial).toBe(recorded[0]?.serial);
    const audited = (await events("agent.certificate.issued.v1")).filter((e) => e.enrollment_token_id === id);
    expect(audited).toEqual([
      expect.objectContaining({ client_id: clientId, serial: recorded[0]?.serial, proof: "enrollment_token" }),
    ]);
    expect((await events("agent.enrollment_token.created.v1")).filter((e) => e.token_id === id)).toEqual([
      {
        token_id: id,
        client_id: clientId,
        expires_at: Number((await tokenRow(id)).expires_at),
        by: { service: "test" },
      },
    ]);
  });
});

describe("AgentTrust", () => {
  it("accepts a recorded certificate, refuses it once expired, and refuses it at once when revoked", async () => {
    const clientId = await newAgent();
    const enrolled = await enrollment().enrollWithToken("acme", (await token(clientId)).token, await newCsr());
    const { certificateDer, chainDer, serial } = enrolled.certificate;
    const trust = new AgentTrust(store, ca, config, clock, logger);
    const verified = await trust.verify("acme", presented(certificateDer, chainDer));
    expect(verified).toMatchObject({ clientId, serial, spiffeId: enrolled.spiffeId, x5tS256: enrolled.x5tS256 });

    // Revocation takes effect on the next use (no deny-list cache).
    const revoked = await new AgentCertificates(store).revoke(
      "acme",
      clientId,
      { serial, reason: "keyCompromise", now: clock.now() },
      admin,
    );
    expect(revoked).toEqual([serial]);
    const revocations = (await events("agent.certificates.revoked.v1")).filter((e) => e.client_id === clientId);
    expect(revocations).toEqual([
      { client_id: clientId, serials: [serial], reason: "keyCompromise", cause: "revoked", by: { service: "test" } },
    ]);
    expect((await refusal(trust.verify("acme", presented(certificateDer, chainDer)))).message).toContain(
      "the certificate was revoked",
    );
    const crl = await new AgentCertificates(store).revokedUnexpired("acme", clock.now());
    expect(crl).toContainEqual({ serial, revokedAt: clock.now(), reason: "keyCompromise" });

    // A second certificate, past its end of validity (plus the tolerated skew).
    const second = await enrollment().enrollWithToken("acme", (await token(clientId)).token, await newCsr());
    const certificate = second.certificate;
    clock.advance(certificate.notAfter - clock.now() + 2 * MINUTE);
    const expired = await refusal(trust.verify("acme", presented(certificate.certificateDer, certificate.chainDer)));
    expect(expired.reason).toBe("expired");
    // Expired certificates leave the CRL.
    expect(await new AgentCertificates(store).revokedUnexpired("acme", clock.now())).toEqual([]);
  });

  it("refuses another tenant's deny list: a serial recorded for another agent is not this agent's", async () => {
    const clientId = await newAgent();
    const enrolled = await enrollment().enrollWithToken("acme", (await token(clientId)).token, await newCsr());
    const deny = new AgentCertificates(store);
    expect(await deny.denied("acme", enrolled.certificate.serial, clientId)).toBeUndefined();
    expect(await deny.denied("acme", enrolled.certificate.serial, "someone-else")).toBe("wrong_agent");
    expect(await deny.denied("acme", "00FF", clientId)).toBe("unknown");
  });
});
