// RFC 9162 §2.1 Merkle tree hashing, proofs and their verification.
import { createHash } from "node:crypto";

export type Hash = Uint8Array;

const sha256 = (...parts: Uint8Array[]): Hash => {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
};

/** MTH({}) = SHA-256() (RFC 9162 §2.1.1). */
export const EMPTY_ROOT: Hash = sha256();
const LEAF = Uint8Array.of(0);
const NODE = Uint8Array.of(1);

export function leafHash(entry: Uint8Array): Hash {
  return sha256(LEAF, entry);
}

export function nodeHash(left: Hash, right: Hash): Hash {
  return sha256(NODE, left, right);
}

/** Largest power of two strictly below n (n > 1): the split point k of §2.1.1. */
function split(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

export function rootFromLeafHashes(leaves: readonly Hash[]): Hash {
  const mth = (from: number, to: number): Hash => {
    const n = to - from;
    if (n === 0) return EMPTY_ROOT;
    if (n === 1) return leaves[from] as Hash;
    const k = split(n);
    return nodeHash(mth(from, from + k), mth(from + k, to));
  };
  return mth(0, leaves.length);
}

export interface SubtreeSource {
  subtree(level: number, index: number): Hash | Promise<Hash>;
}

/** MTH(D[from:to]) from stored complete subtrees: aligned power-of-two ranges are read, others split. */
async function rangeHash(from: number, to: number, source: SubtreeSource): Promise<Hash> {
  const n = to - from;
  if (n === 0) return EMPTY_ROOT;
  // An aligned, complete power-of-two range is one stored node.
  if ((n & (n - 1)) === 0 && from % n === 0) return source.subtree(Math.log2(n), from / n);
  const k = split(n);
  return nodeHash(await rangeHash(from, from + k, source), await rangeHash(from + k, to, source));
}

function checkSize(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0)
    throw new RangeError(`${name} must be a non-negative integer, got ${value}`);
}

export function rootHash(size: number, source: SubtreeSource): Promise<Hash> {
  checkSize("size", size);
  return rangeHash(0, size, source);
}

/** PATH(m, D[from:to]) of RFC 9162 §2.1.3.1, over the range. */
async function path(m: number, from: number, to: number, source: SubtreeSource): Promise<Hash[]> {
  const n = to - from;
  if (n <= 1) return [];
  const k = split(n);
  if (m < k) return [...(await path(m, from, from + k, source)), await rangeHash(from + k, to, source)];
  return [...(await path(m - k, from + k, to, source)), await rangeHash(from, from + k, source)];
}

export async function inclusionProof(index: number, size: number, source: SubtreeSource): Promise<Hash[]> {
  checkSize("index", index);
  checkSize("size", size);
  if (index >= size) throw new RangeError(`index ${index} is not below the tree size ${size}`);
  return path(index, 0, size, source);
}

/** SUBPROOF(m, D[from:to], b) of RFC 9162 §2.1.4.1. */
async function subproof(
  m: number,
  from: number,
  to: number,
  complete: boolean,
  source: SubtreeSource,
): Promise<Hash[]> {
  const n = to - from;
  if (m === n) return complete ? [] : [await rangeHash(from, to, source)];
  const k = split(n);
  if (m <= k) return [...(await subproof(m, from, from + k, complete, source)), await rangeHash(from + k, to, source)];
  return [...(await subproof(m - k, from + k, to, false, source)), await rangeHash(from, from + k, source)];
}

export async function consistencyProof(first: number, second: number, source: SubtreeSource): Promise<Hash[]> {
  checkSize("first", first);
  checkSize("second", second);
  if (first === 0) throw new RangeError("first tree size must be at least 1");
  if (first > second) throw new RangeError(`first tree size ${first} exceeds the second ${second}`);
  return subproof(first, 0, second, true, source);
}

const equal = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i]);
const valid = (h: unknown): h is Hash => h instanceof Uint8Array && h.length === 32;

/** Halves both node indices (one level up the tree). */
const up = (fn: number, sn: number): [number, number] => [Math.floor(fn / 2), Math.floor(sn / 2)];

/** "Right-shift both fn and sn equally until either LSB(fn) is set or fn is 0." */
function upToRightChild(fn: number, sn: number): [number, number] {
  let [f, s] = [fn, sn];
  while (f % 2 === 0 && f !== 0) [f, s] = up(f, s);
  return [f, s];
}

/** RFC 9162 §2.1.3.2. */
export function verifyInclusion(index: number, size: number, leaf: Hash, proof: readonly Hash[], root: Hash): boolean {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) return false;
  if (!valid(leaf) || !valid(root) || !proof.every(valid)) return false;
  let [fn, sn] = [index, size - 1];
  let r = leaf;
  for (const p of proof) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      [fn, sn] = upToRightChild(fn, sn);
    } else {
      r = nodeHash(r, p);
    }
    [fn, sn] = up(fn, sn);
  }
  return sn === 0 && equal(r, root);
}

/** RFC 9162 §2.1.4.2. */
export function verifyConsistency(
  first: number,
  second: number,
  firstRoot: Hash,
  secondRoot: Hash,
  proof: readonly Hash[],
): boolean {
  if (!Number.isSafeInteger(first) || !Number.isSafeInteger(second) || first < 1 || first > second) return false;
  if (!valid(firstRoot) || !valid(secondRoot) || !proof.every(valid)) return false;
  if (first === second) return proof.length === 0 && equal(firstRoot, secondRoot);
  const path = [...proof];
  if ((first & (first - 1)) === 0) path.unshift(firstRoot);
  if (path.length === 0) return false;
  const roots = consistencyRoots(first, second, path);
  return roots !== undefined && equal(roots.first, firstRoot) && equal(roots.second, secondRoot);
}

/** Steps 3 to 10 of §2.1.4.2: both roots computed from the path, or undefined when the path does not fit. */
function consistencyRoots(
  first: number,
  second: number,
  path: readonly Hash[],
): { first: Hash; second: Hash } | undefined {
  let [fn, sn] = [first - 1, second - 1];
  while (fn % 2 === 1) [fn, sn] = up(fn, sn);
  let fr = path[0] as Hash;
  let sr = path[0] as Hash;
  for (const c of path.slice(1)) {
    if (sn === 0) return undefined;
    if (fn % 2 === 1 || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      [fn, sn] = upToRightChild(fn, sn);
    } else {
      sr = nodeHash(sr, c);
    }
    [fn, sn] = up(fn, sn);
  }
  return sn === 0 ? { first: fr, second: sr } : undefined;
}

/** The right frontier of a tree: the complete subtrees of its binary decomposition, largest first. */
export class CompactRange {
  readonly #nodes: Array<{ level: number; index: number; hash: Hash }>;
  #size: number;

  private constructor(size: number, nodes: Array<{ level: number; index: number; hash: Hash }>) {
    this.#size = size;
    this.#nodes = nodes;
  }

  static frontierPositions(size: number): Array<{ level: number; index: number }> {
    checkSize("size", size);
    const positions: Array<{ level: number; index: number }> = [];
    let start = 0;
    for (let level = 52; level >= 0; level--) {
      const width = 2 ** level;
      if (size - start >= width) {
        positions.push({ level, index: start / width });
        start += width;
      }
    }
    return positions;
  }

  static fromFrontier(size: number, frontier: readonly Hash[]): CompactRange {
    const positions = CompactRange.frontierPositions(size);
    if (positions.length !== frontier.length) {
      throw new RangeError(`a tree of ${size} leaves has ${positions.length} frontier nodes, got ${frontier.length}`);
    }
    return new CompactRange(
      size,
      positions.map((p, i) => ({ ...p, hash: frontier[i] as Hash })),
    );
  }

  get size(): number {
    return this.#size;
  }

  append(leaf: Hash): Array<{ level: number; index: number; hash: Hash }> {
    const formed = [{ level: 0, index: this.#size, hash: leaf }];
    this.#nodes.push(formed[0] as { level: number; index: number; hash: Hash });
    this.#size++;
    for (;;) {
      const right = this.#nodes.at(-1);
      const left = this.#nodes.at(-2);
      if (!left || !right || left.level !== right.level) break;
      this.#nodes.splice(-2, 2);
      const parent = { level: left.level + 1, index: left.index / 2, hash: nodeHash(left.hash, right.hash) };
      this.#nodes.push(parent);
      formed.push(parent);
    }
    return formed;
  }

  root(): Hash {
    if (this.#nodes.length === 0) return EMPTY_ROOT;
    let hash = (this.#nodes.at(-1) as { hash: Hash }).hash;
    for (let i = this.#nodes.length - 2; i >= 0; i--) hash = nodeHash((this.#nodes[i] as { hash: Hash }).hash, hash);
    return hash;
  }

  clone(): CompactRange {
    return new CompactRange(
      this.#size,
      this.#nodes.map((n) => ({ ...n })),
    );
  }
}
