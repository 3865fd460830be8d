// ECDSA signature encodings: DER (node:crypto's default, some PKCS#11 modules) to JWS R||S.
import { generateKeyPairSync, sign, verify } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { derToJose, ecdsaSignatureToJose } from "../../services/signer/jws.ts";

const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });

describe("ECDSA signature encoding", () => {
  it("turns every DER signature into the R||S that verifies, including short R or S", () => {
    let short = 0;
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 64 }), (message) => {
        const der = sign("sha256", message, privateKey);
        if (der.length < 70) short++;
        const jose = derToJose(der, 32);
        expect(jose).toHaveLength(64);
        expect(verify("sha256", message, { key: publicKey, dsaEncoding: "ieee-p1363" }, jose)).toBe(true);
      }),
      { numRuns: 2000 },
    );
    expect(short).toBeGreaterThan(0); // leading-zero components were exercised
  });

  it("takes an R||S signature of the right length as is", () => {
    const raw = sign("sha256", Buffer.from("x"), { key: privateKey, dsaEncoding: "ieee-p1363" });
    expect(ecdsaSignatureToJose(raw, 32)).toBe(raw);
  });

  it.each([
    ["empty", ""],
    ["not a SEQUENCE", "3102020101020101"],
    ["length mismatch", "3007020101020101"],
    ["trailing bytes", "300602010102010100"],
    ["negative INTEGER", "3006020181020101"],
    ["non-minimal INTEGER", "300702020001020101"],
    ["component too long", `30260221${"01"}${"ff".repeat(32)}020101`],
  ])("refuses a malformed DER signature (%s)", (_name, hex) => {
    expect(() => derToJose(Buffer.from(hex, "hex"), 32)).toThrow(/malformed ECDSA DER signature|longer than 32 bytes/);
  });
});
