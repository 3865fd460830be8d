// The openssl test PKI makes what it says: other suites' refusal tests rely on these properties.
import { createPublicKey, X509Certificate } from "node:crypto";
import { describe, expect, it } from "vitest";
import { csr, intermediateCa, leafCertificate, privateKey, rootCa, selfSignedLeaf } from "../helpers/openssl-pki.ts";

describe("openssl-pki", () => {
  it("chains root → intermediate → leaf with the requested names, key type and serial", () => {
    const root = rootCa({ keyType: "rsa" });
    const intermediate = intermediateCa(root, { keyType: "ed25519" });
    const leaf = leafCertificate(intermediate, {
      serial: "1A2B3C",
      uris: ["spiffe://acme.example/agent/a"],
      dnsNames: ["a.example"],
    });
    expect(intermediate.x509.verify(root.x509.publicKey)).toBe(true);
    expect(leaf.x509.verify(intermediate.x509.publicKey)).toBe(true);
    expect(root.x509.ca && intermediate.x509.ca && !leaf.x509.ca).toBe(true);
    expect(leaf.serial).toBe("1A2B3C");
    expect(leaf.x509.subjectAltName).toBe("URI:spiffe://acme.example/agent/a, DNS:a.example");
    expect(leaf.x509.publicKey.asymmetricKeyType).toBe("ec");
    expect(intermediate.x509.publicKey.asymmetricKeyType).toBe("ed25519");
    expect(new X509Certificate(leaf.der).fingerprint256).toBe(leaf.x509.fingerprint256);
  });

  it("sets validity in the past or the future", () => {
    const root = rootCa();
    const notBefore = new Date("2020-01-01T00:00:00Z");
    const notAfter = new Date("2020-01-02T00:00:00Z");
    const expired = leafCertificate(root, { notBefore, notAfter });
    expect(expired.x509.validFromDate).toEqual(notBefore);
    expect(expired.x509.validToDate).toEqual(notAfter);
  });

  it("makes self-signed leaves and PKCS#10 requests signed by the given key", () => {
    const self = selfSignedLeaf({ keyType: "ed25519" });
    expect(self.x509.verify(self.x509.publicKey)).toBe(true);
    expect(self.x509.ca).toBe(false);
    const key = privateKey("rsa-1024");
    expect(createPublicKey(key.keyPem).asymmetricKeyDetails?.modulusLength).toBe(1024);
    const request = csr(key.keyPem, "/CN=agent", ["URI:spiffe://acme.example/agent/a"]);
    expect(request.pem).toContain("BEGIN CERTIFICATE REQUEST");
    expect(request.der[0]).toBe(0x30);
  });
});
