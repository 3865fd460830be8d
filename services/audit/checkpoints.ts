// Signed checkpoints: the tree size and root of a tenant's log in the C2SP tlog-checkpoint format,
// signed as a C2SP signed note with the tenant's audit key (Ed25519, held by the Signer). A
// verifier holding a checkpoint can later prove that any entry is in the log and that the log only
// grew since (inclusion and consistency proofs), without trusting the database.
import type { JWK } from "jose";
import type { Clock } from "../shared/clock.ts";
import { failedPrecondition } from "../shared/errors.ts";
import type { Logger } from "../shared/logger.ts";
import type { SigningClient } from "../shared/signing.ts";
import type { AuditCheckpointsTable } from "../shared/store/schema.ts";
import type { Store } from "../shared/store/store.ts";
import { unhex } from "./log.ts";
import { checkpointBody, ed25519KeyId, signedNote } from "./note.ts";

export interface CheckpointRecord {
  tenant: string;
  treeSize: number;
  rootHash: Uint8Array;
  note: string;
  kid: string;
  createdAt: number;
}

/** The origin line of a tenant's checkpoints: the issuer without its scheme, plus "/audit". */
export function logOrigin(publicBaseUrl: string, tenant: string): string {
  const base = new URL(publicBaseUrl);
  return `${base.host}${base.pathname.replace(/\/$/, "")}/t/${tenant}/audit`;
}

export class Checkpointer {
  readonly #store: Store;
  readonly #signing: SigningClient;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #publicBaseUrl: string;
  readonly #running = new Map<string, Promise<CheckpointRecord | undefined>>();

  constructor(options: { store: Store; signing: SigningClient; clock: Clock; logger: Logger; publicBaseUrl: string }) {
    this.#store = options.store;
    this.#signing = options.signing;
    this.#clock = options.clock;
    this.#logger = options.logger;
    this.#publicBaseUrl = options.publicBaseUrl;
  }

  origin(tenant: string): string {
    return logOrigin(this.#publicBaseUrl, tenant);
  }

  /** The newest checkpoint, or undefined when none was signed yet. */
  async latest(tenant: string): Promise<CheckpointRecord | undefined> {
    const row = await this.#store
      .forTenant(tenant)
      .db.selectFrom("audit_checkpoints")
      .selectAll()
      .where("tenant_id", "=", tenant)
      .orderBy("tree_size", "desc")
      .limit(1)
      .executeTakeFirst();
    return row && toRecord(row);
  }

  async all(tenant: string): Promise<CheckpointRecord[]> {
    const rows = await this.#store
      .forTenant(tenant)
      .db.selectFrom("audit_checkpoints")
      .selectAll()
      .where("tenant_id", "=", tenant)
      .orderBy("tree_size")
      .execute();
    return rows.map(toRecord);
  }

  /** Signs the log's current head unless a checkpoint of that size exists; one at a time per tenant. */
  sign(tenant: string): Promise<CheckpointRecord | undefined> {
    const running = this.#running.get(tenant);
    if (running) return running;
    const run = this.#sign(tenant).finally(() => this.#running.delete(tenant));
    this.#running.set(tenant, run);
    return run;
  }

  async #sign(tenant: string): Promise<CheckpointRecord | undefined> {
    const scoped = this.#store.forTenant(tenant);
    const head = await scoped.db
      .selectFrom("audit_heads")
      .select(["size", "root_hash"])
      .where("tenant_id", "=", tenant)
      .executeTakeFirst();
    const size = Number(head?.size ?? 0);
    const latest = await this.latest(tenant);
    if (latest && latest.treeSize >= size) return latest;
    if (!head || size === 0) return undefined;
    const origin = this.origin(tenant);
    const body = checkpointBody(origin, size, unhex(head.root_hash));
    const { signature, kid } = await this.#signing.sign(tenant, "audit_checkpoint", Buffer.from(body, "utf8"));
    const publicKey = await this.#publicKey(tenant, kid);
    const note = signedNote(body, [{ name: origin, keyId: ed25519KeyId(origin, publicKey), signature }]);
    const record: CheckpointRecord = {
      tenant,
      treeSize: size,
      rootHash: unhex(head.root_hash),
      note,
      kid,
      createdAt: this.#clock.now(),
    };
    await scoped.db
      .insertInto("audit_checkpoints")
      .values({
        tenant_id: tenant,
        tree_size: size,
        root_hash: head.root_hash,
        note,
        kid,
        created_at: record.createdAt,
      })
      .onConflict((c) => c.columns(["tenant_id", "tree_size"]).doNothing())
      .execute();
    this.#logger.debug({ tenant, size }, "audit checkpoint signed");
    return record;
  }

  async #publicKey(tenant: string, kid: string): Promise<Uint8Array> {
    const { jwks } = await this.#signing.jwks(tenant, "audit_checkpoint");
    const jwk = jwks.keys.find((key: JWK) => key.kid === kid);
    if (!jwk?.x || jwk.crv !== "Ed25519") {
      throw failedPrecondition(
        `the audit key ${kid} of tenant "${tenant}" is not a published Ed25519 key`,
        "AUDIT_KEY_MISSING",
      );
    }
    return new Uint8Array(Buffer.from(jwk.x, "base64url"));
  }
}

function toRecord(row: AuditCheckpointsTable): CheckpointRecord {
  return {
    tenant: row.tenant_id,
    treeSize: Number(row.tree_size),
    rootHash: unhex(row.root_hash),
    note: row.note,
    kid: row.kid,
    createdAt: Number(row.created_at),
  };
}
