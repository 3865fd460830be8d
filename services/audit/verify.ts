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

type Checkpoint = { origin: string; size: number; root: Uint8Array };
type Failure = NonNullable<VerifyReport["failure"]>;

/** The first thing that failed: ends the verification with a report saying so. */
class VerificationFailed extends Error {
  readonly failure: Failure;
  constructor(reason: string, where: { seq?: number; range?: [number, number] } = {}) {
    super(reason);
    this.failure = { reason, ...where };
  }
}

export async function verifyLog(input: VerifyInput): Promise<VerifyReport> {
  const report: VerifyReport = { ok: false, entriesChecked: 0 };
  let replay: Replay | undefined;
  try {
    // 1. The checkpoint.
    const checkpoint = verifiedCheckpoint("checkpoint", input.checkpoint, input.keys);
    Object.assign(report, { origin: checkpoint.origin, treeSize: checkpoint.size, rootHash: toHex(checkpoint.root) });
    // 2. Entries, one by one.
    replay = new Replay(checkpoint, earlierRoots(input, checkpoint));
    for await (const line of input.entries) replay.add(line);
    replay.requireAll();
    // 3. The root, and where it diverged when it does not match.
    replay.requireRoot();
    // 4a. Inclusion of one entry, with the proof a server would give.
    if (input.entry !== undefined) report.inclusion = await proveInclusion(input.entry, checkpoint, replay.leaves);
    // 4b. Consistency with a checkpoint kept from before.
    if (input.previousCheckpoint !== undefined) {
      report.consistency = checkConsistency(input.previousCheckpoint, input.keys, checkpoint, replay.leaves);
    }
    report.entriesChecked = replay.checked;
    return { ...report, ok: true };
  } catch (error) {
    if (!(error instanceof VerificationFailed)) throw error;
    report.entriesChecked = replay?.checked ?? 0;
    return { ...report, ok: false, failure: error.failure };
  }
}

function verifiedCheckpoint(what: string, note: string, keys: AuditPublicKey[]): Checkpoint {
  try {
    return signedCheckpoint(note, keys);
  } catch (error) {
    throw new VerificationFailed(`${what}: ${(error as Error).message}`);
  }
}

/** The roots the exported checkpoints of this log sign, by size, up to the checkpoint's. */
function earlierRoots(input: VerifyInput, checkpoint: Checkpoint): Map<number, Uint8Array> {
  const earlier = new Map<number, Uint8Array>();
  for (const note of input.checkpoints ?? []) {
    try {
      const c = signedCheckpoint(note, input.keys);
      if (c.origin === checkpoint.origin && c.size <= checkpoint.size) earlier.set(c.size, c.root);
    } catch {
      // An exported checkpoint that does not verify is not evidence of anything: ignored.
    }
  }
  return earlier;
}

/** The entries replayed into a tree, each checked in order against its recorded leaf hash. */
class Replay {
  readonly leaves: Hash[] = [];
  readonly #checkpoint: Checkpoint;
  readonly #earlier: Map<number, Uint8Array>;
  readonly #range = CompactRange.fromFrontier(0, []);
  /** Our root at each earlier checkpoint's size. */
  readonly #roots = new Map<number, Uint8Array>();
  #tenant: string | undefined;

  constructor(checkpoint: Checkpoint, earlier: Map<number, Uint8Array>) {
    this.#checkpoint = checkpoint;
    this.#earlier = earlier;
  }

  get checked(): number {
    return this.leaves.length;
  }

  add(line: string): void {
    if (line.trim() === "") return;
    const seq = this.leaves.length;
    const leaf = this.#leafOf(this.#parse(line, seq), seq);
    if (seq >= this.#checkpoint.size) {
      throw new VerificationFailed(
        `entry ${seq} is beyond the checkpoint (size ${this.#checkpoint.size}): the checkpoint is older than the log`,
        { seq },
      );
    }
    this.#range.append(leaf);
    this.leaves.push(leaf);
    if (this.#earlier.has(seq + 1)) this.#roots.set(seq + 1, this.#range.root());
  }

  /** Entry `seq` in its place, of a known format, of the same tenant as the first. */
  #parse(line: string, seq: number): ExportedEntry {
    let parsed: ExportedEntry;
    try {
      parsed = JSON.parse(line) as ExportedEntry;
    } catch {
      throw new VerificationFailed("entry is not valid JSON", { seq });
    }
    if (parsed.seq !== seq || parsed.entry?.seq !== seq) {
      throw new VerificationFailed(
        `expected entry ${seq} here, found ${parsed.seq} (entries deleted, inserted or reordered)`,
        { seq },
      );
    }
    if (parsed.entry.v !== ENTRY_VERSION) {
      throw new VerificationFailed(`unknown entry format version ${parsed.entry.v}`, { seq });
    }
    this.#tenant ??= parsed.entry.tenant;
    if (parsed.entry.tenant !== this.#tenant) {
      throw new VerificationFailed(`entry of tenant "${parsed.entry.tenant}" in the log of "${this.#tenant}"`, { seq });
    }
    return parsed;
  }

  /** The leaf hash of the entry's canonical form, which must be the one recorded. */
  #leafOf(parsed: ExportedEntry, seq: number): Hash {
    const canonical = canonicalize(parsed.entry);
    if (canonical === undefined) throw new VerificationFailed("entry cannot be canonicalised", { seq });
    const leaf = leafHash(Buffer.from(canonical, "utf8"));
    if (toHex(leaf) !== parsed.leaf_hash) {
      throw new VerificationFailed("entry does not match its recorded leaf hash (edited)", { seq });
    }
    return leaf;
  }

  requireAll(): void {
    const seq = this.leaves.length;
    if (seq < this.#checkpoint.size) {
      throw new VerificationFailed(
        `the log has ${seq} entries but the checkpoint signs ${this.#checkpoint.size} (entries missing at the end)`,
        { seq },
      );
    }
  }

  /** The root must be the checkpoint's; if not, the first earlier checkpoint that differs narrows down where. */
  requireRoot(): void {
    if (toHex(this.#range.root()) === toHex(this.#checkpoint.root)) return;
    let from = 0;
    for (const size of [...this.#earlier.keys()].sort((a, b) => a - b)) {
      if (toHex(this.#roots.get(size) as Uint8Array) !== toHex(this.#earlier.get(size) as Uint8Array)) {
        throw new VerificationFailed(
          `entries ${from}..${size - 1} differ from what the checkpoint of size ${size} signed`,
          {
            seq: from,
            range: [from, size - 1],
          },
        );
      }
      from = size;
    }
    throw new VerificationFailed(
      `entries ${from}..${this.#checkpoint.size - 1} differ from what the checkpoint signed`,
      {
        seq: from,
        range: [from, this.#checkpoint.size - 1],
      },
    );
  }
}

async function proveInclusion(
  entry: number,
  checkpoint: Checkpoint,
  leaves: readonly Hash[],
): Promise<{ seq: number; proofLength: number }> {
  if (entry < 0 || entry >= checkpoint.size)
    throw new VerificationFailed(`entry ${entry} is not in the checkpointed log`);
  const proof = await inclusionProof(entry, checkpoint.size, memorySubtrees(leaves));
  if (!verifyInclusion(entry, checkpoint.size, leaves[entry] as Hash, proof, checkpoint.root)) {
    throw new VerificationFailed("inclusion proof does not verify", { seq: entry });
  }
  return { seq: entry, proofLength: proof.length };
}

function checkConsistency(
  note: string,
  keys: AuditPublicKey[],
  checkpoint: Checkpoint,
  leaves: readonly Hash[],
): { fromSize: number } {
  const previous = verifiedCheckpoint("previous checkpoint", note, keys);
  if (previous.origin !== checkpoint.origin) {
    throw new VerificationFailed(`previous checkpoint is of another log (${previous.origin})`);
  }
  if (previous.size > checkpoint.size) {
    throw new VerificationFailed(
      `the checkpoint (size ${checkpoint.size}) is older than the one you kept (size ${previous.size})`,
    );
  }
  const prefix = CompactRange.fromFrontier(0, []);
  for (const leaf of leaves.slice(0, previous.size)) prefix.append(leaf);
  if (toHex(prefix.root()) !== toHex(previous.root)) {
    throw new VerificationFailed(
      `the log is not an extension of the checkpoint of size ${previous.size} you kept (history rewritten)`,
      { range: [0, previous.size - 1] },
    );
  }
  return { fromSize: previous.size };
}

function signedCheckpoint(note: string, keys: AuditPublicKey[]): Checkpoint {
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
