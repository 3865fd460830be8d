// `mandate audit`: export and verify a tenant's tamper-evident audit log, and report its state. The
// audit modules are loaded only when one of these commands runs.
import { createReadStream, existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { type Command, CommanderError, Option } from "commander";
import type { AuditPublicKey, VerifyReport } from "../audit/verify.ts";
import {
  addressOption,
  type CommonOptions,
  collect,
  command,
  configFrom,
  configOption,
  databaseOption,
  grpcClient,
  print,
  type TenantOptions,
  table,
  tenantOption,
  tokenOption,
  withStore,
} from "./common.ts";

interface AuditVerifyOptions extends CommonOptions {
  tenant?: string;
  key: string[];
  checkpoint?: string;
  previous?: string;
  entry?: string;
}

/** The verifier's report, and how many newer entries the checkpoint does not cover (null: unknown). */
type AuditVerifyReport = VerifyReport & { beyondCheckpoint: number | null };

/** What a verification takes besides the entries and the checkpoints, from the options. */
interface VerifySettings {
  /** Keys pinned with --key; none: the keys exported (or stored) with the log. */
  pinned: AuditPublicKey[];
  /** --previous: a checkpoint kept earlier, of which the log must be an extension. */
  previousCheckpoint: string | undefined;
  /** --entry: the entry whose inclusion is also proved. */
  entry: number | undefined;
  /** The entry lines, with progress on stderr every 100 000 entries (unless --json). */
  progress(lines: AsyncIterable<string>): AsyncIterable<string>;
}

export function auditCommand(): Command {
  const audit = command("audit", "export and verify a tenant's tamper-evident audit log");
  audit.addCommand(exportCommand());
  audit.addCommand(verifyCommand());
  audit.addCommand(statusCommand());
  return audit;
}

function exportCommand(): Command {
  return command("export", "write entries, checkpoints and public keys to a directory (reads the store)")
    .addOption(tenantOption)
    .requiredOption("-o, --out <dir>", "directory to write")
    .addOption(
      new Option(
        "--checkpoint <when>",
        "'now': first ask the running server (--address) to sign a checkpoint of every entry; 'latest': the newest signed one",
      )
        .choices(["now", "latest"])
        .default("latest"),
    )
    .addOption(addressOption)
    .addOption(tokenOption)
    .addOption(configOption)
    .addOption(databaseOption)
    .option("--json", "print the summary as JSON")
    .action(async (options: TenantOptions & { out: string; checkpoint: "now" | "latest" }) => {
      const { exportLog } = await import("../audit/export.ts");
      const { Audit } = await import("../../gen/mandate/v1/audit_pb.js");
      const config = configFrom(options);
      if (options.checkpoint === "now") {
        // The checkpoint is signed by the server (the Signer holds the key), then read from the store.
        await grpcClient(Audit, options).getCheckpoint({ tenant: options.tenant, fresh: true });
      }
      const summary = await withStore(config, (store) =>
        exportLog(store, options.tenant, options.out, (done, total) => {
          if (!options.json) process.stderr.write(`  exported ${done} of ${total} entries\n`);
        }),
      );
      print(options, summary, () =>
        [
          `exported ${summary.entries} entries of "${summary.tenant}" (${summary.origin}, checkpoint size ${summary.checkpointSize}, ${summary.keys} key(s)) to ${summary.dir}`,
          ...(summary.uncovered > 0
            ? [
                `not exported: ${summary.uncovered} newer entries no signed checkpoint covers yet; ` +
                  "run with --checkpoint now against the running server to include them",
              ]
            : []),
          `verify offline with: mandate audit verify ${summary.dir}`,
        ].join("\n"),
      );
    });
}

function verifyCommand(): Command {
  return command("verify", "verify an exported log (or, with --tenant, the live store) against a signed checkpoint")
    .argument("[dir]", "directory written by `mandate audit export`")
    .option("-t, --tenant <id>", "verify the live store's log of this tenant instead of a directory")
    .option("--key <vkey>", "pin the verifier key (name+keyid+base64), repeatable; default: keys.json", collect, [])
    .option("--checkpoint <file>", "the signed checkpoint to verify against (default: the exported one)")
    .option("--previous <file>", "a checkpoint you kept earlier: the log must be an extension of it")
    .option("--entry <seq>", "also prove that this entry is included")
    .addOption(configOption)
    .addOption(databaseOption)
    .option("--json", "print the report as JSON")
    .action(async (dir: string | undefined, options: AuditVerifyOptions) => {
      if ((dir === undefined) === (options.tenant === undefined)) {
        throw new CommanderError(
          2,
          "mandate.usage",
          "give an exported directory or --tenant (the live store), not both",
        );
      }
      const settings = await verifySettings(options);
      const report =
        dir === undefined
          ? await verifyStored(options.tenant as string, options, settings)
          : await verifyExported(dir, options, settings);
      print(options, report, () => verifyOutcome(report));
      if (!report.ok) process.exitCode = 1;
    });
}

function statusCommand(): Command {
  return command(
    "status",
    "per tenant: entries, the newest signed checkpoint, and what waits in the outbox (reads the store)",
  )
    .option("-t, --tenant <id>", "only this tenant")
    .addOption(configOption)
    .addOption(databaseOption)
    .option("--json", "print as JSON")
    .action(async (options: CommonOptions & { tenant?: string }) => {
      const { auditStatus } = await import("../audit/status.ts");
      await withStore(configFrom(options), async (store) => {
        const statuses = await auditStatus(store, Date.now(), options.tenant);
        if (options.tenant && statuses.length === 0) {
          throw new CommanderError(1, "mandate.usage", `no tenant "${options.tenant}" in ${store.displayUrl}`);
        }
        print(options, statuses, () =>
          table(
            ["TENANT", "ENTRIES", "CHECKPOINT", "SIGNED", "UNSIGNED", "OUTBOX", "OLDEST"],
            statuses.map((s) => [
              s.tenant,
              String(s.entries),
              s.checkpoint ? String(s.checkpoint.treeSize) : "-",
              s.checkpoint?.signedAt ?? "-",
              String(s.unsigned),
              String(s.outbox.depth),
              s.outbox.depth ? `${Math.round(s.outbox.oldestAgeMs / 1000)} s` : "-",
            ]),
          ),
        );
      });
    });
}

async function verifySettings(options: AuditVerifyOptions): Promise<VerifySettings> {
  const { parseVerifierKey } = await import("../audit/note.ts");
  const pinned = options.key.map((vkey) => {
    const parsed = parseVerifierKey(vkey);
    return { name: parsed.name, publicKey: parsed.publicKey };
  });
  const entry = options.entry === undefined ? undefined : Number(options.entry);
  if (entry !== undefined && !Number.isSafeInteger(entry)) {
    throw new CommanderError(2, "mandate.usage", "--entry must be an entry's sequence number");
  }
  return {
    pinned,
    entry,
    previousCheckpoint: options.previous ? read(options.previous) : undefined,
    async *progress(lines) {
      let n = 0;
      for await (const line of lines) {
        yield line;
        if (++n % 100_000 === 0 && !options.json) process.stderr.write(`  checked ${n} entries\n`);
      }
    },
  };
}

/** Verifies a directory written by `mandate audit export`, against its checkpoint unless --checkpoint. */
async function verifyExported(
  dir: string,
  options: AuditVerifyOptions,
  settings: VerifySettings,
): Promise<AuditVerifyReport> {
  if (!existsSync(join(dir, "entries.ndjson"))) {
    throw new CommanderError(
      2,
      "mandate.usage",
      `${dir} holds no entries.ndjson: write one with \`mandate audit export\``,
    );
  }
  const { verifyLog } = await import("../audit/verify.ts");
  const { toPublicKeys } = await import("../audit/export.ts");
  const keys = settings.pinned.length > 0 ? settings.pinned : toPublicKeys(JSON.parse(read(join(dir, "keys.json"))));
  const lines = createInterface({
    input: createReadStream(join(dir, "entries.ndjson")),
    crlfDelay: Number.POSITIVE_INFINITY,
  });
  const report = await verifyLog({
    entries: settings.progress(lines),
    checkpoint: read(options.checkpoint ?? join(dir, "checkpoint")),
    checkpoints: exportedCheckpoints(dir),
    keys,
    previousCheckpoint: settings.previousCheckpoint,
    entry: settings.entry,
  });
  // What the export left out: entries the store held beyond its checkpoint when it was made.
  const exported = existsSync(join(dir, "export.json"))
    ? (JSON.parse(read(join(dir, "export.json"))) as { uncovered?: number })
    : {};
  return { ...report, beyondCheckpoint: exported.uncovered ?? null };
}

function exportedCheckpoints(dir: string): string[] {
  if (!existsSync(join(dir, "checkpoints.ndjson"))) return [];
  return read(join(dir, "checkpoints.ndjson"))
    .split("\n")
    .filter(Boolean)
    .map((line) => (JSON.parse(line) as { note: string }).note);
}

/** Verifies the tenant's log in the store, against its newest signed checkpoint unless --checkpoint. */
async function verifyStored(
  tenant: string,
  options: AuditVerifyOptions,
  settings: VerifySettings,
): Promise<AuditVerifyReport> {
  const { verifyLog } = await import("../audit/verify.ts");
  const { auditKeys, entryLines, originOf, toPublicKeys } = await import("../audit/export.ts");
  return withStore(configFrom(options), async (store) => {
    const scoped = store.forTenant(tenant);
    const rows = await scoped.db
      .selectFrom("audit_checkpoints")
      .select(["tree_size", "note"])
      .where("tenant_id", "=", tenant)
      .orderBy("tree_size")
      .execute();
    const newest = rows.at(-1);
    if (!newest) throw new Error(`the audit log of "${tenant}" has no signed checkpoint yet`);
    const keys =
      settings.pinned.length > 0
        ? settings.pinned
        : toPublicKeys(await auditKeys(store, tenant, originOf(newest.note)));
    const report = await verifyLog({
      entries: settings.progress(entryLines(store, tenant, Number(newest.tree_size))),
      checkpoint: options.checkpoint ? read(options.checkpoint) : newest.note,
      checkpoints: rows.map((r) => r.note),
      keys,
      previousCheckpoint: settings.previousCheckpoint,
      entry: settings.entry,
    });
    const head = await scoped.db
      .selectFrom("audit_heads")
      .select("size")
      .where("tenant_id", "=", tenant)
      .executeTakeFirst();
    return { ...report, beyondCheckpoint: Math.max(0, Number(head?.size ?? 0) - Number(newest.tree_size)) };
  });
}

function verifyOutcome(report: AuditVerifyReport): string {
  if (!report.ok) {
    return `FAILED${report.failure?.seq !== undefined ? ` at entry ${report.failure.seq}` : ""}: ${report.failure?.reason}`;
  }
  return (
    `OK: ${report.entriesChecked} entries of ${report.origin} match the checkpoint of size ${report.treeSize} (root ${report.rootHash})` +
    (report.inclusion ? `; entry ${report.inclusion.seq} is included` : "") +
    (report.consistency ? `; consistent with your checkpoint of size ${report.consistency.fromSize}` : "") +
    (report.beyondCheckpoint
      ? `\n${report.beyondCheckpoint} newer entries are not covered by this checkpoint (not verified)`
      : "")
  );
}

function read(file: string): string {
  return readFileSync(file, "utf8");
}
