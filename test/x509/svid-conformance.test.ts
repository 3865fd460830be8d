// The SPIFFE X.509-SVID conformance check on openssl-made certificates: a conforming leaf and CA,
// then one violation at a time, each named by its section of the X509-SVID specification.
import { beforeAll, describe, expect, it } from "vitest";
import { signingCertificateProblems, svidProblems } from "../../services/shared/x509/svid-conformance.ts";
import {
  type CertificateOptions,
  intermediateCa,
  leafCertificate,
  type PkiCertificate,
  rootCa,
} from "../helpers/openssl-pki.ts";

const AGENT = "spiffe://acme.agents.mandate.local/agent/agent-1";

let root: PkiCertificate;
let intermediate: PkiCertificate;

beforeAll(() => {
  root = rootCa({ uris: ["spiffe://acme.agents.mandate.local"] });
  intermediate = intermediateCa(root);
});

const leaf = (options: CertificateOptions = {}) => leafCertificate(intermediate, { uris: [AGENT], ...options });

describe("svidProblems (leaf SVIDs)", () => {
  it("a conforming leaf (EC, RSA, Ed25519; with and without EKU; DNS SANs allowed) has none", () => {
    for (const keyType of ["ec", "rsa", "ed25519"] as const) expect(svidProblems(leaf({ keyType }).der)).toEqual([]);
    expect(svidProblems(leaf({ extendedKeyUsage: [] }).der)).toEqual([]);
    expect(svidProblems(leaf({ dnsNames: ["agent.example"] }).der)).toEqual([]);
    expect(svidProblems(leaf({ keyUsage: ["digitalSignature", "keyEncipherment", "keyAgreement"] }).der)).toEqual([]);
  });

  it.each<[string, CertificateOptions, string]>([
    ["no URI SAN", { uris: [] }, "§2/§5.2: 0 URI SANs"],
    ["two URI SANs", { uris: [AGENT, `${AGENT}-2`] }, "§2/§5.2: 2 URI SANs"],
    ["a URI that is not a SPIFFE ID", { uris: ["https://acme.example/agent"] }, "§2: the URI SAN"],
    ["an upper-case trust domain", { uris: ["spiffe://ACME.example/agent/a"] }, "not a SPIFFE ID"],
    ["a path with a dot segment", { uris: ["spiffe://acme.example/agent/../a"] }, "relative segment"],
    ["a SPIFFE ID without a path", { uris: ["spiffe://acme.example"] }, "§3.1: the leaf's SPIFFE ID"],
    ["an empty subject with a non-critical SAN", { subject: "/" }, "§3.1: empty subject"],
    ["CA true", { ca: true }, "§4.1: basicConstraints cA is true"],
    ["no basicConstraints", { noBasicConstraints: true }, "§4.1: no basicConstraints"],
    ["no keyUsage", { keyUsage: [] }, "§4.3: no keyUsage"],
    ["a non-critical keyUsage", { keyUsageCritical: false }, "§4.3: keyUsage is not critical"],
    ["no digitalSignature", { keyUsage: ["keyEncipherment"] }, "§4.3: digitalSignature is not set"],
    ["keyCertSign", { keyUsage: ["digitalSignature", "keyCertSign"] }, "§4.3: keyCertSign is set on a leaf"],
    ["cRLSign", { keyUsage: ["digitalSignature", "cRLSign"] }, "§4.3: cRLSign is set on a leaf"],
    ["EKU without clientAuth", { extendedKeyUsage: ["serverAuth"] }, "§4.4: extendedKeyUsage lacks id-kp-clientAuth"],
    ["EKU without serverAuth", { extendedKeyUsage: ["clientAuth"] }, "§4.4: extendedKeyUsage lacks id-kp-serverAuth"],
    ["an unknown critical extension", { extraExtensions: ["1.3.6.1.4.1.55555.1=critical,ASN1:NULL"] }, "RFC 5280 §4.2"],
  ])("%s", (_, options, problem) => {
    const problems = svidProblems(leaf(options).der);
    expect(
      problems.some((p) => p.includes(problem)),
      problems.join("; "),
    ).toBe(true);
  });

  it("an empty subject is fine when the SAN is critical", () => {
    const der = leaf({ subject: "/", sanCritical: true }).der;
    expect(svidProblems(der)).toEqual([]);
  });

  it("not a certificate: one problem saying so", () => {
    expect(svidProblems(new Uint8Array([1, 2, 3]))).toEqual([expect.stringContaining("not DER X.509")]);
  });
});

describe("signingCertificateProblems (CA certificates)", () => {
  it("conforming roots and intermediates, with a path-less SPIFFE ID or none", () => {
    expect(signingCertificateProblems(root.der)).toEqual([]);
    expect(signingCertificateProblems(intermediate.der)).toEqual([]);
  });

  it.each<[string, CertificateOptions, string]>([
    ["CA false", { ca: false }, "§4.1"],
    ["no keyCertSign", { keyUsage: ["cRLSign"] }, "§4.3: keyCertSign is not set"],
    ["no keyUsage", { keyUsage: [] }, "§4.3: no keyUsage"],
    ["non-critical keyUsage", { keyUsageCritical: false }, "§4.3: keyUsage is not critical"],
    ["a SPIFFE ID with a path", { uris: ["spiffe://acme.example/ca"] }, "§3.2"],
    ["two URI SANs", { uris: ["spiffe://a.example", "spiffe://b.example"] }, "§5.2"],
    ["a URI that is not a SPIFFE ID", { uris: ["https://ca.example"] }, "§2"],
  ])("%s", (_, options, problem) => {
    const problems = signingCertificateProblems(intermediateCa(root, options).der);
    expect(
      problems.some((p) => p.includes(problem)),
      problems.join("; "),
    ).toBe(true);
  });

  it("a leaf is not a signing certificate", () => {
    expect(signingCertificateProblems(leaf().der).length).toBeGreaterThan(0);
  });
});
