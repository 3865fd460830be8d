// The DPoP proof key's thumbprint (RFC 7638), computed synchronously for every proof, must equal
// jose's for every key type a proof may carry; a proof whose jwk is not a usable public key fails.
import { generateKeyPairSync, randomUUID } from "node:crypto";
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

  it("refuses, as a bad proof, a jwk the verifier cannot use (RFC 9449 §4.3): never another kind of error", async () => {
    const { privateKey } = await generateKeyPair("ES256");
    const small = generateKeyPairSync("rsa", { modulusLength: 1024 });
    const proof = (jwk: unknown, alg: string) =>
      new SignJWT({ htm: "POST", htu: "https://rs.example/x", iat: Math.floor(Date.now() / 1000), jti: randomUUID() })
        .setProtectedHeader({ alg: "ES256", typ: "dpop+jwt", jwk: jwk as JWK })
        .sign(privateKey)
        .then((jws) => {
          // Re-label the header's alg without re-signing: the key's import or checks must fail first.
          const [, payload, signature] = jws.split(".");
          const header = Buffer.from(JSON.stringify({ alg, typ: "dpop+jwt", jwk })).toString("base64url");
          return `${header}.${payload}.${signature}`;
        });
    const check = async (headers: string) =>
      verifyDpopProof({
        headers,
        method: "POST",
        url: "https://rs.example/x",
        replay: new MemoryReplayCache(),
        skewMs: 60_000,
        now: Date.now(),
      });
    for (const [jwk, alg] of [
      [{ kty: "EC", crv: "P-256", x: "AA", y: "AA" }, "ES256"],
      [small.publicKey.export({ format: "jwk" }), "PS256"], // jose: "modulusLength to be 2048 bits or larger"
      [small.publicKey.export({ format: "jwk" }), "RS256"],
      [{ kty: "OKP", crv: "Ed25519", x: "AA" }, "EdDSA"],
    ] as const) {
      await expect(check(await proof(jwk, alg)), `${alg} ${JSON.stringify(jwk).slice(0, 60)}`).rejects.toBeInstanceOf(
        DpopProofError,
      );
    }
    // The alg is echoed only as printable ASCII (it reaches WWW-Authenticate at resource servers).
    const error = await check(
      `${Buffer.from(JSON.stringify({ typ: "dpop+jwt", alg: "x\n\u2603" })).toString("base64url")}.e30.AA`,
    ).catch((e: unknown) => e as Error);
    expect(error).toBeInstanceOf(DpopProofError);
    expect((error as Error).message).toMatch(/^[\x20-\x7e]*$/);
  });
});
