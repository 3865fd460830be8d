// The Signer's per-tenant agent CA over a real store and real key backends (the software keystore and
// SoftHSM2 through PKCS#11), called through its RPCs (in-memory transport, protovalidate included)
// and directly. Every certificate and CRL is checked by an independent tool: the openssl CLI.
import { execFileSync } from "node:child_process";
import { generateKeyPairSync, randomBytes, X509Certificate } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { KeyPurpose, Signer } from "../../gen/mandate/v1/signer_pb.js";
import { ManualClock } from "../../services/shared/clock.ts";
import { createLogger } from "../../services/shared/logger.ts";
import { IN_PROCESS } from "../../services/shared/rpc/access.ts";
import { wrapService } from "../../services/shared/rpc/service.ts";
import type { AgentCaClient } from "../../services/shared/signing.ts";
import { Store } from "../../services/shared/store/store.ts";
import { svidProblems } from "../../services/shared/x509/svid-conformance.ts";
import type { KeyBackend } from "../../services/signer/backends/backend.ts";
import { Pkcs11Backend } from "../../services/signer/backends/pkcs11.ts";
import { SoftwareBackend } from "../../services/signer/backends/software.ts";
import { AgentCertificateAuthority } from "../../services/signer/ca/authority.ts";
import { RemoteAgentCaClient } from "../../services/signer/ca/client.ts";
import { buildLeafCertificate, parseCaCertificate } from "../../services/signer/ca/profiles.ts";
import { agentCaTiming } from "../../services/signer/ca/timing.ts";
import { KeyManager } from "../../services/signer/keys.ts";
import type { KeyRecord } from "../../services/signer/schedule.ts";
import { signerService } from "../../services/signer/service.ts";
import { engines } from "../helpers/engines.ts";
import { createSoftHsmToken, softhsmAvailable } from "../helpers/softhsm.ts";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const MINUTE = 60_000;
const logger = createLogger("silent");
const SUFFIX = "agents.mandate.local";
const BASE_URL = "https://mandate.example";
const tokenTiming = { intervalMs: DAY, prepublishMs: 6 * HOUR, overlapMs: HOUR, checkMs: 10 * MINUTE };
const caConfig = { rootInterval: 365 * DAY, intermediateInterval: 7 * DAY, intermediatePrepublish: DAY };

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Ca {
  store: Store;
  clock: ManualClock;
  keys: KeyManager;
  ca: AgentCertificateAuthority;
  /** The CA through the Signer's RPCs (RemoteAgentCaClient over an in-memory transport). */
  remote: AgentCaClient;
  rpc: ReturnType<typeof createClient<typeof Signer>>;
}

async function openStore(url: string): Promise<Store> {
  const store = Store.open({ url });
  await store.migrate();
  cleanups.push(() => store.close());
  for (const id of ["acme", "globex"]) {
    await store.db.insertInto("tenants").values({ id, display_name: id, created_at: 0 }).execute();
  }
  return store;
}

/** One Signer replica: its key manager (not scheduling: tests tick it) and its CA. */
async function replica(store: Store, backend: KeyBackend, clock: ManualClock) {
  const keys = new KeyManager({
    store,
    backend,
    clock,
    logger,
    timing: tokenTiming,
    purposeTiming: agentCaTiming(caConfig),
    defaultAlgorithm: "ES256",
  });
  await keys.start({ schedule: false });
  cleanups.push(() => keys.stop());
  const ca = new AgentCertificateAuthority({
    keys,
    store,
    clock,
    logger,
    trustDomainSuffix: SUFFIX,
    publicBaseUrl: BASE_URL,
  });
  return { keys, ca };
}

async function setUp(options: { url?: string; backend?: (store: Store) => KeyBackend } = {}): Promise<Ca> {
  const url = options.url ?? `sqlite:${join(mkdtempSync(join(tmpdir(), "mandate-ca-")), "m.db")}`;
  const store = await openStore(url);
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  const backend = options.backend?.(store) ?? new SoftwareBackend(store, randomBytes(32));
  const { keys, ca } = await replica(store, backend, clock);
  const impl = wrapService(signerService(keys, ca), {
    logger,
    tenants: undefined,
    defaultDeadlineMs: 30_000,
    access: IN_PROCESS,
  });
  const transport = createRouterTransport((router) => router.service(Signer, impl));
  const rpc = createClient(Signer, transport);
  return { store, clock, keys, ca, rpc, remote: new RemoteAgentCaClient(() => rpc) };
}

const dirs: string[] = [];
function workDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "mandate-ca-openssl-"));
  dirs.push(dir);
  return dir;
}

function pem(label: string, der: Uint8Array): string {
  const body = Buffer.from(der)
    .toString("base64")
    .replace(/(.{64})/g, "$1\n");
  return `-----BEGIN ${label}-----\n${body.trimEnd()}\n-----END ${label}-----\n`;
}

/** Writes PEM files and returns their paths. */
function files(dir: string, entries: Record<string, string>): Record<string, string> {
  const paths: Record<string, string> = {};
  for (const [name, text] of Object.entries(entries)) {
    paths[name] = join(dir, name);
    writeFileSync(paths[name], text);
  }
  return paths;
}

/** `openssl verify` of a leaf against roots (trust anchors) and intermediates (untrusted), at `at` ms. */
function opensslVerify(
  leaf: Uint8Array,
  bundle: { roots: Uint8Array[]; intermediates: Uint8Array[] },
  at: number,
  extra: string[] = [],
): { ok: boolean; output: string } {
  const dir = workDir();
  const paths = files(dir, {
    "roots.pem": bundle.roots.map((der) => pem("CERTIFICATE", der)).join(""),
    "intermediates.pem": bundle.intermediates.map((der) => pem("CERTIFICATE", der)).join(""),
    "leaf.pem": pem("CERTIFICATE", leaf),
  });
  const args = ["verify", "-x509_strict", "-purpose", "sslclient", "-attime", String(Math.floor(at / 1000))];
  args.push("-CAfile", paths["roots.pem"] as string);
  if (bundle.intermediates.length > 0) args.push("-untrusted", paths["intermediates.pem"] as string);
  args.push(...extra, paths["leaf.pem"] as string);
  try {
    return { ok: true, output: execFileSync("openssl", args, { encoding: "utf8", stdio: "pipe" }) };
  } catch (error) {
    const failed = error as { stdout?: string; stderr?: string };
    return { ok: false, output: `${failed.stdout ?? ""}${failed.stderr ?? ""}` };
  }
}

function opensslText(der: Uint8Array): string {
  const dir = workDir();
  const paths = files(dir, { "c.pem": pem("CERTIFICATE", der) });
  return execFileSync("openssl", ["x509", "-noout", "-text", "-in", paths["c.pem"] as string], { encoding: "utf8" });
}

function agentKey(): Uint8Array {
  const { publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  return publicKey.export({ type: "spki", format: "der" });
}

function spiffe(tenant: string, clientId: string): string {
  return `spiffe://${tenant}.${SUFFIX}/agent/${clientId}`;
}

async function issue(ca: AgentCaClient, clock: ManualClock, tenant = "acme", clientId = "bot-1", ttl = HOUR) {
  return ca.issueAgentCertificate({
    tenant,
    publicKeySpki: agentKey(),
    spiffeId: spiffe(tenant, clientId),
    notAfter: clock.now() + ttl,
  });
}

async function expectCode(promise: Promise<unknown>, code: Code, message?: RegExp): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, "expected a refusal").toBeInstanceOf(ConnectError);
  expect(Code[(error as ConnectError).code]).toBe(Code[code]);
  if (message) expect((error as ConnectError).message).toMatch(message);
}

describe("agent CA: bootstrap and certificate profiles", () => {
  it("makes a root and an intermediate on first use, and issues a leaf openssl verifies as an X.509-SVID", async () => {
    const { ca, remote, clock, keys, store } = await setUp();
    const issued = await issue(remote, clock);
    const bundle = await remote.trustBundle("acme");
    expect(bundle.roots).toHaveLength(1);
    expect(bundle.intermediates).toHaveLength(1);
    expect(Buffer.from(issued.chainDer[0] as Uint8Array)).toEqual(Buffer.from(bundle.intermediates[0] as Uint8Array));
    expect(opensslVerify(issued.certificateDer, bundle, clock.now())).toEqual({ ok: true, output: expect.any(String) });
    expect(svidProblems(issued.certificateDer)).toEqual([]);

    const leaf = opensslText(issued.certificateDer);
    expect(leaf).toMatch(/Basic Constraints: critical\s+CA:FALSE/);
    expect(leaf).toMatch(/Key Usage: critical\s+Digital Signature\n/);
    expect(leaf).toMatch(/Extended Key Usage:\s+TLS Web Server Authentication, TLS Web Client Authentication/);
    expect(leaf).toMatch(/Subject Alternative Name:\s+URI:spiffe:\/\/acme\.agents\.mandate\.local\/agent\/bot-1\n/);
    expect(leaf).toContain("Subject: O = Mandate, OU = acme, CN = bot-1");
    expect(leaf).toContain(`URI:${BASE_URL}/t/acme/agents/crl/${issued.issuerKid}.crl`);
    expect(leaf).toMatch(/Subject Key Identifier/);
    expect(leaf).toMatch(/Authority Key Identifier/);
    const parsed = new X509Certificate(issued.certificateDer);
    expect(parsed.serialNumber.replace(/^00/, "")).toBe(issued.serial);
    expect(issued.serial).toMatch(/^[4-7][0-9A-F]{31}$/); // 16 octets, positive, no leading zero
    expect(Date.parse(parsed.validFrom)).toBe(issued.notBefore);
    expect(issued.notBefore).toBe(clock.now() - 5 * MINUTE);
    expect(Date.parse(parsed.validTo)).toBe(issued.notAfter);

    const root = opensslText(bundle.roots[0] as Uint8Array);
    expect(root).toMatch(/Basic Constraints: critical\s+CA:TRUE, pathlen:1/);
    expect(root).toMatch(/Key Usage: critical\s+Certificate Sign, CRL Sign/);
    expect(root).toMatch(/Name Constraints: critical\s+Permitted:\s+URI:acme\.agents\.mandate\.local/);
    expect(root).toMatch(/ASN1 OID: prime256v1/);
    const intermediate = opensslText(bundle.intermediates[0] as Uint8Array);
    expect(intermediate).toMatch(/Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
    expect(intermediate).toMatch(/Key Usage: critical\s+Certificate Sign, CRL Sign/);

    // The CA keys are ordinary Signer keys, ES256, with their certificate rows.
    const caKeys = await keys.listKeys("acme");
    expect(caKeys.filter((k) => k.purpose === "agent_ca_root").map((k) => k.alg)).toEqual(["ES256"]);
    expect(caKeys.filter((k) => k.purpose === "agent_ca").map((k) => k.alg)).toEqual(["ES256"]);
    const rows = await store
      .forTenant("acme")
      .db.selectFrom("agent_ca_certificates")
      .selectAll()
      .where("tenant_id", "=", "acme")
      .execute();
    expect(rows.map((r) => r.role).sort()).toEqual(["intermediate", "root"]);
    // Direct and RPC paths agree on one CA.
    const direct = (await ca.trustBundle("acme")).roots.map((der) => Buffer.from(der));
    expect(direct).toEqual(bundle.roots.map((der) => Buffer.from(der)));
  });

  it("publishes the SPIFFE bundle: roots as x509-svid JWKs with x5c, a sequence and a refresh hint", async () => {
    const { remote } = await setUp();
    const bundle = await remote.trustBundle("acme");
    const [jwk] = bundle.spiffeBundle.keys;
    expect(bundle.spiffeBundle.keys).toHaveLength(1);
    expect(jwk).toMatchObject({ kty: "EC", crv: "P-256", use: "x509-svid" });
    expect(jwk?.x5c).toEqual([Buffer.from(bundle.roots[0] as Uint8Array).toString("base64")]);
    // The JWK is the root certificate's key.
    const fromCert = new X509Certificate(bundle.roots[0] as Uint8Array).publicKey.export({ format: "jwk" });
    expect({ x: jwk?.x, y: jwk?.y }).toEqual({ x: fromCert.x, y: fromCert.y });
    expect(bundle.spiffeBundle.spiffe_sequence).toBeGreaterThan(0);
    expect(bundle.spiffeBundle.spiffe_refresh_hint).toBe(bundle.maxAgeSeconds);
    expect(bundle.maxAgeSeconds).toBeGreaterThan(0);
    expect(bundle.maxAgeSeconds).toBeLessThanOrEqual(300);
  });

  it("adds keyEncipherment for RSA agent keys only, and accepts Ed25519", async () => {
    const { remote, clock } = await setUp();
    const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey.export({ type: "spki", format: "der" });
    const issuedRsa = await remote.issueAgentCertificate({
      tenant: "acme",
      publicKeySpki: rsa,
      spiffeId: spiffe("acme", "rsa-bot"),
      notAfter: clock.now() + HOUR,
    });
    expect(opensslText(issuedRsa.certificateDer)).toMatch(/Key Usage: critical\s+Digital Signature, Key Encipherment/);
    const ed = generateKeyPairSync("ed25519").publicKey.export({ type: "spki", format: "der" });
    const issuedEd = await remote.issueAgentCertificate({
      tenant: "acme",
      publicKeySpki: ed,
      spiffeId: spiffe("acme", "ed-bot"),
      notAfter: clock.now() + HOUR,
    });
    expect(opensslText(issuedEd.certificateDer)).toMatch(/Key Usage: critical\s+Digital Signature\n/);
    const bundle = await remote.trustBundle("acme");
    expect(opensslVerify(issuedEd.certificateDer, bundle, clock.now()).ok).toBe(true);
  });
});

describe("agent CA: refusals", () => {
  it("refuses a SPIFFE ID of another tenant's trust domain, or not an agent ID", async () => {
    const { remote, clock } = await setUp();
    const request = { tenant: "acme", publicKeySpki: agentKey(), notAfter: clock.now() + HOUR };
    for (const spiffeId of [
      spiffe("globex", "bot-1"), // another tenant's trust domain
      "spiffe://acme.agents.mandate.local/service/bot-1", // not an agent ID
      "spiffe://acme.agents.mandate.local/agent/bot-1/extra",
      "spiffe://ACME.agents.mandate.local/agent/bot-1", // trust domains are lower case
      "spiffe://acme.agents.mandate.local:443/agent/bot-1",
      "spiffe://acme.evil.example/agent/bot-1",
      "spiffe://acme.agents.mandate.local/agent/bot%2F1",
    ]) {
      await expectCode(remote.issueAgentCertificate({ ...request, spiffeId }), Code.InvalidArgument, /spiffe_id/);
    }
    // Not a spiffe:// URI at all: protovalidate refuses it before the CA sees it.
    await expectCode(
      remote.issueAgentCertificate({ ...request, spiffeId: "https://acme.agents.mandate.local/agent/bot-1" }),
      Code.InvalidArgument,
    );
  });

  it("refuses a lifetime over 24 hours or in the past, and keys it does not certify", async () => {
    const { remote, clock } = await setUp();
    const base = { tenant: "acme", publicKeySpki: agentKey(), spiffeId: spiffe("acme", "bot-1") };
    await expectCode(
      remote.issueAgentCertificate({ ...base, notAfter: clock.now() + DAY + 1000 }),
      Code.InvalidArgument,
      /24 hours/,
    );
    await expectCode(remote.issueAgentCertificate({ ...base, notAfter: clock.now() - 1000 }), Code.InvalidArgument);
    const weakRsa = generateKeyPairSync("rsa", { modulusLength: 1024 }).publicKey.export({
      type: "spki",
      format: "der",
    });
    await expectCode(
      remote.issueAgentCertificate({ ...base, publicKeySpki: weakRsa, notAfter: clock.now() + HOUR }),
      Code.InvalidArgument,
      /2048/,
    );
    const k1 = generateKeyPairSync("ec", { namedCurve: "secp256k1" }).publicKey.export({ type: "spki", format: "der" });
    await expectCode(
      remote.issueAgentCertificate({ ...base, publicKeySpki: k1, notAfter: clock.now() + HOUR }),
      Code.InvalidArgument,
      /P-256/,
    );
    await expectCode(
      remote.issueAgentCertificate({ ...base, publicKeySpki: randomBytes(64), notAfter: clock.now() + HOUR }),
      Code.InvalidArgument,
      /SubjectPublicKeyInfo/,
    );
  });

  it("refuses the CA purposes on Sign, SignJwt's keys and GetJwks, naming the right RPC", async () => {
    const { rpc, remote, clock } = await setUp();
    await issue(remote, clock); // the CA keys exist
    for (const purpose of [KeyPurpose.AGENT_CA_ROOT, KeyPurpose.AGENT_CA]) {
      await expectCode(
        rpc.sign({ tenant: "acme", purpose, payload: Buffer.from("anything") }),
        Code.InvalidArgument,
        /IssueAgentCertificate/,
      );
      await expectCode(rpc.getJwks({ tenant: "acme", purpose }), Code.InvalidArgument, /GetAgentTrustBundle/);
    }
    // SignJwt signs only with token keys: its JWT carries the token key's kid, never a CA key's.
    const exp = Math.floor(clock.now() / 1000) + 60;
    const { kid } = await rpc.signJwt({ tenant: "acme", claims: Buffer.from(JSON.stringify({ exp })) });
    const { keys } = await rpc.listKeys({ tenant: "acme" });
    expect(keys.find((k) => k.kid === kid)?.purpose).toBe(KeyPurpose.TOKEN_SIGNING);
  });

  it("refuses CRL entries that are not upper-case hex serials or RFC 5280 reasons, and a past nextUpdate", async () => {
    const { remote, clock } = await setUp();
    const ok = { serial: "4A", revokedAt: clock.now() };
    await expectCode(remote.signCrls("acme", [{ ...ok, serial: "4a" }], clock.now() + HOUR), Code.InvalidArgument);
    await expectCode(remote.signCrls("acme", [{ ...ok, reason: "bored" }], clock.now() + HOUR), Code.InvalidArgument);
    await expectCode(remote.signCrls("acme", [ok], clock.now() - 1), Code.InvalidArgument, /next_update/);
  });

  it("refuses an unknown tenant", async () => {
    const { remote, clock } = await setUp();
    await expectCode(issue(remote, clock, "initech"), Code.NotFound);
  });
});

describe("agent CA: tenant isolation", () => {
  it("a tenant's leaf does not verify against another tenant's bundle, nor chain through its intermediate", async () => {
    const { remote, clock } = await setUp();
    const acmeLeaf = await issue(remote, clock, "acme");
    const globexLeaf = await issue(remote, clock, "globex");
    const acme = await remote.trustBundle("acme");
    const globex = await remote.trustBundle("globex");
    expect(opensslVerify(acmeLeaf.certificateDer, acme, clock.now()).ok).toBe(true);
    expect(opensslVerify(globexLeaf.certificateDer, globex, clock.now()).ok).toBe(true);
    const crossed = opensslVerify(acmeLeaf.certificateDer, globex, clock.now());
    expect(crossed.ok).toBe(false);
    expect(crossed.output).toMatch(/unable to get (local )?issuer certificate/);
    // Even given acme's intermediate, globex's root does not anchor it.
    const mixed = { roots: globex.roots, intermediates: [...globex.intermediates, ...acme.intermediates] };
    expect(opensslVerify(acmeLeaf.certificateDer, mixed, clock.now()).ok).toBe(false);
  });

  it("the root's name constraint refuses a chain to a URI outside the tenant's trust domain", async () => {
    // A leaf the CA would never issue (it names globex), signed with acme's intermediate key directly
    // through the key manager: acme's root constraint (RFC 5280 §4.2.1.10) makes openssl refuse it.
    const { ca, clock, keys } = await setUp();
    await issue(ca, clock);
    const bundle = await ca.trustBundle("acme");
    const intermediateKey = (await keys.liveKeys("acme", "agent_ca"))[0] as KeyRecord;
    const forged = await buildLeafCertificate(
      {
        tenant: "acme",
        clientId: "bot-1",
        spiffeId: spiffe("globex", "bot-1"),
        publicKeySpki: agentKey(),
        serial: "4A4A",
        notBefore: clock.now() - MINUTE,
        notAfter: clock.now() + HOUR,
        issuer: parseCaCertificate(bundle.intermediates[0] as Uint8Array),
        crlUrl: `${BASE_URL}/x.crl`,
      },
      (data) => keys.signWithKey(intermediateKey, data),
    );
    const refused = opensslVerify(forged, bundle, clock.now());
    expect(refused.ok).toBe(false);
    expect(refused.output).toMatch(/permitted subtree violation/);
  });
});

describe("agent CA: rotation with pre-publication and overlap", () => {
  it("a new intermediate is in the bundle before it issues, and a retired one stays until its leaves expire", async () => {
    const { remote, clock, keys } = await setUp();
    const first = await issue(remote, clock, "acme", "bot-1", DAY);
    const firstKid = first.issuerKid;
    // Just before the successor is due: only the first intermediate.
    clock.advance(6 * DAY - MINUTE);
    await keys.tick();
    expect((await remote.trustBundle("acme")).intermediates).toHaveLength(1);
    // Pre-publication: one day before the switch the successor is published but does not issue.
    clock.advance(2 * MINUTE);
    await keys.tick();
    const prepublished = await remote.trustBundle("acme");
    expect(prepublished.intermediates).toHaveLength(2);
    // Late in the first intermediate's term it still issues, for a full day.
    clock.advance(20 * HOUR);
    await keys.tick();
    const stillFirst = await issue(remote, clock, "acme", "bot-2", DAY);
    expect(stillFirst.issuerKid).toBe(firstKid);
    // After the switch the successor issues; the first stays published (overlap) for its leaves.
    clock.advance(8 * HOUR);
    await keys.tick();
    const second = await issue(remote, clock, "acme", "bot-3", HOUR);
    expect(second.issuerKid).not.toBe(firstKid);
    const afterSwitch = await remote.trustBundle("acme");
    expect(afterSwitch.intermediates).toHaveLength(2);
    // stillFirst (issued by the retired intermediate) still verifies against the bundle as served now.
    expect(opensslVerify(stillFirst.certificateDer, afterSwitch, clock.now()).output).toMatch(/: OK/);
    expect(opensslVerify(second.certificateDer, afterSwitch, clock.now()).output).toMatch(/: OK/);
    // The successor was certified by the same root and chains to it.
    expect(afterSwitch.roots).toHaveLength(1);
    // Its leaves capped by the overlap: once the last possible leaf expired, the first leaves the bundle.
    clock.advance(DAY + MINUTE);
    await keys.tick();
    const later = await remote.trustBundle("acme");
    expect(later.intermediates).toHaveLength(1);
    const kids = (await keys.listKeys("acme", "agent_ca")).map((k) => [k.kid, k.state]);
    expect(kids).toContainEqual([firstKid, expect.stringMatching(/expired|destroyed/)]);
    // No leaf outlives its issuer's publication: stillFirst expired before the first left the bundle.
    expect(stillFirst.notAfter).toBeLessThanOrEqual(clock.now());
  });

  it("the SPIFFE bundle sequence increases when a new root is published, and both roots verify their leaves", async () => {
    const { remote, clock, keys } = await setUp();
    const before = await remote.trustBundle("acme");
    const oldLeaf = await issue(remote, clock, "acme", "bot-1", DAY);
    // Root interval 365 d, pre-publication a tenth of it: a successor root joins ~36.5 d before.
    clock.advance(365 * DAY - 36 * DAY);
    await keys.tick();
    const after = await remote.trustBundle("acme");
    expect(after.roots).toHaveLength(2);
    expect(after.spiffeBundle.keys).toHaveLength(2);
    expect(after.spiffeBundle.spiffe_sequence).toBeGreaterThan(before.spiffeBundle.spiffe_sequence);
    // The same set again: the same sequence.
    expect((await remote.trustBundle("acme")).spiffeBundle.spiffe_sequence).toBe(after.spiffeBundle.spiffe_sequence);
    expect(oldLeaf.notAfter).toBeLessThan(clock.now()); // long expired; a fresh leaf still verifies
    const fresh = await issue(remote, clock);
    expect(opensslVerify(fresh.certificateDer, after, clock.now()).ok).toBe(true);
  });

  it("an emergency intermediate rotation issues from a new one at once; the old stays published for its leaves", async () => {
    const { remote, clock, keys } = await setUp();
    const before = await issue(remote, clock);
    await keys.rotate("acme", "agent_ca", false, "operator asked");
    const after = await issue(remote, clock);
    expect(after.issuerKid).not.toBe(before.issuerKid);
    const bundle = await remote.trustBundle("acme");
    expect(bundle.intermediates).toHaveLength(2);
    expect(opensslVerify(before.certificateDer, bundle, clock.now()).output).toMatch(/: OK/);
    expect(opensslVerify(after.certificateDer, bundle, clock.now()).output).toMatch(/: OK/);
  });

  it("revoking the root revokes every intermediate it certified, pre-published ones included", async () => {
    const { remote, clock, keys } = await setUp();
    await issue(remote, clock); // the CA's first keys
    clock.advance(6 * DAY + MINUTE); // a pre-published successor intermediate exists
    await keys.tick();
    const before = await issue(remote, clock);
    expect((await remote.trustBundle("acme")).intermediates).toHaveLength(2);
    await keys.rotate("acme", "agent_ca_root", true, "root key compromised");
    const bundle = await remote.trustBundle("acme");
    expect(bundle.roots).toHaveLength(1);
    expect(bundle.intermediates).toHaveLength(1);
    const after = await issue(remote, clock);
    expect(after.issuerKid).not.toBe(before.issuerKid);
    expect(opensslVerify(after.certificateDer, bundle, clock.now()).output).toMatch(/: OK/);
    // Leaves of the old hierarchy no longer verify against the bundle.
    expect(opensslVerify(before.certificateDer, bundle, clock.now()).ok).toBe(false);
    const states = (await keys.listKeys("acme", "agent_ca")).map((k) => k.state).sort();
    expect(states).toEqual(["active", "destroyed", "destroyed"]);
  });

  it("caps a leaf at its intermediate's validity", async () => {
    const { ca, clock, keys } = await setUp();
    await issue(ca, clock);
    const intermediate = (await keys.listKeys("acme", "agent_ca"))[0];
    // Moments before the intermediate's certificate ends (its key extended past it is not possible
    // on schedule, so check the cap directly by asking for a leaf right at the edge).
    clock.advance((intermediate?.retireAt as number) - 30 * MINUTE - clock.now());
    await keys.tick();
    const { intermediates } = await ca.trustBundle("acme");
    const ends = intermediates.map((der) => Date.parse(new X509Certificate(der).validTo));
    const issued = await issue(ca, clock, "acme", "bot-1", DAY);
    expect(issued.notAfter).toBeLessThanOrEqual(Math.max(...ends));
  });
});

describe("agent CA: CRLs", () => {
  it("signs one CRL per published intermediate that openssl verifies, with reasons, AKI and CRL number", async () => {
    const { remote, clock, keys } = await setUp();
    const leaf = await issue(remote, clock);
    clock.advance(6 * DAY + MINUTE); // the successor is pre-published: two intermediates
    await keys.tick();
    const bundle = await remote.trustBundle("acme");
    expect(bundle.intermediates).toHaveLength(2);
    const revoked = [
      { serial: leaf.serial, revokedAt: clock.now() - MINUTE, reason: "keyCompromise" },
      { serial: "5EED", revokedAt: clock.now() - MINUTE },
    ];
    const crls = await remote.signCrls("acme", revoked, clock.now() + HOUR);
    expect(crls).toHaveLength(2);
    const numbers: bigint[] = [];
    for (const [index, crl] of crls.entries()) {
      const dir = workDir();
      const paths = files(dir, {
        "crl.pem": pem("X509 CRL", crl.der),
        "issuer.pem": pem("CERTIFICATE", bundle.intermediates[index] as Uint8Array),
      });
      const text = execFileSync(
        "openssl",
        [
          "crl",
          "-in",
          paths["crl.pem"] as string,
          "-CAfile",
          paths["issuer.pem"] as string,
          "-verify",
          "-noout",
          "-text",
        ],
        { encoding: "utf8", stdio: "pipe" },
      );
      expect(text).toContain(`Serial Number: ${leaf.serial}`);
      expect(text).toMatch(/CRL Reason Code:\s+Key Compromise/);
      expect(text).toContain("Serial Number: 5EED");
      expect(text).toMatch(/Authority Key Identifier/);
      expect(text).toMatch(/Version 2/);
      numbers.push(BigInt(/CRL Number:\s+(\d+)/.exec(text)?.[1] ?? "0"));
    }
    expect(numbers[1]).toBeGreaterThan(numbers[0] as bigint);
    // The leaf is refused by openssl with the CRL of its issuer.
    const issuerIndex = crls.findIndex((crl) => crl.issuerKid === leaf.issuerKid);
    const dir = workDir();
    const paths = files(dir, { "crl.pem": pem("X509 CRL", (crls[issuerIndex] as { der: Uint8Array }).der) });
    const checked = opensslVerify(leaf.certificateDer, bundle, clock.now(), [
      "-crl_check",
      "-CRLfile",
      paths["crl.pem"] as string,
    ]);
    expect(checked.ok).toBe(false);
    expect(checked.output).toMatch(/certificate revoked/);
  });
});

describe.each(engines)("agent CA on $name: replicas agree on one certificate per CA key", (engine) => {
  it("two replicas racing on first use write and serve the same CA certificates", async () => {
    const database = await engine.open();
    cleanups.push(() => database.dispose());
    const kek = randomBytes(32);
    const a = await setUp({ url: database.url, backend: (store) => new SoftwareBackend(store, kek) });
    // A second replica on the same database (its own store handle, key manager and CA).
    const storeB = Store.open({ url: database.url });
    cleanups.push(() => storeB.close());
    const { ca: caB } = await replica(storeB, new SoftwareBackend(storeB, kek), a.clock);
    const [bundleA, bundleB] = await Promise.all([a.ca.trustBundle("acme"), caB.trustBundle("acme")]);
    expect(bundleB.roots).toEqual(bundleA.roots);
    expect(bundleB.intermediates).toEqual(bundleA.intermediates);
    const leaf = await issue(caB, a.clock);
    expect(opensslVerify(leaf.certificateDer, await a.ca.trustBundle("acme"), a.clock.now()).ok).toBe(true);
    const rows = await a.store
      .forTenant("acme")
      .db.selectFrom("agent_ca_certificates")
      .selectAll()
      .where("tenant_id", "=", "acme")
      .execute();
    expect(rows).toHaveLength(2);
    // Each certificate is audited once, in the transaction that wrote it (the race's loser records nothing).
    const events = await a.store
      .forTenant("acme")
      .db.selectFrom("audit_outbox")
      .select(["type", "payload"])
      .where("tenant_id", "=", "acme")
      .where("type", "=", "agent_ca.certificate.created.v1")
      .execute();
    const audited = events.map((e) => JSON.parse(e.payload) as { role: string; serial: string });
    expect(audited.map((e) => e.role).sort()).toEqual(["intermediate", "root"]);
    expect(audited.map((e) => e.serial).sort()).toEqual(rows.map((r) => r.serial).sort());
  }, 60_000);
});

describe.runIf(softhsmAvailable())("agent CA with its keys in a PKCS#11 token (SoftHSM2)", () => {
  it("issues certificates and CRLs signed in the HSM that openssl verifies", async () => {
    const token = createSoftHsmToken();
    cleanups.push(token.cleanup);
    const options = { module: token.module, tokenLabel: token.tokenLabel, pin: token.pin, sessionPoolSize: 2 };
    const { remote, clock, keys } = await setUp({ backend: () => new Pkcs11Backend(options) });
    const issued = await issue(remote, clock);
    const bundle = await remote.trustBundle("acme");
    expect(opensslVerify(issued.certificateDer, bundle, clock.now()).output).toMatch(/: OK/);
    expect(svidProblems(issued.certificateDer)).toEqual([]);
    const caKeys = (await keys.listKeys("acme")).filter((k) => k.purpose.startsWith("agent_ca"));
    expect(caKeys.map((k) => k.backend)).toEqual(["pkcs11", "pkcs11"]);
    const [crl] = await remote.signCrls(
      "acme",
      [{ serial: issued.serial, revokedAt: clock.now() }],
      clock.now() + HOUR,
    );
    const dir = workDir();
    const paths = files(dir, {
      "crl.pem": pem("X509 CRL", (crl as { der: Uint8Array }).der),
      "issuer.pem": pem("CERTIFICATE", bundle.intermediates[0] as Uint8Array),
    });
    execFileSync(
      "openssl",
      ["crl", "-in", paths["crl.pem"] as string, "-CAfile", paths["issuer.pem"] as string, "-verify", "-noout"],
      {
        stdio: "pipe",
      },
    );
  }, 60_000);
});
