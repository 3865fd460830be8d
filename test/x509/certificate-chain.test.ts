// verifyAgentCertificate against certificates the openssl CLI made: every refusal reason, and the
// accepted shapes (EC, RSA, Ed25519 leaves; via an intermediate or directly under the root).
import { X509Certificate } from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import { type AgentCertificateTrust, verifyAgentCertificate } from "../../services/shared/x509/certificate-chain.ts";
import { x5tS256 } from "../../services/shared/x509/thumbprint.ts";
import { CertificateRefused, type PresentedCertificate } from "../../services/shared/x509/types.ts";
import {
  type CertificateOptions,
  intermediateCa,
  leafCertificate,
  type PkiCertificate,
  rootCa,
  selfSignedLeaf,
} from "../helpers/openssl-pki.ts";

const DAY = 86_400_000;
const TRUST_DOMAIN = "acme.agents.mandate.local";
const AGENT = `spiffe://${TRUST_DOMAIN}/agent/agent-1`;

let root: PkiCertificate;
let intermediate: PkiCertificate;

beforeAll(() => {
  root = rootCa({ subject: "/O=Mandate/CN=acme agent root" });
  intermediate = intermediateCa(root, { subject: "/O=Mandate/CN=acme agent intermediate" });
});

function trust(overrides: Partial<AgentCertificateTrust> = {}): AgentCertificateTrust {
  return {
    roots: [root.x509],
    intermediates: [intermediate.x509],
    trustDomain: TRUST_DOMAIN,
    now: Date.now(),
    isRevoked: () => false,
    ...overrides,
  };
}

function agent(options: CertificateOptions = {}, issuer: PkiCertificate = intermediate): PkiCertificate {
  return leafCertificate(issuer, { uris: [AGENT], ...options });
}

function presented(leaf: PkiCertificate | Uint8Array, ...chain: PkiCertificate[]): PresentedCertificate {
  return { leaf: leaf instanceof Uint8Array ? leaf : leaf.der, chain: chain.map((c) => c.der), source: "tls" };
}

async function refusal(p: PresentedCertificate, t: AgentCertificateTrust = trust()): Promise<CertificateRefused> {
  const error = await verifyAgentCertificate(p, t).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(CertificateRefused);
  return error as CertificateRefused;
}

describe("accepted agent certificates", () => {
  it.each(["ec", "rsa", "ed25519"] as const)(
    "a %s leaf under the intermediate, with and without the chain",
    async (keyType) => {
      const leaf = agent({ keyType });
      for (const p of [presented(leaf, intermediate), presented(leaf)]) {
        const verified = await verifyAgentCertificate(p, trust());
        expect(verified).toEqual({
          spiffeId: AGENT,
          trustDomain: TRUST_DOMAIN,
          clientId: "agent-1",
          serial: leaf.serial,
          x5tS256: x5tS256(leaf.der),
          notBefore: leaf.x509.validFromDate.getTime(),
          notAfter: leaf.x509.validToDate.getTime(),
        });
      }
    },
  );

  it("a leaf directly under the root", async () => {
    const verified = await verifyAgentCertificate(presented(agent({}, root)), trust());
    expect(verified.clientId).toBe("agent-1");
  });

  it("a leaf of the new intermediate when a rotated one has the same name", async () => {
    const next = intermediateCa(root, { subject: intermediate.subject });
    const leaf = agent({}, next);
    const verified = await verifyAgentCertificate(
      presented(leaf, next),
      trust({ intermediates: [intermediate.x509, next.x509] }),
    );
    expect(verified.serial).toBe(leaf.serial);
    // A bundle older than the intermediate: unknown_intermediate (callers refresh their cached bundle on it).
    const error = await refusal(presented(leaf, next));
    expect(error.reason).toBe("unknown_intermediate");
    expect(error.message).toContain("authorityKeyIdentifier");
  });

  it("a leaf with no EKU extension, or with serverAuth and clientAuth, and DNS SANs beside the SPIFFE ID", async () => {
    await verifyAgentCertificate(presented(agent({ extendedKeyUsage: [] })), trust());
    await verifyAgentCertificate(presented(agent({ dnsNames: ["agent.example"] })), trust());
  });

  it("within the clock skew at either end of the validity", async () => {
    const leaf = agent({ notBefore: new Date(Date.now() + 30_000) });
    await verifyAgentCertificate(presented(leaf), trust());
    const ending = agent({ notAfter: new Date(Date.now() - 30_000) });
    await verifyAgentCertificate(presented(ending), trust());
    expect((await refusal(presented(ending), trust({ skewMs: 0 }))).reason).toBe("expired");
  });

  it("the deny list may answer asynchronously with the upper-case serial", async () => {
    const leaf = agent();
    const asked: string[] = [];
    await verifyAgentCertificate(
      presented(leaf),
      trust({
        isRevoked: async (serial) => {
          asked.push(serial);
          return false;
        },
      }),
    );
    expect(asked).toEqual([leaf.serial]);
    expect(leaf.serial).toMatch(/^[0-9A-F]+$/);
  });
});

describe("refused agent certificates", () => {
  it("malformed: not DER, and a chain element that is not a certificate", async () => {
    const garbage = await refusal(presented(new TextEncoder().encode("not a certificate")));
    expect(garbage.reason).toBe("malformed");
    const p = presented(agent());
    p.chain.push(new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x01]));
    expect((await refusal(p)).reason).toBe("malformed");
  });

  it("malformed: an unrecognized critical extension (RFC 5280 §4.2)", async () => {
    const leaf = agent({ extraExtensions: ["1.3.6.1.4.1.55555.1=critical,ASN1:NULL"] });
    const error = await refusal(presented(leaf));
    expect(error.reason).toBe("malformed");
    expect(error.message).toContain("1.3.6.1.4.1.55555.1");
  });

  it("unknown_ca: another tenant's CA, a foreign CA, a self-signed leaf", async () => {
    const otherRoot = rootCa({ subject: "/O=Mandate/CN=globex agent root" });
    const otherIntermediate = intermediateCa(otherRoot, { subject: "/O=Mandate/CN=globex agent intermediate" });
    const otherTenantsAgent = leafCertificate(otherIntermediate, {
      uris: ["spiffe://globex.agents.mandate.local/agent/a"],
    });
    const error = await refusal(presented(otherTenantsAgent, otherIntermediate, otherRoot));
    expect(error.reason).toBe("unknown_ca");
    expect(error.message).toContain("globex agent intermediate");
    expect((await refusal(presented(agent({}, otherRoot)))).reason).toBe("unknown_ca");
    expect((await refusal(presented(selfSignedLeaf({ uris: [AGENT] })))).reason).toBe("unknown_ca");
  });

  it("unknown_intermediate: an intermediate the client sent that the bundle lacks, even one our root signed", async () => {
    const rogue = intermediateCa(root, { subject: "/O=Mandate/CN=rogue intermediate" });
    const error = await refusal(presented(agent({}, rogue), rogue));
    expect(error.reason).toBe("unknown_intermediate");
    expect(error.message).toContain("rogue intermediate");
  });

  it("unknown_intermediate: a bundle intermediate that no bundle root verifies", async () => {
    const otherRoot = rootCa({ subject: root.subject });
    const stray = intermediateCa(otherRoot, { subject: "/O=Mandate/CN=stray" });
    const error = await refusal(presented(agent({}, stray)), trust({ intermediates: [intermediate.x509, stray.x509] }));
    expect(error.reason).toBe("unknown_intermediate");
  });

  it("unknown_intermediate: a bundle intermediate that is not a CA", async () => {
    const notCa = intermediateCa(root, { ca: false, subject: "/CN=not a ca" });
    const error = await refusal(presented(agent({}, notCa)), trust({ intermediates: [notCa.x509] }));
    expect(error.reason).toBe("unknown_intermediate");
    expect(error.message).toContain("not a CA");
  });

  it("key_usage: a bundle intermediate without keyCertSign", async () => {
    const noCertSign = intermediateCa(root, { keyUsage: ["cRLSign"], subject: "/CN=crl only" });
    const error = await refusal(presented(agent({}, noCertSign)), trust({ intermediates: [noCertSign.x509] }));
    expect(error.reason).toBe("key_usage");
  });

  it("bad_signature: the issuer's name (and key id, if any) match but another key signed it, or the signature was altered", async () => {
    const twin = intermediateCa(root, { subject: intermediate.subject });
    const error = await refusal(presented(agent({ noAuthorityKeyIdentifier: true }, twin), twin));
    expect(error.reason).toBe("bad_signature");
    const tampered = new Uint8Array(agent().der);
    tampered[tampered.length - 3] = (tampered[tampered.length - 3] as number) ^ 0x01;
    expect(new X509Certificate(tampered).serialNumber).toBeTruthy();
    expect((await refusal(presented(tampered))).reason).toBe("bad_signature");
  });

  it("unknown_ca / unknown_intermediate: a CA named like ours whose key the bundle does not hold", async () => {
    const twinRoot = rootCa({ subject: root.subject });
    expect((await refusal(presented(agent({}, twinRoot)))).reason).toBe("unknown_ca");
    const twin = intermediateCa(twinRoot, { subject: intermediate.subject });
    expect((await refusal(presented(agent({}, twin), twin, twinRoot))).reason).toBe("unknown_intermediate");
  });

  it("expired and not_yet_valid: the leaf (RFC 5280 §6.1.3 (a)(2))", async () => {
    const expired = agent({ notBefore: new Date(Date.now() - 3 * DAY), notAfter: new Date(Date.now() - DAY) });
    expect((await refusal(presented(expired))).reason).toBe("expired");
    const future = agent({ notBefore: new Date(Date.now() + DAY), notAfter: new Date(Date.now() + 2 * DAY) });
    expect((await refusal(presented(future))).reason).toBe("not_yet_valid");
    expect((await refusal(presented(future), trust({ now: Date.now() + 3 * DAY }))).reason).toBe("expired");
  });

  it("expired and not_yet_valid: the intermediate", async () => {
    const old = intermediateCa(root, {
      notBefore: new Date(Date.now() - 3 * DAY),
      notAfter: new Date(Date.now() - DAY),
    });
    const error = await refusal(presented(agent({}, old)), trust({ intermediates: [old.x509] }));
    expect(error.reason).toBe("expired");
    expect(error.message).toContain("CA certificate");
    const early = intermediateCa(root, { notBefore: new Date(Date.now() + DAY) });
    expect((await refusal(presented(agent({}, early)), trust({ intermediates: [early.x509] }))).reason).toBe(
      "not_yet_valid",
    );
  });

  it("ca_certificate: a leaf with CA:true, and the bundle's own intermediate presented as a leaf", async () => {
    expect((await refusal(presented(agent({ ca: true })))).reason).toBe("ca_certificate");
    expect((await refusal(presented(intermediate))).reason).toBe("ca_certificate");
  });

  it("key_usage: no digitalSignature, no keyUsage at all, keyCertSign or cRLSign on a leaf (X509-SVID §4.3)", async () => {
    for (const keyUsage of [
      ["keyEncipherment"],
      [],
      ["digitalSignature", "keyCertSign"],
      ["digitalSignature", "cRLSign"],
    ]) {
      const error = await refusal(presented(agent({ keyUsage })));
      expect(error.reason, keyUsage.join(",")).toBe("key_usage");
    }
  });

  it("extended_key_usage: an EKU without clientAuth (X509-SVID §4.4, RFC 5280 §4.2.1.12)", async () => {
    for (const extendedKeyUsage of [["serverAuth"], ["codeSigning", "emailProtection"]]) {
      const error = await refusal(presented(agent({ extendedKeyUsage })));
      expect(error.reason).toBe("extended_key_usage");
    }
  });

  it("spiffe_id: no URI SAN, two, one that is not a SPIFFE ID, one that names no agent", async () => {
    const cases = [
      [],
      [AGENT, `spiffe://${TRUST_DOMAIN}/agent/agent-2`],
      ["https://acme.example/agent/agent-1"],
      [`spiffe://${TRUST_DOMAIN}/workload/agent-1`],
      [`spiffe://${TRUST_DOMAIN}`],
      [`spiffe://${TRUST_DOMAIN}/agent/agent-1/extra`],
    ];
    for (const uris of cases) {
      const error = await refusal(presented(agent({ uris })));
      expect(error.reason, uris.join(" ")).toBe("spiffe_id");
    }
  });

  it("trust_domain: our CA, another tenant's trust domain", async () => {
    const leaf = agent({ uris: ["spiffe://globex.agents.mandate.local/agent/agent-1"] });
    const error = await refusal(presented(leaf));
    expect(error.reason).toBe("trust_domain");
    expect(error.message).toContain("globex.agents.mandate.local");
  });

  it("revoked: a serial on the deny list", async () => {
    const leaf = agent();
    const revoked = new Set([leaf.serial]);
    const error = await refusal(presented(leaf), trust({ isRevoked: async (serial) => revoked.has(serial) }));
    expect(error.reason).toBe("revoked");
    expect(error.message).toContain(leaf.serial);
  });

  it("checks trust before anything the certificate says: a foreign CA leaf that is also expired and a CA", async () => {
    const foreign = rootCa();
    const leaf = leafCertificate(foreign, {
      ca: true,
      notAfter: new Date(Date.now() - DAY),
      notBefore: new Date(Date.now() - 2 * DAY),
    });
    expect((await refusal(presented(leaf))).reason).toBe("unknown_ca");
  });
});
