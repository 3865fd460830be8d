// C2SP signed notes and checkpoints: the published examples (the signed-note spec's, and Go's
// golang.org/x/mod/sumdb/note package documentation) verify byte for byte; round trips with our own
// keys; tampering and malformed input are refused with a reason.
import { generateKeyPairSync, sign } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  checkpointBody,
  ed25519KeyId,
  ed25519VerifierKey,
  parseCheckpointBody,
  parseSignedNote,
  parseVerifierKey,
  signedNote,
  verifySignedNote,
} from "../../services/audit/note.ts";

// https://github.com/C2SP/C2SP/blob/main/signed-note.md#example
const SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
const SPEC_NOTE =
  "This is an example message.\n\n— example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";
// golang.org/x/mod/sumdb/note, package documentation
const GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const GO_NOTE =
  "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

const asKey = (vkey: string) => {
  const { name, publicKey } = parseVerifierKey(vkey);
  return { name, publicKey };
};

describe("signed notes", () => {
  it("verifies the published examples with their published verifier keys", () => {
    expect(verifySignedNote(SPEC_NOTE, [asKey(SPEC_VKEY)])).toEqual({
      body: "This is an example message.\n",
      verifiedBy: ["example.com/foo"],
    });
    expect(verifySignedNote(GO_NOTE, [asKey(GO_VKEY)]).verifiedBy).toEqual(["PeterNeumann"]);
    // The key id is the spec's derivation, and the verifier key string round-trips.
    const { name, publicKey, keyId } = parseVerifierKey(GO_VKEY);
    expect(Buffer.from(ed25519KeyId(name, publicKey)).toString("hex")).toBe("c74f20a3");
    expect(Buffer.from(keyId).toString("hex")).toBe("c74f20a3");
    expect(ed25519VerifierKey(name, publicKey)).toBe(GO_VKEY);
  });

  it("ignores signatures by unknown keys but needs one by a known key", () => {
    const withUnknown = `${SPEC_NOTE}— other.example/key AAAAAAB0ZXN0\n`;
    expect(verifySignedNote(withUnknown, [asKey(SPEC_VKEY)]).verifiedBy).toEqual(["example.com/foo"]);
    expect(() => verifySignedNote(SPEC_NOTE, [asKey(GO_VKEY)])).toThrow(/no signature by a known key/);
  });

  it("signs and verifies with our own keys, and refuses a changed body", () => {
    const { privateKey, publicKey } = generateKeyPairSync("ed25519");
    const raw = new Uint8Array(Buffer.from(publicKey.export({ format: "jwk" }).x as string, "base64url"));
    const origin = "mandate.example.com/t/acme/audit";
    const body = checkpointBody(origin, 42, new Uint8Array(32).fill(7));
    const note = signedNote(body, [
      { name: origin, keyId: ed25519KeyId(origin, raw), signature: sign(null, Buffer.from(body), privateKey) },
    ]);
    const { body: verified } = verifySignedNote(note, [{ name: origin, publicKey: raw }]);
    expect(parseCheckpointBody(verified)).toEqual({ origin, size: 42, root: new Uint8Array(32).fill(7) });
    expect(() => verifySignedNote(note.replace("\n42\n", "\n43\n"), [{ name: origin, publicKey: raw }])).toThrow(
      /does not verify/,
    );
    expect(() => parseVerifierKey(ed25519VerifierKey(origin, raw).replace(/\+[0-9a-f]{8}\+/, "+00000000+"))).toThrow(
      /key id does not match/,
    );
  });

  it.each([
    ["no blank line", "body\n— a AAAAAAB0ZXN0\n", /no blank line/],
    ["no trailing newline", "body\n\n— a AAAAAAB0ZXN0", /end with a newline/],
    ["malformed signature line", "body\n\n- a AAAAAAB0ZXN0\n", /malformed signature line/],
    ["short signature", "body\n\n— a AAAA\n", /too short/],
  ])("refuses a note with %s", (_name, note, reason) => {
    expect(() => parseSignedNote(note)).toThrow(reason);
  });
});

describe("checkpoint bodies", () => {
  const root = Buffer.alloc(32, 1).toString("base64");
  it.each([
    ["a size that is not decimal", `o\n0x10\n${root}\n`, /not a decimal/],
    ["a size with leading zeros", `o\n010\n${root}\n`, /not a decimal/],
    ["a root that is not 32 bytes", "o\n10\nAAAA\n", /not 32 bytes/],
    ["no trailing newline", `o\n10\n${root}`, /end with a newline/],
    ["no origin", `\n10\n${root}\n`, /no origin/],
  ])("refuses %s", (_name, body, reason) => {
    expect(() => parseCheckpointBody(body)).toThrow(reason);
  });
});
