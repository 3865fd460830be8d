// The software keystore, the embedded default for `mandate dev`: node:crypto key pairs whose
// private halves are stored in the database sealed with AES-256-GCM under a key-encryption key
// (KEK) from configuration. The sealed blob is bound to its row (ref and algorithm in the AAD), so
// a blob copied onto another row does not open. For production keys, use the PKCS#11 backend.
import {
  createCipheriv,
  createDecipheriv,
  createPrivateKey,
  constants as cryptoConstants,
  generateKeyPair,
  type KeyObject,
  randomBytes,
  sign,
} from "node:crypto";
import { promisify } from "node:util";
import type { JWK } from "jose";
import type { Store } from "../../shared/store/store.ts";
import {
  type BackendStatus,
  type GeneratedKey,
  type KeyBackend,
  KeyBackendError,
  type SigningAlgorithm,
} from "./backend.ts";

const generateKeyPairAsync = promisify(generateKeyPair);
const signAsync = promisify(sign);

const SEAL_VERSION = 1;

interface Sealed {
  v: number;
  alg: SigningAlgorithm;
  iv: string;
  tag: string;
  ct: string;
}

export class SoftwareBackend implements KeyBackend {
  readonly kind = "software";
  readonly #store: Store;
  readonly #kek: Buffer;
  readonly #keys = new Map<string, KeyObject>();
  #status: BackendStatus = { ready: false, detail: "not opened" };

  constructor(store: Store, kek: Buffer) {
    if (kek.length !== 32) throw new KeyBackendError("MISCONFIGURED", "the key-encryption key must be 32 bytes");
    this.#store = store;
    this.#kek = kek;
  }

  async open(): Promise<void> {
    // A wrong KEK must stop the start, not surface as failed signatures later.
    const sample = await this.#store.db
      .selectFrom("signer_software_keys")
      .select(["ref", "sealed"])
      .limit(1)
      .executeTakeFirst();
    if (sample) {
      try {
        this.#unseal(sample.ref, sample.sealed);
      } catch {
        this.#status = { ready: false, detail: "the key-encryption key does not open the stored keys" };
        throw new KeyBackendError(
          "MISCONFIGURED",
          "the key-encryption key (signer.software.kek / kekFile) does not open the keys in the store: restore the KEK they were sealed with",
        );
      }
    }
    this.#status = { ready: true, detail: "ok" };
  }

  async generate(algorithm: SigningAlgorithm, label: string): Promise<GeneratedKey> {
    const { privateKey, publicKey } = await generate(algorithm);
    const ref = randomBytes(16).toString("hex");
    await this.#store.db
      .insertInto("signer_software_keys")
      .values({ ref, label, sealed: this.#seal(ref, algorithm, privateKey), created_at: Date.now() })
      .execute();
    this.#keys.set(ref, privateKey);
    const { kty, crv, x, y, n, e } = publicKey.export({ format: "jwk" }) as JWK;
    const publicJwk: JWK = kty === "RSA" ? { kty, n, e } : kty === "EC" ? { kty, crv, x, y } : { kty, crv, x };
    return { ref, publicJwk };
  }

  async sign(ref: string, algorithm: SigningAlgorithm, data: Uint8Array): Promise<Uint8Array> {
    const key = this.#keys.get(ref) ?? (await this.#load(ref));
    switch (algorithm) {
      // ECDSA and EdDSA take tens of microseconds: signing inline costs less than the thread-pool
      // round trip. RSA-PSS takes a millisecond and goes to the pool.
      case "ES256": // RFC 7518 §3.4: R||S, not DER
        return sign("sha256", data, { key, dsaEncoding: "ieee-p1363" });
      case "EdDSA": // RFC 8037 §3.1
        return sign(null, data, key);
      case "PS256": // RFC 7518 §3.5: MGF1 with SHA-256, salt as long as the hash
        return signAsync("sha256", data, { key, padding: cryptoConstants.RSA_PKCS1_PSS_PADDING, saltLength: 32 });
    }
  }

  async destroy(ref: string): Promise<void> {
    this.#keys.delete(ref);
    await this.#store.db.deleteFrom("signer_software_keys").where("ref", "=", ref).execute();
  }

  async listRefs(labelPrefix: string): Promise<string[]> {
    const rows = await this.#store.db
      .selectFrom("signer_software_keys")
      .select("ref")
      .where("label", "like", `${labelPrefix.replace(/[\\%_]/g, "\\$&")}%`)
      .execute();
    return rows.map((row) => row.ref);
  }

  status(): BackendStatus {
    return this.#status;
  }

  async close(): Promise<void> {
    this.#keys.clear();
    this.#status = { ready: false, detail: "closed" };
  }

  async #load(ref: string): Promise<KeyObject> {
    const row = await this.#store.db
      .selectFrom("signer_software_keys")
      .select("sealed")
      .where("ref", "=", ref)
      .executeTakeFirst();
    if (!row) throw new KeyBackendError("KEY_NOT_FOUND", `no key ${ref} in the software keystore`);
    const key = this.#unseal(ref, row.sealed);
    this.#keys.set(ref, key);
    return key;
  }

  #seal(ref: string, alg: SigningAlgorithm, key: KeyObject): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv("aes-256-gcm", this.#kek, iv);
    cipher.setAAD(aad(ref, alg));
    const der = key.export({ format: "der", type: "pkcs8" });
    const ct = Buffer.concat([cipher.update(der), cipher.final()]);
    der.fill(0);
    const sealed: Sealed = {
      v: SEAL_VERSION,
      alg,
      iv: iv.toString("base64url"),
      tag: cipher.getAuthTag().toString("base64url"),
      ct: ct.toString("base64url"),
    };
    return JSON.stringify(sealed);
  }

  #unseal(ref: string, text: string): KeyObject {
    const sealed = JSON.parse(text) as Sealed;
    if (sealed.v !== SEAL_VERSION) throw new Error(`unknown sealed key version ${sealed.v}`);
    const decipher = createDecipheriv("aes-256-gcm", this.#kek, Buffer.from(sealed.iv, "base64url"));
    decipher.setAAD(aad(ref, sealed.alg));
    decipher.setAuthTag(Buffer.from(sealed.tag, "base64url"));
    const der = Buffer.concat([decipher.update(Buffer.from(sealed.ct, "base64url")), decipher.final()]);
    try {
      return createPrivateKey({ key: der, format: "der", type: "pkcs8" });
    } finally {
      der.fill(0);
    }
  }
}

function aad(ref: string, alg: SigningAlgorithm): Buffer {
  return Buffer.from(`mandate-software-key:v${SEAL_VERSION}:${ref}:${alg}`);
}

function generate(algorithm: SigningAlgorithm): Promise<{ privateKey: KeyObject; publicKey: KeyObject }> {
  switch (algorithm) {
    case "ES256":
      return generateKeyPairAsync("ec", { namedCurve: "P-256" });
    case "EdDSA":
      return generateKeyPairAsync("ed25519");
    case "PS256":
      return generateKeyPairAsync("rsa", { modulusLength: 3072 });
  }
}
