// RFC 9162 Merkle tree: the reference vectors of RFC 6962's certificate-transparency test suite
// (the 8-leaf tree of Google's certificate-transparency / transparency-dev merkle tests), and
// properties against an independent, literal transcription of RFC 9162 §2.1's recursive definitions.
import { createHash } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  CompactRange,
  consistencyProof,
  EMPTY_ROOT,
  type Hash,
  inclusionProof,
  leafHash,
  rootFromLeafHashes,
  type SubtreeSource,
  verifyConsistency,
  verifyInclusion,
} from "../../services/audit/merkle.ts";

const hex = (h: Uint8Array) => Buffer.from(h).toString("hex");
const LEAF_DATA = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"];
const ROOTS = [
  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
  "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
  "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
  "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
  "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
  "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
  "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
  "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];
/** Inclusion path of leaf 0 in the 8-leaf tree, from the same suite. */
const PATH_0_OF_8 = [
  "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
  "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
  "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
];

// ---- an independent reference, written straight from RFC 9162 §2.1 ----
const sha = (...parts: Uint8Array[]) => {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
};
const k = (n: number) => 2 ** Math.ceil(Math.log2(n) - 1);
function MTH(d: Hash[]): Hash {
  if (d.length === 0) return sha();
  if (d.length === 1) return d[0] as Hash;
  const s = k(d.length);
  return sha(Uint8Array.of(1), MTH(d.slice(0, s)), MTH(d.slice(s)));
}
function PATH(m: number, d: Hash[]): Hash[] {
  if (d.length <= 1) return [];
  const s = k(d.length);
  return m < s ? [...PATH(m, d.slice(0, s)), MTH(d.slice(s))] : [...PATH(m - s, d.slice(s)), MTH(d.slice(0, s))];
}
function SUBPROOF(m: number, d: Hash[], b: boolean): Hash[] {
  if (m === d.length) return b ? [] : [MTH(d)];
  const s = k(d.length);
  return m <= s
    ? [...SUBPROOF(m, d.slice(0, s), b), MTH(d.slice(s))]
    : [...SUBPROOF(m - s, d.slice(s), false), MTH(d.slice(0, s))];
}

/** Aligned subtrees from leaves in memory, counting lookups. */
function source(leaves: Hash[]): SubtreeSource & { lookups: number } {
  const s = {
    lookups: 0,
    subtree(level: number, index: number) {
      s.lookups++;
      const width = 2 ** level;
      return MTH(leaves.slice(index * width, (index + 1) * width));
    },
  };
  return s;
}

const leavesOf = (n: number) => Array.from({ length: n }, (_, i) => leafHash(Buffer.from(`entry ${i}`)));

describe("RFC 6962 reference vectors", () => {
  const leaves = LEAF_DATA.map((d) => leafHash(Buffer.from(d, "hex")));
  it("gives the published root for every size 0..8", () => {
    expect(hex(EMPTY_ROOT)).toBe(ROOTS[0]);
    for (let n = 0; n <= 8; n++) expect(hex(rootFromLeafHashes(leaves.slice(0, n)))).toBe(ROOTS[n]);
  });
  it("gives the published inclusion path of leaf 0 in the 8-leaf tree", async () => {
    const proof = await inclusionProof(0, 8, source(leaves));
    expect(proof.map(hex)).toEqual(PATH_0_OF_8);
    expect(verifyInclusion(0, 8, leaves[0] as Hash, proof, Buffer.from(ROOTS[8] as string, "hex"))).toBe(true);
  });
});

describe("proofs against the RFC's recursive definitions", () => {
  it("inclusion proofs equal PATH(m, D_n), verify, and fail when anything changes", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 300 }), fc.nat(), fc.nat(), async (n, i, flip) => {
        const leaves = leavesOf(n);
        const m = i % n;
        const root = MTH(leaves);
        const proof = await inclusionProof(m, n, source(leaves));
        expect(proof.map(hex)).toEqual(PATH(m, leaves).map(hex));
        expect(verifyInclusion(m, n, leaves[m] as Hash, proof, root)).toBe(true);
        if (proof.length > 0) {
          const bad = proof.map((h) => new Uint8Array(h));
          const target = bad[flip % bad.length] as Uint8Array;
          target[0] = (target[0] as number) ^ 1;
          expect(verifyInclusion(m, n, leaves[m] as Hash, bad, root)).toBe(false);
          expect(verifyInclusion(m, n, leaves[m] as Hash, proof.slice(1), root)).toBe(false);
        }
        expect(verifyInclusion(m, n, leaves[m] as Hash, [...proof, root], root)).toBe(false);
        if (n > 1) expect(verifyInclusion((m + 1) % n, n, leaves[m] as Hash, proof, root)).toBe(false);
        // The proof binds the leaf to this tree: against the root of a longer log it fails.
        const longer = MTH([...leaves, leafHash(Buffer.from("one more"))]);
        expect(verifyInclusion(m, n + 1, leaves[m] as Hash, proof, longer)).toBe(false);
      }),
      { numRuns: 200 },
    );
  });

  it("consistency proofs equal PROOF(m, D_n), verify, and fail when anything changes", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 300 }), fc.nat(), fc.nat(), async (n, i, flip) => {
        const leaves = leavesOf(n);
        const m = 1 + (i % n);
        const [first, second] = [MTH(leaves.slice(0, m)), MTH(leaves)];
        const proof = await consistencyProof(m, n, source(leaves));
        expect(proof.map(hex)).toEqual(SUBPROOF(m, leaves, true).map(hex));
        expect(verifyConsistency(m, n, first, second, proof)).toBe(true);
        if (proof.length > 0) {
          const bad = proof.map((h) => new Uint8Array(h));
          const target = bad[flip % bad.length] as Uint8Array;
          target[31] = (target[31] as number) ^ 0x80;
          expect(verifyConsistency(m, n, first, second, bad)).toBe(false);
          expect(verifyConsistency(m, n, first, second, proof.slice(0, -1))).toBe(false);
        }
        expect(verifyConsistency(m, n, second, second, proof)).toBe(m === n);
        if (m < n) expect(verifyConsistency(m + 1, n, first, second, proof)).toBe(false);
      }),
      { numRuns: 200 },
    );
  });

  it("rejects arguments that name no proof", async () => {
    const s = source(leavesOf(4));
    await expect(inclusionProof(4, 4, s)).rejects.toThrow(RangeError);
    await expect(consistencyProof(0, 4, s)).rejects.toThrow(/at least 1/);
    await expect(consistencyProof(5, 4, s)).rejects.toThrow(/exceeds/);
    expect(verifyInclusion(0, 0, EMPTY_ROOT, [], EMPTY_ROOT)).toBe(false);
    expect(verifyInclusion(0, 1, new Uint8Array(3), [], EMPTY_ROOT)).toBe(false);
  });

  it("needs only O(log n) stored subtrees for a proof in a million-entry log", async () => {
    const n = 1_000_000;
    const memo = new Map<string, Hash>();
    const hashAt = (level: number, index: number): Hash => {
      if (level === 0) return leafHash(Buffer.from(`entry ${index}`));
      const key = `${level}/${index}`;
      let h = memo.get(key);
      if (!h) {
        h = sha(Uint8Array.of(1), hashAt(level - 1, 2 * index), hashAt(level - 1, 2 * index + 1));
        memo.set(key, h);
      }
      return h;
    };
    let lookups = 0;
    const counting: SubtreeSource = {
      subtree: (level, index) => {
        lookups++;
        return hashAt(level, index);
      },
    };
    for (const m of [0, 123_456, 999_999]) {
      lookups = 0;
      await inclusionProof(m, n, counting);
      expect(lookups).toBeLessThanOrEqual(2 * Math.ceil(Math.log2(n)));
    }
  });
});

describe("compact range", () => {
  it("appends leaf by leaf to the same root, reports the aligned subtrees, and resumes from its frontier", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 200 }), fc.integer({ min: 0, max: 200 }), (n, cut) => {
        const leaves = leavesOf(n);
        const range = CompactRange.fromFrontier(0, []);
        const stored = new Map<string, string>();
        for (const leaf of leaves) {
          for (const node of range.append(leaf)) {
            const width = 2 ** node.level;
            expect(hex(node.hash)).toBe(hex(MTH(leaves.slice(node.index * width, (node.index + 1) * width))));
            stored.set(`${node.level}/${node.index}`, hex(node.hash));
          }
          expect(hex(range.root())).toBe(hex(MTH(leaves.slice(0, range.size))));
        }
        const at = Math.min(cut, n);
        const frontier = CompactRange.frontierPositions(at).map(
          ({ level, index }) => Buffer.from(stored.get(`${level}/${index}`) as string, "hex") as Hash,
        );
        const resumed = CompactRange.fromFrontier(at, frontier);
        for (const leaf of leaves.slice(at)) resumed.append(leaf);
        expect(hex(resumed.root())).toBe(hex(range.root()));
      }),
      { numRuns: 100 },
    );
    expect(() => CompactRange.fromFrontier(3, [])).toThrow(/frontier nodes/);
  });
});
