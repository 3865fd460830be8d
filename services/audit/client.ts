// The Audit service's client: how another service reads evidence out of a tenant's log through
// Audit's RPCs (in this process or over gRPC: the same client either way), and what an offline
// verifier of that evidence needs — RFC 9162 leaf hashes and inclusion proofs, C2SP signed
// checkpoints, the tenant's audit public keys as `mandate audit export` writes them (keys.json).
// Those checks live with the log that makes what they check; they are re-exported here so a service
// never imports the log's internals.
import { type Client, Code, ConnectError } from "@connectrpc/connect";
import type { Audit, Checkpoint } from "../../gen/mandate/v1/audit_pb.js";

export { auditKeys, type ExportedKey, toPublicKeys } from "./export.ts";
export { type Hash, leafHash, verifyInclusion } from "./merkle.ts";
export { parseCheckpointBody, verifySignedNote } from "./note.ts";
export type { AuditPublicKey } from "./verify.ts";

/** An entry of the log with what proves it is there: a signed checkpoint and the inclusion proof against it. */
export interface ProvedEntry {
  seq: number;
  /** RFC 9162 leaf hash of the entry, hex. */
  leafHash: string;
  /** The entry exactly as hashed (its canonical JSON, parsed). */
  entry: Record<string, unknown>;
  /** The checkpoint's log origin (the name its keys carry), tree size and signed note. */
  checkpoint: { origin: string; treeSize: number; note: string };
  /** The audit path, leaf to root, hex (RFC 9162 §2.1.3.1). */
  proof: string[];
}

/** What to look for: the first entry of a mandate of a type (e.g. its grant, mandate.granted.v1). */
export interface EntryFilter {
  mandateId: string;
  type: string;
}

export class AuditClient {
  readonly #client: () => Client<typeof Audit>;
  /** `client` is resolved per call so the transport is made only when first needed. */
  constructor(client: () => Client<typeof Audit>) {
    this.#client = client;
  }

  /**
   * The log's first entry matching `filter`, proved against the latest signed checkpoint — or a
   * fresh one when the latest does not cover the entry yet. Undefined while no such entry is in the
   * log (it waits in the outbox) or no checkpoint can cover it.
   */
  async provedEntry(tenant: string, filter: EntryFilter): Promise<ProvedEntry | undefined> {
    const client = this.#client();
    const { entries } = await client.query({
      tenant,
      mandateId: filter.mandateId,
      types: [filter.type],
      page: { pageSize: 1 },
      includeCanonicalJson: true,
    });
    const found = entries[0];
    if (!found) return undefined;
    const seq = Number(found.sequence);
    let checkpoint = await this.#checkpoint(tenant, false);
    if (!checkpoint || Number(checkpoint.treeSize) <= seq) checkpoint = await this.#checkpoint(tenant, true);
    if (!checkpoint || Number(checkpoint.treeSize) <= seq) return undefined;
    const { hashes } = await client.getInclusionProof({
      tenant,
      sequence: found.sequence,
      treeSize: checkpoint.treeSize,
    });
    return {
      seq,
      leafHash: hex(found.leafHash),
      entry: JSON.parse(found.canonicalJson) as Record<string, unknown>,
      checkpoint: { origin: checkpoint.origin, treeSize: Number(checkpoint.treeSize), note: checkpoint.signedNote },
      proof: hashes.map(hex),
    };
  }

  /** The latest signed checkpoint, or (`fresh`) one of the current tree signed now; undefined when there is none. */
  async #checkpoint(tenant: string, fresh: boolean): Promise<Checkpoint | undefined> {
    try {
      return (await this.#client().getCheckpoint({ tenant, fresh })).checkpoint;
    } catch (error) {
      if (error instanceof ConnectError && error.code === Code.NotFound) return undefined;
      throw error;
    }
  }
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("hex");
}
