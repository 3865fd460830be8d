// Offline verification of a consent-receipt bundle (receipts.ts), trusting nothing but the keys:
// the token public keys and audit public keys bundled with it, or ones the verifier pins. In order,
// stopping at the first failure and naming the part that failed:
//   1. receipt: a compact JWS typed mandate-receipt+jwt, signed by a key of the JWKS (exp is not
//      checked: a receipt is evidence of a past grant);
//   2. mandate: the bundled mandate document is the one the receipt signs (canonical JSON, RFC 8785)
//      and its SHA-256 the one signed;
//   3. audit entry: its canonical JSON hashes to its leaf hash, and it is the grant of this mandate
//      recording this receipt's SHA-256;
//   4. checkpoint: signed by the log's own audit key (C2SP signed note), of the proof's tree size;
//   5. inclusion proof: the entry's leaf is in the tree whose root the checkpoint signs (RFC 9162).
import { createHash } from "node:crypto";
import canonicalize from "canonicalize";
import { compactVerify, decodeProtectedHeader, importJWK, type JWK } from "jose";
import {
  type AuditPublicKey,
  type Hash,
  leafHash,
  parseCheckpointBody,
  toPublicKeys,
  verifyInclusion,
  verifySignedNote,
} from "../../audit/client.ts";
import { documentDigest, RECEIPT_BUNDLE_FORMAT, RECEIPT_TYP, type ReceiptBundle } from "./receipts.ts";

export type ReceiptPart = "bundle" | "receipt" | "mandate" | "audit entry" | "checkpoint" | "inclusion proof";

export interface ReceiptReport {
  ok: boolean;
  tenant?: string;
  mandateId?: string;
  /** The key that signed the receipt. */
  kid?: string;
  /** The grant's position in the log and the checkpoint's size. */
  seq?: number;
  treeSize?: number;
  failure?: { part: ReceiptPart; reason: string };
}

export interface ReceiptTrust {
  /** Token public keys to trust instead of the bundled ones. */
  jwks?: { keys: JWK[] } | undefined;
  /** Audit public keys to trust instead of the bundled ones. */
  auditKeys?: AuditPublicKey[] | undefined;
}

class Failed extends Error {
  readonly part: ReceiptPart;
  constructor(part: ReceiptPart, reason: string) {
    super(reason);
    this.part = part;
  }
}

const sha256 = (text: string) => createHash("sha256").update(text, "utf8").digest("base64url");

export async function verifyReceipt(input: unknown, trust: ReceiptTrust = {}): Promise<ReceiptReport> {
  const report: ReceiptReport = { ok: false };
  try {
    const bundle = shapeOf(input);
    report.tenant = bundle.tenant;
    report.mandateId = bundle.mandate_id;
    // 1. The receipt's signature.
    const { payload, kid } = await verifiedJws(bundle, trust.jwks ?? bundle.keys.token_signing);
    report.kid = kid;
    // 2. The mandate it signs.
    checkMandate(bundle, payload);
    // 3. The grant's audit entry.
    const { seq, leaf } = checkEntry(bundle);
    report.seq = seq;
    // 4. The checkpoint.
    const keys = trust.auditKeys ?? auditKeysOf(bundle);
    const checkpoint = verifiedCheckpoint(bundle.audit.checkpoint, keys, bundle.audit.inclusion_proof.tree_size);
    report.treeSize = checkpoint.size;
    // 5. The entry's inclusion in the checkpointed tree.
    const proof = hashesOf(bundle.audit.inclusion_proof.hashes);
    if (seq >= checkpoint.size) {
      throw new Failed("inclusion proof", `entry ${seq} is beyond the checkpoint (size ${checkpoint.size})`);
    }
    if (!verifyInclusion(seq, checkpoint.size, leaf, proof, checkpoint.root)) {
      throw new Failed(
        "inclusion proof",
        `does not prove entry ${seq} in the tree of size ${checkpoint.size} whose root the checkpoint signs`,
      );
    }
    return { ...report, ok: true };
  } catch (error) {
    if (!(error instanceof Failed)) throw error;
    return { ...report, ok: false, failure: { part: error.part, reason: error.message } };
  }
}

const isString = (v: unknown) => typeof v === "string";
/** The bundle's fields and whether each is well-formed (the parts check what they hold). */
const BUNDLE_FIELDS: Record<string, (b: Partial<ReceiptBundle>) => boolean> = {
  tenant: (b) => isString(b.tenant),
  mandate_id: (b) => isString(b.mandate_id),
  receipt: (b) => isString(b.receipt),
  mandate: (b) => Boolean(b.mandate) && typeof b.mandate === "object",
  "audit.entry": (b) =>
    Boolean(b.audit?.entry?.entry) && isString(b.audit?.entry?.leaf_hash) && Number.isSafeInteger(b.audit?.entry?.seq),
  "audit.inclusion_proof": (b) =>
    Array.isArray(b.audit?.inclusion_proof?.hashes) && Number.isSafeInteger(b.audit?.inclusion_proof?.tree_size),
  "audit.checkpoint": (b) => isString(b.audit?.checkpoint),
  "keys.token_signing": (b) => Array.isArray(b.keys?.token_signing?.keys),
  "keys.audit_checkpoint": (b) => Array.isArray(b.keys?.audit_checkpoint),
};

function shapeOf(input: unknown): ReceiptBundle {
  const b = input as Partial<ReceiptBundle> | null;
  if (!b || typeof b !== "object") throw new Failed("bundle", "not a JSON object");
  if (b.format !== RECEIPT_BUNDLE_FORMAT) {
    throw new Failed("bundle", `format is ${JSON.stringify(b.format)}, expected "${RECEIPT_BUNDLE_FORMAT}"`);
  }
  const missing = Object.entries(BUNDLE_FIELDS)
    .filter(([, wellFormed]) => !wellFormed(b))
    .map(([field]) => field);
  if (missing.length > 0) throw new Failed("bundle", `missing or malformed: ${missing.join(", ")}`);
  return b as ReceiptBundle;
}

async function verifiedJws(
  bundle: ReceiptBundle,
  jwks: { keys: JWK[] },
): Promise<{ payload: Record<string, unknown>; kid: string }> {
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(bundle.receipt);
  } catch {
    throw new Failed("receipt", "not a compact JWS");
  }
  if (header.typ !== RECEIPT_TYP) {
    throw new Failed("receipt", `typ is ${JSON.stringify(header.typ)}, expected "${RECEIPT_TYP}"`);
  }
  const kid = header.kid ?? "";
  const jwk = jwks.keys.find((key) => key.kid === kid);
  if (!jwk) throw new Failed("receipt", `signed by key "${kid}", which is not among the trusted keys`);
  if (typeof header.alg !== "string" || (jwk.alg && jwk.alg !== header.alg)) {
    throw new Failed("receipt", `alg ${String(header.alg)} is not the algorithm of key "${kid}"`);
  }
  let verified: Awaited<ReturnType<typeof compactVerify>>;
  try {
    const key = await importJWK(jwk, header.alg);
    verified = await compactVerify(bundle.receipt, key, { algorithms: [header.alg] });
  } catch {
    throw new Failed("receipt", `the signature does not verify with key "${kid}"`);
  }
  try {
    return { payload: JSON.parse(new TextDecoder().decode(verified.payload)) as Record<string, unknown>, kid };
  } catch {
    throw new Failed("receipt", "the payload is not JSON");
  }
}

function checkMandate(bundle: ReceiptBundle, payload: Record<string, unknown>): void {
  const signed = payload.mandate;
  if (!signed || typeof signed !== "object") throw new Failed("mandate", "the receipt signs no mandate");
  if (canonicalize(signed) !== canonicalize(bundle.mandate)) {
    throw new Failed("mandate", "the bundled mandate is not the one the receipt signs");
  }
  if (payload.mandate_sha256 !== documentDigest(signed)) {
    throw new Failed("mandate", "the signed mandate_sha256 is not the SHA-256 of the mandate's canonical JSON");
  }
  if (bundle.mandate.id !== bundle.mandate_id || bundle.mandate.tenant !== bundle.tenant) {
    throw new Failed("mandate", `the receipt is of mandate ${bundle.mandate.id} of tenant "${bundle.mandate.tenant}"`);
  }
}

function checkEntry(bundle: ReceiptBundle): { seq: number; leaf: Hash } {
  const { entry, leaf_hash: recorded, seq } = bundle.audit.entry;
  const canonical = canonicalize(entry);
  if (canonical === undefined) throw new Failed("audit entry", "cannot be canonicalised");
  const leaf = leafHash(Buffer.from(canonical, "utf8"));
  if (Buffer.from(leaf).toString("hex") !== recorded) {
    throw new Failed("audit entry", "does not match its leaf hash (edited)");
  }
  const event = (entry as { event?: Record<string, unknown> }).event ?? {};
  const details = (event.details ?? {}) as Record<string, unknown>;
  if ((entry as { seq?: unknown }).seq !== seq) throw new Failed("audit entry", `is not entry ${seq}`);
  if ((entry as { tenant?: unknown }).tenant !== bundle.tenant) {
    throw new Failed("audit entry", `is not of tenant "${bundle.tenant}"`);
  }
  if (event.type !== "mandate.granted.v1" || event.mandateId !== bundle.mandate_id) {
    throw new Failed("audit entry", `is not the grant of mandate ${bundle.mandate_id}`);
  }
  if (details.receipt_sha256 !== sha256(bundle.receipt)) {
    throw new Failed("audit entry", "records another receipt (its receipt_sha256 differs)");
  }
  return { seq, leaf };
}

function auditKeysOf(bundle: ReceiptBundle): AuditPublicKey[] {
  return toPublicKeys(bundle.keys.audit_checkpoint);
}

function verifiedCheckpoint(note: string, keys: AuditPublicKey[], size: number) {
  let checkpoint: ReturnType<typeof parseCheckpointBody>;
  try {
    const { body, verifiedBy } = verifySignedNote(note, keys);
    checkpoint = parseCheckpointBody(body);
    if (!verifiedBy.includes(checkpoint.origin))
      throw new Error(`not signed by the log's own key (${checkpoint.origin})`);
  } catch (error) {
    throw new Failed("checkpoint", (error as Error).message);
  }
  if (checkpoint.size !== size) {
    throw new Failed("checkpoint", `signs a tree of size ${checkpoint.size}, the proof is for size ${size}`);
  }
  return checkpoint;
}

function hashesOf(hashes: readonly unknown[]): Hash[] {
  return hashes.map((h, i) => {
    if (typeof h !== "string" || !/^[0-9a-f]{64}$/.test(h)) {
      throw new Failed("inclusion proof", `hash ${i} is not 32 bytes of hex`);
    }
    return new Uint8Array(Buffer.from(h, "hex"));
  });
}
