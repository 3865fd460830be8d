// C2SP signed-note and tlog-checkpoint formats, with Ed25519 signatures (node:crypto).
import { createHash, createPublicKey, verify } from "node:crypto";

const SIGNATURE_PREFIX = "\u2014 "; // em dash and a space begin every signature line
const ED25519 = 0x01; // signature type of Ed25519 keys (C2SP signed-note)

export function checkpointBody(origin: string, size: number, root: Uint8Array): string {
  if (origin === "" || /[\n\r]/.test(origin)) throw new Error("checkpoint origin must be one non-empty line");
  if (!Number.isSafeInteger(size) || size < 0)
    throw new Error(`checkpoint size must be a non-negative integer, got ${size}`);
  return `${origin}\n${size}\n${Buffer.from(root).toString("base64")}\n`;
}

export function parseCheckpointBody(body: string): { origin: string; size: number; root: Uint8Array } {
  if (!body.endsWith("\n")) throw new Error("checkpoint body must end with a newline");
  const [origin, sizeText, rootText] = body.slice(0, -1).split("\n");
  if (!origin) throw new Error("checkpoint has no origin line");
  if (sizeText === undefined || !/^(0|[1-9][0-9]*)$/.test(sizeText))
    throw new Error("checkpoint size is not a decimal number");
  const size = Number(sizeText);
  if (!Number.isSafeInteger(size)) throw new Error("checkpoint size is too large");
  if (rootText === undefined || !/^[A-Za-z0-9+/]{43}=$/.test(rootText))
    throw new Error("checkpoint root is not 32 bytes of base64");
  return { origin, size, root: new Uint8Array(Buffer.from(rootText, "base64")) };
}

export function ed25519KeyId(name: string, publicKey: Uint8Array): Uint8Array {
  const digest = createHash("sha256").update(name).update(Uint8Array.of(0x0a, ED25519)).update(publicKey).digest();
  return new Uint8Array(digest.subarray(0, 4));
}

export function ed25519VerifierKey(name: string, publicKey: Uint8Array): string {
  const keyId = Buffer.from(ed25519KeyId(name, publicKey)).toString("hex");
  return `${name}+${keyId}+${Buffer.concat([Uint8Array.of(ED25519), publicKey]).toString("base64")}`;
}

export function parseVerifierKey(vkey: string): { name: string; keyId: Uint8Array; publicKey: Uint8Array } {
  const match = /^([^+\s]+)\+([0-9a-f]{8})\+([A-Za-z0-9+/=]+)$/.exec(vkey);
  if (!match) throw new Error("verifier key must look like name+hexkeyid+base64key");
  const [, name, hexId, b64] = match as unknown as [string, string, string, string];
  const raw = Buffer.from(b64, "base64");
  if (raw.length !== 33 || raw[0] !== ED25519) throw new Error("verifier key is not an Ed25519 key");
  const publicKey = new Uint8Array(raw.subarray(1));
  if (Buffer.from(ed25519KeyId(name, publicKey)).toString("hex") !== hexId)
    throw new Error("verifier key id does not match its key");
  return { name, keyId: new Uint8Array(Buffer.from(hexId, "hex")), publicKey };
}

export interface NoteSignature {
  name: string;
  keyId: Uint8Array;
  signature: Uint8Array;
}

export function signedNote(body: string, signatures: NoteSignature[]): string {
  const lines = signatures.map(
    (s) => `${SIGNATURE_PREFIX}${s.name} ${Buffer.concat([s.keyId, s.signature]).toString("base64")}\n`,
  );
  return `${body}\n${lines.join("")}`;
}

export function parseSignedNote(note: string): { body: string; signatures: NoteSignature[] } {
  const split = note.lastIndexOf("\n\n");
  if (split < 0) throw new Error("signed note has no blank line before its signatures");
  const body = note.slice(0, split + 1);
  const block = note.slice(split + 2);
  if (!block.endsWith("\n")) throw new Error("signed note must end with a newline");
  const signatures = block
    .slice(0, -1)
    .split("\n")
    .map((line) => {
      const match = /^\u2014 (\S+) ([A-Za-z0-9+/=]+)$/.exec(line);
      if (!match) throw new Error(`malformed signature line: ${JSON.stringify(line.slice(0, 80))}`);
      const raw = Buffer.from(match[2] as string, "base64");
      if (raw.length < 5) throw new Error("signature too short");
      return {
        name: match[1] as string,
        keyId: new Uint8Array(raw.subarray(0, 4)),
        signature: new Uint8Array(raw.subarray(4)),
      };
    });
  if (signatures.length === 0) throw new Error("signed note has no signatures");
  return { body, signatures };
}

export function verifySignedNote(
  note: string,
  keys: Array<{ name: string; publicKey: Uint8Array }>,
): { body: string; verifiedBy: string[] } {
  const { body, signatures } = parseSignedNote(note);
  const verifiedBy: string[] = [];
  for (const sig of signatures) {
    for (const key of keys) {
      if (key.name !== sig.name) continue;
      if (Buffer.compare(Buffer.from(ed25519KeyId(key.name, key.publicKey)), Buffer.from(sig.keyId)) !== 0) continue;
      const publicKey = createPublicKey({
        key: { kty: "OKP", crv: "Ed25519", x: Buffer.from(key.publicKey).toString("base64url") },
        format: "jwk",
      });
      if (verify(null, Buffer.from(body, "utf8"), publicKey, sig.signature)) verifiedBy.push(sig.name);
      else throw new Error(`signature by ${sig.name} does not verify`);
    }
  }
  if (verifiedBy.length === 0) throw new Error("no signature by a known key");
  return { body, verifiedBy };
}
