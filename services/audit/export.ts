// Export of a tenant's log for SIEMs and offline verification, straight from the store:
//   entries.ndjson     one entry per line: { seq, leaf_hash, entry } (entry = the hashed canonical body)
//   checkpoint         the newest signed checkpoint (C2SP signed note), covering every exported entry
//   checkpoints.ndjson every signed checkpoint: { tree_size, note }
//   keys.json          the tenant's audit public keys (current and past): { kid, name, vkey, jwk }
//   export.json        what this export covers: the origin, the checkpoint's size, and how many
//                      entries the store held beyond it (left for the next export: everything
//                      exported is covered by a signature; `--checkpoint now` asks the server for one)
// Names (the log's origin, the verifier keys' names) come from what was signed, not from the
// exporting process's configuration.
import { createWriteStream, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { finished } from "node:stream/promises";
import type { JWK } from "jose";
import type { Store } from "../shared/store/store.ts";
import { ed25519VerifierKey, parseCheckpointBody, parseSignedNote } from "./note.ts";
import type { AuditPublicKey } from "./verify.ts";

const PAGE = 5000;

export interface ExportedKey {
  kid: string;
  name: string;
  vkey: string;
  jwk: JWK;
}

export interface ExportSummary {
  tenant: string;
  dir: string;
  origin: string;
  entries: number;
  checkpointSize: number;
  /** Entries in the store that no signed checkpoint covers yet (not exported). */
  uncovered: number;
  keys: number;
}

/** The origin a checkpoint note names (its first line): the name its signatures and keys carry. */
export function originOf(note: string): string {
  return parseCheckpointBody(parseSignedNote(note).body).origin;
}

/** The tenant's audit public keys under the log's origin, past ones included (their private halves are long destroyed). */
export async function auditKeys(store: Store, tenant: string, origin: string): Promise<ExportedKey[]> {
  const name = origin;
  const rows = await store
    .forTenant(tenant)
    .db.selectFrom("signing_keys")
    .select(["kid", "public_jwk"])
    .where("tenant_id", "=", tenant)
    .where("purpose", "=", "audit_checkpoint")
    .orderBy("created_at")
    .execute();
  return rows.map((row) => {
    const jwk = JSON.parse(row.public_jwk) as JWK;
    const publicKey = Buffer.from(jwk.x ?? "", "base64url");
    return { kid: row.kid, name, vkey: ed25519VerifierKey(name, publicKey), jwk: { ...jwk, kid: row.kid } };
  });
}

export function toPublicKeys(keys: ExportedKey[]): AuditPublicKey[] {
  return keys.map((key) => ({ name: key.name, publicKey: Buffer.from(key.jwk.x ?? "", "base64url") }));
}

/** Entries 0..size-1 of a tenant's log as entries.ndjson lines, read page by page. */
export async function* entryLines(store: Store, tenant: string, size: number): AsyncGenerator<string> {
  const db = store.forTenant(tenant).db;
  for (let from = 0; from < size; from += PAGE) {
    const rows = await db
      .selectFrom("audit_log")
      .select(["seq", "leaf_hash", "body"])
      .where("tenant_id", "=", tenant)
      .where("seq", ">=", from)
      .where("seq", "<", Math.min(size, from + PAGE))
      .orderBy("seq")
      .execute();
    for (const row of rows) {
      // The body is canonical JSON already; it is embedded as parsed so the line stays one JSON value.
      yield `{"seq":${Number(row.seq)},"leaf_hash":"${row.leaf_hash}","entry":${row.body}}`;
    }
    if (rows.length === 0) break;
  }
}

export async function exportLog(
  store: Store,
  tenant: string,
  dir: string,
  onProgress: (written: number, total: number) => void = () => {},
): Promise<ExportSummary> {
  const db = store.forTenant(tenant).db;
  const checkpoints = await db
    .selectFrom("audit_checkpoints")
    .select(["tree_size", "note"])
    .where("tenant_id", "=", tenant)
    .orderBy("tree_size")
    .execute();
  const newest = checkpoints.at(-1);
  if (!newest) {
    throw new Error(
      `the audit log of "${tenant}" has no signed checkpoint yet: run with --checkpoint now against the running server, or wait for one (audit.checkpointInterval)`,
    );
  }
  const size = Number(newest.tree_size);
  mkdirSync(dir, { recursive: true });
  const out = createWriteStream(join(dir, "entries.ndjson"));
  let written = 0;
  for await (const line of entryLines(store, tenant, size)) {
    if (!out.write(`${line}\n`)) await new Promise<void>((resolve) => out.once("drain", () => resolve()));
    if (++written % 100_000 === 0) onProgress(written, size);
  }
  out.end();
  await finished(out);
  onProgress(written, size);
  writeFileSync(join(dir, "checkpoint"), newest.note);
  writeFileSync(
    join(dir, "checkpoints.ndjson"),
    checkpoints.map((c) => `${JSON.stringify({ tree_size: Number(c.tree_size), note: c.note })}\n`).join(""),
  );
  const origin = originOf(newest.note);
  const keys = await auditKeys(store, tenant, origin);
  writeFileSync(join(dir, "keys.json"), `${JSON.stringify(keys, null, 2)}\n`);
  const head = await db.selectFrom("audit_heads").select("size").where("tenant_id", "=", tenant).executeTakeFirst();
  const summary: ExportSummary = {
    tenant,
    dir,
    origin,
    entries: written,
    checkpointSize: size,
    uncovered: Math.max(0, Number(head?.size ?? size) - size),
    keys: keys.length,
  };
  writeFileSync(
    join(dir, "export.json"),
    `${JSON.stringify({ ...summary, exportedAt: new Date().toISOString() }, null, 2)}\n`,
  );
  return summary;
}
