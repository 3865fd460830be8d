// The offline verifier: checks an exported log (or the live store) against a signed checkpoint and
// the tenant's audit public keys, trusting nothing else. In order:
//   1. the checkpoint's signature (C2SP signed note) by a key the verifier holds;
//   2. every entry: its position (seq) and the canonical (RFC 8785) re-serialisation of its body
//      against its recorded leaf hash — an edited entry is named exactly;
//   3. the Merkle root over all leaves (RFC 9162) against the checkpoint's — deleted, reordered,
//      inserted or re-hashed entries change it; earlier signed checkpoints narrow down where;
//   4. optionally, the inclusion of one entry (an RFC 9162 proof checked against the root) and the
//      consistency with an earlier checkpoint the verifier kept (the log only grew since).
// It stops at the first failure and says what failed.
import canonicalize from "canonicalize";
import { ENTRY_VERSION, type EntryBody } from "./entry.ts";
import {
  CompactRange,
  type Hash,
  inclusionProof,
  leafHash,
  nodeHash,
  type SubtreeSource,
  verifyInclusion,
} from "./merkle.ts";
import { parseCheckpointBody, verifySignedNote } from "./note.ts";

/** One line of entries.ndjson. */
export interface ExportedEntry {
  seq: number;
  leaf_hash: string;
  entry: EntryBody;
}

export interface AuditPublicKey {
  /** Key name in signatures: the log's origin. */
  name: string;
  /** Raw 32-byte Ed25519 public key. */
  publicKey: Uint8Array;
}

export interface VerifyInput {
  /** entries.ndjson lines, in order. */
  entries: Iterable<string> | AsyncIterable<string>;
  /** The signed checkpoint to verify against. */
  checkpoint: string;
  keys: AuditPublicKey[];
  /** Every signed checkpoint exported with the log (locates a divergence). */
  checkpoints?: string[];
  /** A checkpoint the verifier kept from before: the log must have only grown since. */
  previousCheckpoint?: string | undefined;
  /** Also prove this entry's inclusion. */
  entry?: number | undefined;
}

export interface VerifyReport {
  ok: boolean;
  origin?: string;
  treeSize?: number;
  rootHash?: string;
  entriesChecked: number;
  /** The first thing that failed; absent when ok. */
  failure?: { reason: string; seq?: number; range?: [number, number] };
  inclusion?: { seq: number; proofLength: number };
  consistency?: { fromSize: number };
}

const toHex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");

export async function verifyLog(input: VerifyInput): Promise<VerifyReport> {
  const report: VerifyReport = { ok: false, entriesChecked: 0 };
  const fail = (reason: string, where: { seq?: number; range?: [number, number] } = {}): VerifyReport => ({
    ...report,
    ok: false,
    failure: { reason, ...where },
  });

  // 1. The checkpoint.
  let checkpoint: { origin: string; size: number; root: Uint8Array };
  try {
    checkpoint = signedCheckpoint(input.checkpoint, input.keys);
  } catch (error) {
    return fail(`checkpoint: ${(error as Error).message}`);
  }
  Object.assign(report, { origin: checkpoint.origin, treeSize: checkpoint.size, rootHash: toHex(checkpoint.root) });
  const earlier = new Map<number, Uint8Array>();
  for (const note of input.checkpoints ?? []) {
    try {
      const c = signedCheckpoint(note, input.keys);
      if (c.origin === checkpoint.origin && c.size <= checkpoint.size) earlier.set(c.size, c.root);
    } catch {
      // An exported checkpoint that does not verify is not evidence of anything: ignored.
    }
  }

  // 2. Entries, one by one.
  const range = CompactRange.fromFrontier(0, []);
  const leaves: Hash[] = [];
  const roots = new Map<number, Uint8Array>(); // our root at each earlier checkpoint's size
  let tenant: string | undefined;
  let seq = 0;
  for await (const line of input.entries) {
    if (line.trim() === "") continue;
    let parsed: ExportedEntry;
    try {
      parsed = JSON.parse(line) as ExportedEntry;
    } catch {
      return fail("entry is not valid JSON", { seq });
    }
    if (parsed.seq !== seq || parsed.entry?.seq !== seq) {
      return fail(`expected entry ${seq} here, found ${parsed.seq} (entries deleted, inserted or reordered)`, { seq });
    }
    if (parsed.entry.v !== ENTRY_VERSION) return fail(`unknown entry format version ${parsed.entry.v}`, { seq });
    tenant ??= parsed.entry.tenant;
    if (parsed.entry.tenant !== tenant)
      return fail(`entry of tenant "${parsed.entry.tenant}" in the log of "${tenant}"`, { seq });
    const canonical = canonicalize(parsed.entry);
    if (canonical === undefined) return fail("entry cannot be canonicalised", { seq });
    const leaf = leafHash(Buffer.from(canonical, "utf8"));
    if (toHex(leaf) !== parsed.leaf_hash) return fail("entry does not match its recorded leaf hash (edited)", { seq });
    if (seq >= checkpoint.size) {
      return fail(
        `entry ${seq} is beyond the checkpoint (size ${checkpoint.size}): the checkpoint is older than the log`,
        {
          seq,
        },
      );
    }
    range.append(leaf);
    leaves.push(leaf);
    seq++;
    if (earlier.has(seq)) roots.set(seq, range.root());
    report.entriesChecked = seq;
  }
  if (seq < checkpoint.size) {
    return fail(`the log has ${seq} entries but the checkpoint signs ${checkpoint.size} (entries missing at the end)`, {
      seq,
    });
  }

  // 3. The root, and where it diverged when it does not match.
  if (toHex(range.root()) !== toHex(checkpoint.root)) {
    let from = 0;
    for (const size of [...earlier.keys()].sort((a, b) => a - b)) {
      if (toHex(roots.get(size) as Uint8Array) !== toHex(earlier.get(size) as Uint8Array)) {
        return fail(`entries ${from}..${size - 1} differ from what the checkpoint of size ${size} signed`, {
          seq: from,
          range: [from, size - 1],
        });
      }
      from = size;
    }
    return fail(`entries ${from}..${checkpoint.size - 1} differ from what the checkpoint signed`, {
      seq: from,
      range: [from, checkpoint.size - 1],
    });
  }

  const source = memorySubtrees(leaves);
  // 4a. Inclusion of one entry, with the proof a server would give.
  if (input.entry !== undefined) {
    if (input.entry < 0 || input.entry >= checkpoint.size)
      return fail(`entry ${input.entry} is not in the checkpointed log`);
    const proof = await inclusionProof(input.entry, checkpoint.size, source);
    if (!verifyInclusion(input.entry, checkpoint.size, leaves[input.entry] as Hash, proof, checkpoint.root)) {
      return fail("inclusion proof does not verify", { seq: input.entry });
    }
    report.inclusion = { seq: input.entry, proofLength: proof.length };
  }
  // 4b. Consistency with a checkpoint kept from before.
  if (input.previousCheckpoint !== undefined) {
    let previous: { origin: string; size: number; root: Uint8Array };
    try {
      previous = signedCheckpoint(input.previousCheckpoint, input.keys);
    } catch (error) {
      return fail(`previous checkpoint: ${(error as Error).message}`);
    }
    if (previous.origin !== checkpoint.origin)
      return fail(`previous checkpoint is of another log (${previous.origin})`);
    if (previous.size > checkpoint.size) {
      return fail(`the checkpoint (size ${checkpoint.size}) is older than the one you kept (size ${previous.size})`);
    }
    const prefix = CompactRange.fromFrontier(0, []);
    for (const leaf of leaves.slice(0, previous.size)) prefix.append(leaf);
    if (toHex(prefix.root()) !== toHex(previous.root)) {
      return fail(
        `the log is not an extension of the checkpoint of size ${previous.size} you kept (history rewritten)`,
        {
          range: [0, previous.size - 1],
        },
      );
    }
    report.consistency = { fromSize: previous.size };
  }
  return { ...report, ok: true };
}

function signedCheckpoint(note: string, keys: AuditPublicKey[]): { origin: string; size: number; root: Uint8Array } {
  const { body, verifiedBy } = verifySignedNote(note, keys);
  const parsed = parseCheckpointBody(body);
  if (!verifiedBy.includes(parsed.origin)) throw new Error(`not signed by the log's own key (${parsed.origin})`);
  return parsed;
}

/** Aligned subtree hashes computed from leaves in memory, memoised (a SubtreeSource). */
export function memorySubtrees(leaves: readonly Hash[]): SubtreeSource {
  const memo = new Map<string, Hash>();
  const subtree = (level: number, index: number): Hash => {
    if (level === 0) {
      const leaf = leaves[index];
      if (!leaf) throw new RangeError(`no leaf ${index}`);
      return leaf;
    }
    const key = `${level}/${index}`;
    let hash = memo.get(key);
    if (!hash) {
      // Two halves from memoised smaller subtrees, combined as RFC 9162 §2.1.1 does.
      hash = nodeHash(subtree(level - 1, 2 * index), subtree(level - 1, 2 * index + 1));
      memo.set(key, hash);
    }
    return hash;
  };
  return { subtree };
}
