// The DPoP proof key's thumbprint (RFC 7638), computed synchronously for every proof, must equal
// jose's for every key type a proof may carry; a proof whose jwk is not a usable public key fails.
import { randomUUID } from "node:crypto";
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK, SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { DpopProofError, jwkThumbprint, verifyDpopProof } from "../../services/shared/oauth/dpop.ts";
import { MemoryReplayCache } from "../../services/shared/oauth/replay.ts";

describe("DPoP proof keys", () => {
  it.each(["ES256", "ES384", "EdDSA", "PS256", "RS256"])(
    "thumbprints a %s key as RFC 7638 / jose does",
    async (alg) => {
      const { publicKey } = await generateKeyPair(alg, { extractable: true });
      const jwk = { ...(await exportJWK(publicKey)), use: "sig", kid: "ignored" } as JWK;
      expect(jwkThumbprint(jwk)).toBe(await calculateJwkThumbprint(jwk));
    },
  );

  it("verifies a proof, and refuses one whose jwk is not a key of its alg or lacks members", async () => {
    const { privateKey, publicKey } = await generateKeyPair("ES256", { extractable: true });
    const jwk = (await exportJWK(publicKey)) as JWK;
    const proof = (header: JWK) =>
      new SignJWT({ htm: "POST", htu: "https://rs.example/x", iat: Math.floor(Date.now() / 1000), jti: randomUUID() })
        .setProtectedHeader({ alg: "ES256", typ: "dpop+jwt", jwk: header })
        .sign(privateKey);
    const check = (headers: string) =>
      verifyDpopProof({
        headers,
        method: "POST",
        url: "https://rs.example/x",
        replay: new MemoryReplayCache(),
        skewMs: 60_000,
        now: Date.now(),
      });
    await expect(check(await proof(jwk))).resolves.toMatchObject({ jkt: await calculateJwkThumbprint(jwk) });
    const { publicKey: other } = await generateKeyPair("ES384", { extractable: true });
    await expect(check(await proof((await exportJWK(other)) as JWK))).rejects.toBeInstanceOf(DpopProofError);
    await expect(check(await proof({ kty: "EC", crv: "P-256", x: jwk.x } as JWK))).rejects.toBeInstanceOf(
      DpopProofError,
    );
    // Another key's jwk in the header: the signature does not verify under it.
    const { publicKey: stranger } = await generateKeyPair("ES256", { extractable: true });
    await expect(check(await proof((await exportJWK(stranger)) as JWK))).rejects.toBeInstanceOf(DpopProofError);
  });
});
