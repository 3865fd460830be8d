// OPA bundle signatures (services/authorize/policies/signatures.ts): signing and verifying against a
// tenant's JWK Set, and each refusal naming its file or key.
import { createHash, generateKeyPairSync } from "node:crypto";
import { CompactSign, exportJWK, type JSONWebKeySet } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import {
  type BundleSigningKey,
  fileHash,
  loadSigningKey,
  parseSigningJwks,
  signBundleFiles,
  verifyBundleFiles,
} from "../../services/authorize/policies/signatures.ts";
import { readBundleFiles } from "../../services/authorize/rego/bundle.ts";
import { testBundle } from "../helpers/policy-bundles.ts";

function pem(type: "ec" | "rsa" | "ed25519") {
  const options = type === "ec" ? { namedCurve: "P-256" } : type === "rsa" ? { modulusLength: 2048 } : {};
  const { privateKey, publicKey } = generateKeyPairSync(type as "ec", options as { namedCurve: string });
  return {
    privatePem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    publicPem: publicKey.export({ type: "spki", format: "pem" }).toString(),
  };
}

const refusal = (promise: Promise<unknown>) =>
  promise.then(
    () => {
      throw new Error("expected a refusal");
    },
    (error: Error & { fault?: string }) => ({ fault: error.fault, message: error.message }),
  );

describe("bundle signatures", () => {
  let signer: BundleSigningKey;
  let jwks: JSONWebKeySet;
  let signed: Map<string, Buffer>;

  beforeAll(async () => {
    signer = await loadSigningKey(pem("ec").privatePem, { keyId: "ci-2026" });
    jwks = await parseSigningJwks(JSON.stringify({ keys: [signer.publicJwk] }));
    signed = await readBundleFiles(await signBundleFiles(await readBundleFiles(await testBundle("r1")), signer));
  });

  it("verifies a bundle signed with a key of the tenant's set, naming the key", async () => {
    expect(signed.has("/.signatures.json")).toBe(true);
    const sig = JSON.parse(signed.get("/.signatures.json")?.toString() ?? "{}") as { signatures: string[] };
    expect(sig.signatures).toHaveLength(1);
    const payload = JSON.parse(Buffer.from(sig.signatures[0]?.split(".")[1] ?? "", "base64url").toString()) as {
      files: Array<{ name: string; algorithm: string }>;
    };
    expect(payload.files.map((f) => f.name).sort()).toEqual([".manifest", "authz.rego", "data.json", "policy.wasm"]);
    expect(payload.files.every((f) => f.algorithm === "SHA-256")).toBe(true);
    await expect(verifyBundleFiles(signed, { jwks, required: true })).resolves.toEqual({ keyId: "ci-2026" });
  });

  it("signs and verifies with RSA (PS256) and Ed25519 keys too, the key id defaulting to the thumbprint", async () => {
    for (const [type, alg] of [
      ["rsa", "PS256"],
      ["ed25519", "EdDSA"],
    ] as const) {
      const key = await loadSigningKey(pem(type).privatePem, { alg: type === "rsa" ? alg : undefined });
      expect(key.alg).toBe(alg);
      expect(key.keyId).toMatch(/^[A-Za-z0-9_-]{43}$/);
      const files = await readBundleFiles(await signBundleFiles(await readBundleFiles(await testBundle("r2")), key));
      const set = await parseSigningJwks(JSON.stringify({ keys: [key.publicJwk] }));
      await expect(verifyBundleFiles(files, { jwks: set, required: false })).resolves.toEqual({ keyId: key.keyId });
    }
  });

  it("accepts an unsigned bundle only when the tenant does not require signatures", async () => {
    const unsigned = await readBundleFiles(await testBundle("r1"));
    await expect(verifyBundleFiles(unsigned, { jwks, required: false })).resolves.toEqual({ keyId: null });
    const refused = await refusal(verifyBundleFiles(unsigned, { jwks, required: true }));
    expect(refused.fault).toBe("unsigned");
    expect(refused.message).toContain("the bundle is unsigned and the tenant requires signatures");
  });

  it("refuses a signature by a key the tenant does not know, and by another key under the same kid", async () => {
    const stranger = await loadSigningKey(pem("ec").privatePem, { keyId: "stranger" });
    const unknown = await refusal(
      verifyBundleFiles(await readBundleFiles(await signBundleFiles(signed, stranger)), { jwks, required: false }),
    );
    expect(unknown).toEqual({
      fault: "unknown_key",
      message: expect.stringContaining('signed with key "stranger", which is not among the tenant\'s signing keys'),
    });
    const impostor = await loadSigningKey(pem("ec").privatePem, { keyId: "ci-2026" });
    const wrong = await refusal(
      verifyBundleFiles(await readBundleFiles(await signBundleFiles(signed, impostor)), { jwks, required: false }),
    );
    expect(wrong).toEqual({
      fault: "bad_signature",
      message: '.signatures.json: the signature does not verify with key "ci-2026"',
    });
  });

  it("refuses a bundle one file of which changed after signing, naming the file", async () => {
    const files = new Map(signed);
    const wasm = Buffer.from(files.get("/policy.wasm") as Buffer);
    wasm.writeUInt8(wasm.readUInt8(wasm.length - 1) ^ 1, wasm.length - 1);
    files.set("/policy.wasm", wasm);
    expect(await refusal(verifyBundleFiles(files, { jwks, required: true }))).toEqual({
      fault: "hash_mismatch",
      message: "policy.wasm: hash mismatch",
    });
  });

  it("refuses a file added after signing, and a signed file removed", async () => {
    const added = new Map(signed).set("/extra.rego", Buffer.from("package extra\n"));
    expect(await refusal(verifyBundleFiles(added, { jwks, required: true }))).toEqual({
      fault: "not_covered",
      message: "extra.rego: not covered by the signature",
    });
    const removed = new Map(signed);
    removed.delete("/data.json");
    expect(await refusal(verifyBundleFiles(removed, { jwks, required: true }))).toEqual({
      fault: "missing_file",
      message: "data.json: signed but missing from the bundle",
    });
  });

  it("hashes data.json and .manifest over their JSON value (OPA's canonical walk), other files over bytes", async () => {
    const compact =
      '{"key1":["element1","element2"],"key2":{"a":0,"b":1,"c":123.45678911111111111111111111111111111111111111111111111},"html":"<foo></foo>"}';
    const reordered = `{
      "key2": {"c": 123.45678911111111111111111111111111111111111111111111111, "b": 1, "a": 0},
      "html": "<foo></foo>", "key1": ["element1", "element2"] }`;
    // Keys sorted, no whitespace, numbers as written, no HTML escaping: what Go's encoder writes.
    const sorted =
      '{"html":"<foo></foo>","key1":["element1","element2"],"key2":{"a":0,"b":1,"c":123.45678911111111111111111111111111111111111111111111111}}';
    const expected = createHash("sha256").update(sorted).digest("hex");
    expect(fileHash("data.json", Buffer.from(compact))).toBe(expected);
    expect(fileHash("roles/data.json", Buffer.from(reordered))).toBe(expected);
    expect(fileHash("policy.rego", Buffer.from(reordered))).toBe(createHash("sha256").update(reordered).digest("hex"));
    // So a re-formatted data.json still verifies.
    const files = new Map(signed);
    const data = JSON.parse(files.get("/data.json")?.toString() ?? "{}") as unknown;
    files.set("/data.json", Buffer.from(JSON.stringify(data, null, 4)));
    await expect(verifyBundleFiles(files, { jwks, required: true })).resolves.toEqual({ keyId: "ci-2026" });
  });

  it("refuses a JWK Set holding a private key, a symmetric key, or keys without kid", async () => {
    const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const privateJwk = { ...(await exportJWK(privateKey)), kid: "k" };
    await expect(parseSigningJwks(JSON.stringify({ keys: [privateJwk] }))).rejects.toThrow(
      'keys[0]: a private key (has "d"): give only its public part',
    );
    await expect(parseSigningJwks(JSON.stringify({ keys: [{ kty: "oct", k: "c2VjcmV0", kid: "h" }] }))).rejects.toThrow(
      "keys[0]: a symmetric (oct) key is a shared secret",
    );
    const { d: _d, ...publicJwk } = privateJwk;
    await expect(parseSigningJwks(JSON.stringify({ keys: [{ ...publicJwk, kid: undefined }] }))).rejects.toThrow(
      'keys[0]: needs a "kid"',
    );
    await expect(parseSigningJwks(JSON.stringify({ keys: [publicJwk, publicJwk] }))).rejects.toThrow(
      'keys[1]: kid "k" appears twice',
    );
    await expect(parseSigningJwks("[1,2]")).rejects.toThrow("expected a JWK Set");
    expect((await parseSigningJwks(JSON.stringify({ keys: [publicJwk] }))).keys).toHaveLength(1);
  });

  it("refuses algorithm confusion: an HS256 signature keyed with the tenant's public key", async () => {
    // The attacker knows the public key and uses its PEM (or JWK) text as an HMAC secret.
    const files = await readBundleFiles(await testBundle("evil"));
    const rsa = pem("rsa");
    const rsaKey = await loadSigningKey(rsa.privatePem, { keyId: "rsa-1" });
    const set = await parseSigningJwks(JSON.stringify({ keys: [rsaKey.publicJwk] }));
    const names = [...files.keys()].map((p) => p.slice(1));
    const payload = {
      files: names.map((name) => ({
        name,
        hash: fileHash(name, files.get(`/${name}`) as Buffer),
        algorithm: "SHA-256",
      })),
    };
    for (const secret of [rsa.publicPem, JSON.stringify(rsaKey.publicJwk)]) {
      const jws = await new CompactSign(new TextEncoder().encode(JSON.stringify(payload)))
        .setProtectedHeader({ alg: "HS256", kid: "rsa-1" })
        .sign(new TextEncoder().encode(secret));
      const forged = new Map(files).set("/.signatures.json", Buffer.from(JSON.stringify({ signatures: [jws] })));
      const refused = await refusal(verifyBundleFiles(forged, { jwks: set, required: true }));
      expect(refused.fault).toBe("bad_signature");
      expect(refused.message).toContain("algorithm HS256 is not accepted");
    }
    const none = `${Buffer.from(JSON.stringify({ alg: "none", kid: "rsa-1" })).toString("base64url")}.${Buffer.from(JSON.stringify(payload)).toString("base64url")}.`;
    const unsecured = new Map(files).set("/.signatures.json", Buffer.from(JSON.stringify({ signatures: [none] })));
    expect((await refusal(verifyBundleFiles(unsecured, { jwks: set, required: true }))).message).toContain(
      "algorithm none is not accepted",
    );
  });

  it("refuses a key whose JWK names another algorithm, and malformed .signatures.json", async () => {
    const set = { keys: [{ ...signer.publicJwk, alg: "ES384" }] };
    expect((await refusal(verifyBundleFiles(signed, { jwks: set, required: true }))).message).toBe(
      '.signatures.json: key "ci-2026" is for ES384, the signature uses ES256',
    );
    const two = new Map(signed).set("/.signatures.json", Buffer.from('{"signatures": ["a.b.c", "d.e.f"]}'));
    expect(await refusal(verifyBundleFiles(two, { jwks, required: true }))).toEqual({
      fault: "malformed",
      message: '.signatures.json: expected {"signatures": ["<one JWS>"]}',
    });
  });

  it("uses the payload's deprecated keyid when the header has no kid", async () => {
    const files = await readBundleFiles(await testBundle("r3"));
    const names = [...files.keys()].map((p) => p.slice(1));
    const payload = {
      keyid: "ci-2026",
      files: names.map((name) => ({
        name,
        hash: fileHash(name, files.get(`/${name}`) as Buffer),
        algorithm: "SHA-256",
      })),
    };
    const jws = await new CompactSign(new TextEncoder().encode(JSON.stringify(payload)))
      .setProtectedHeader({ alg: "ES256" })
      .sign(signer.key);
    files.set("/.signatures.json", Buffer.from(JSON.stringify({ signatures: [jws] })));
    await expect(verifyBundleFiles(files, { jwks, required: true })).resolves.toEqual({ keyId: "ci-2026" });
  });
});
