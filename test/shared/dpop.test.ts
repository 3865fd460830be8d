// The DPoP proof key's thumbprint (RFC 7638), computed synchronously for every proof, must equal
// jose's for every key type a proof may carry; a proof whose jwk is not a usable public key fails.
// The signature, checked synchronously with node:crypto, accepts what jose signs for every allowed
// algorithm and nothing else: altered parts, other lengths, critical extensions, expired claims.
import { generateKeyPairSync, randomUUID } from "node:crypto";
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK, SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { DpopProofError, jwkThumbprint, verifyDpopProof } from "../../services/shared/oauth/dpop.ts";
import { MemoryReplayCache } from "../../services/shared/oauth/replay.ts";

describe("DPoP proof keys", () => {
  const check = (headers: string, now = Date.now()) =>
    verifyDpopProof({
      headers,
      method: "POST",
      url: "https://rs.example/x",
      replay: new MemoryReplayCache(),
      skewMs: 60_000,
      now,
    });
  const signed = async (alg: string, claims: Record<string, unknown> = {}, header: Record<string, unknown> = {}) => {
    const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
    const jwk = (await exportJWK(publicKey)) as JWK;
    const proof = await new SignJWT({
      htm: "POST",
      htu: "https://rs.example/x",
      iat: Math.floor(Date.now() / 1000),
      jti: randomUUID(),
      ...claims,
    })
      .setProtectedHeader({ alg, typ: "dpop+jwt", jwk, ...header })
      // jose signs a critical extension only when told it is understood.
      .sign(privateKey, "crit" in header ? { crit: { ext: true } } : {});
    return { proof, jwk };
  };

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

  it.each(["ES256", "ES384", "EdDSA", "Ed25519", "PS256", "RS256"])(
    "verifies a %s proof signed by jose, bound to its key's thumbprint",
    async (alg) => {
      const { proof, jwk } = await signed(alg);
      await expect(check(proof)).resolves.toMatchObject({ jkt: await calculateJwkThumbprint(jwk) });
    },
  );

  it("refuses a proof with any part altered, a signature of another length, or one not in base64url", async () => {
    const { proof } = await signed("ES256");
    const [header, payload, signature] = proof.split(".") as [string, string, string];
    const flip = (part: string) => `${part.slice(0, 10)}${part[10] === "A" ? "B" : "A"}${part.slice(11)}`;
    const otherPayload = Buffer.from(
      JSON.stringify({ ...JSON.parse(Buffer.from(payload, "base64url").toString()), htm: "POST ", jti: randomUUID() }),
    ).toString("base64url");
    const short = Buffer.from(signature, "base64url").subarray(0, 63).toString("base64url");
    for (const altered of [
      `${header}.${otherPayload}.${signature}`,
      `${header}.${payload}.${flip(signature)}`,
      `${header}.${payload}.${short}`,
      `${header}.${payload}.${signature}${signature}`,
      `${header}.${payload}.${signature.slice(0, 20)}+${signature.slice(21)}`,
      `${header}.${payload}`,
      `${header}.${payload}.${signature}.`,
    ]) {
      await expect(check(altered), altered.slice(-30)).rejects.toBeInstanceOf(DpopProofError);
    }
  });

  it("refuses critical extensions (RFC 7515 §4.1.11) and a proof past its exp or before its nbf", async () => {
    const crit = await signed("ES256", { ext: 1 }, { crit: ["ext"], ext: true });
    await expect(check(crit.proof)).rejects.toThrow(/critical/);
    const now = Math.floor(Date.now() / 1000);
    await expect(check((await signed("ES256", { exp: now - 120 })).proof)).rejects.toThrow(/expired/);
    await expect(check((await signed("ES256", { nbf: now + 120 })).proof)).rejects.toThrow(/not valid yet/);
    await expect(check((await signed("ES256", { exp: now + 120, nbf: now - 1 })).proof)).resolves.toBeDefined();
  });

  it("refuses a key that is not of the proof's alg: an Ed448 key for Ed25519, a P-256 key for ES384", async () => {
    const ed448 = generateKeyPairSync("ed448");
    const p256 = await generateKeyPair("ES256", { extractable: true });
    for (const [alg, jwk] of [
      ["Ed25519", ed448.publicKey.export({ format: "jwk" })],
      ["ES384", await exportJWK(p256.publicKey)],
    ] as const) {
      const header = Buffer.from(JSON.stringify({ alg, typ: "dpop+jwt", jwk })).toString("base64url");
      const payload = Buffer.from(
        JSON.stringify({
          htm: "POST",
          htu: "https://rs.example/x",
          iat: Math.floor(Date.now() / 1000),
          jti: randomUUID(),
        }),
      ).toString("base64url");
      await expect(check(`${header}.${payload}.AAAA`), alg).rejects.toThrow(/usable public key/);
    }
  });

  it("checks a proof again at a second verifier (Authorize after the resource server) from its own replay memory, and still refuses an altered copy", async () => {
    const { proof } = await signed("ES256");
    const verifier = (replay: MemoryReplayCache) =>
      verifyDpopProof({
        headers: proof,
        method: "POST",
        url: "https://rs.example/x",
        replay,
        skewMs: 60_000,
        now: Date.now(),
      });
    const resourceServer = new MemoryReplayCache();
    const authorize = new MemoryReplayCache();
    await expect(verifier(resourceServer)).resolves.toBeDefined();
    await expect(verifier(authorize)).resolves.toBeDefined();
    await expect(verifier(authorize)).rejects.toThrow(/already used/);
    const [header, payload, signature] = proof.split(".") as [string, string, string];
    const forged = Buffer.from(
      JSON.stringify({ ...JSON.parse(Buffer.from(payload, "base64url").toString()), jti: randomUUID() }),
    ).toString("base64url");
    await expect(check(`${header}.${forged}.${signature}`)).rejects.toThrow(/does not verify/);
    // Time-bound checks run on every use, remembered signature or not.
    await expect(check(proof, Date.now() + 10 * 60_000)).rejects.toThrow(/iat/);
  });
});
