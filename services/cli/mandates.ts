// `mandate mandates`: a tenant's mandates over gRPC — administrative grants (always naming the
// principal), reads, lists and revocations (which cascade to sub-mandates).

import { readFileSync, writeFileSync } from "node:fs";
import { toJson } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { type Command, InvalidArgumentError } from "commander";
import type { JWK } from "jose";
import { PartyKind } from "../../gen/mandate/v1/common_pb.js";
import {
  Issue,
  type Mandate,
  MandateSchema,
  MandateState,
  RevokeMandateResponseSchema,
} from "../../gen/mandate/v1/issue_pb.js";
import {
  addressOption,
  collect,
  command,
  grpcClient,
  print,
  printTable,
  type TenantOptions,
  tenantOption,
  tenantRpcCommand,
  tokenOption,
} from "./common.ts";

interface MandateCreateOptions extends TenantOptions {
  principal: string;
  agent: string;
  scope: string[];
  resource: string[];
  detail: Array<Record<string, unknown>>;
  notBefore?: number;
  expires?: number;
  maxTokenTtl?: number;
  uses?: Limit;
  budget: Limit[];
  depth?: number;
  mayAct: string[];
  parent?: string;
  amends?: string;
  revokeOnAccountEnd?: boolean;
}

interface ReceiptOptions extends TenantOptions {
  out?: string;
}

interface VerifyReceiptOptions {
  json?: boolean;
  jwks?: string;
  key: string[];
}

/** How long `receipt` waits for a grant to enter the audit log. */
const RECEIPT_WAIT_MS = 15_000;

interface MandateListOptions extends TenantOptions {
  principal?: string;
  agent?: string;
  state: string[];
}

interface Limit {
  meter: string;
  maximum: number;
  periodMs: number;
}

const STATE_NAMES = ["requested", "active", "denied", "exhausted", "expired", "revoked"] as const;
const DURATION_UNITS_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export function mandatesCommand(): Command {
  const mandates = command("mandates", "manage a tenant's mandates: grants of authority to agents (over gRPC)");
  mandates.addCommand(createCommand());
  mandates.addCommand(
    tenantRpcCommand("get", "show a mandate and its state")
      .argument("<mandate-id>", "the mandate id")
      .action(async (mandateId: string, options: TenantOptions) => {
        const { mandate } = await grpcClient(Issue, options).getMandate({ tenant: options.tenant, mandateId });
        show(options, mandate);
      }),
  );
  mandates.addCommand(
    tenantRpcCommand("list", "list a tenant's mandates")
      .option("--principal <sub>", "only mandates granted by this principal")
      .option("--agent <client-id>", "only mandates held by this agent")
      .option(
        "--state <state>",
        `only mandates in this state (${STATE_NAMES.join(", ")}); repeatable`,
        collectState,
        [],
      )
      .action(async (options: MandateListOptions) => {
        const all = await allMandates(options);
        printTable(options, all, {
          json: (m) => toJson(MandateSchema, m),
          empty: "(no mandates)",
          header: ["ID", "STATE", "PRINCIPAL", "AGENT", "EXPIRES", "PARENT"],
          row: (m) => [
            m.id,
            stateName(m.state),
            m.principal?.id ?? "",
            m.agent?.id ?? "",
            isoOf(m.expireTime),
            m.parentMandateId,
          ],
        });
      }),
  );
  mandates.addCommand(
    tenantRpcCommand("revoke", "revoke a mandate and every sub-mandate derived from it")
      .argument("<mandate-id>", "the mandate id")
      .option("--reason <text>", "why, recorded in the audit log", "")
      .action(async (mandateId: string, options: TenantOptions & { reason: string }) => {
        const response = await grpcClient(Issue, options).revokeMandate({
          tenant: options.tenant,
          mandateId,
          reason: options.reason,
        });
        const [, ...cascade] = response.revokedMandateIds;
        print(options, toJson(RevokeMandateResponseSchema, response), () =>
          response.revokedMandateIds.length === 0
            ? `mandate ${mandateId} was revoked already`
            : `revoked mandate ${mandateId}${cascade.length > 0 ? ` and its sub-mandates ${cascade.join(", ")}` : ""}`,
        );
      }),
  );
  mandates.addCommand(
    tenantRpcCommand("receipt", "download a mandate's signed consent receipt, with its audit proof and keys")
      .argument("<mandate-id>", "the mandate id")
      .option("-o, --out <file>", "write the receipt bundle to this file (default: standard output)")
      .action(async (mandateId: string, options: ReceiptOptions) => {
        const bundle = await downloadReceipt(options, mandateId);
        if (options.out) {
          writeFileSync(options.out, bundle);
          print(
            options,
            { mandate_id: mandateId, out: options.out },
            () => `wrote the receipt of ${mandateId} to ${options.out}`,
          );
        } else {
          process.stdout.write(`${bundle}\n`);
        }
      }),
  );
  mandates.addCommand(
    command("verify-receipt", "verify a receipt bundle offline: signature, mandate, audit entry, proof, checkpoint")
      .argument("<file>", "a bundle written by `mandate mandates receipt`")
      .option("--jwks <file>", "trust this JWKS (the tenant's token keys) instead of the bundled keys")
      .option(
        "--key <vkey>",
        "pin the audit verifier key (name+keyid+base64), repeatable; default: bundled",
        collect,
        [],
      )
      .option("--json", "print the report as JSON")
      .action(async (file: string, options: VerifyReceiptOptions) => {
        const { verifyReceipt } = await import("../issue/mandates/receipt-verify.ts");
        const { parseVerifierKey } = await import("../audit/note.ts");
        let bundle: unknown;
        try {
          bundle = JSON.parse(readFileSync(file, "utf8"));
        } catch (error) {
          throw new InvalidArgumentError(`${file} is not a JSON receipt bundle: ${(error as Error).message}`);
        }
        const report = await verifyReceipt(bundle, {
          jwks: options.jwks ? (JSON.parse(readFileSync(options.jwks, "utf8")) as { keys: JWK[] }) : undefined,
          auditKeys:
            options.key.length > 0
              ? options.key.map((vkey) => {
                  const parsed = parseVerifierKey(vkey);
                  return { name: parsed.name, publicKey: parsed.publicKey };
                })
              : undefined,
        });
        print(options, report, () =>
          report.ok
            ? `OK: the receipt of mandate ${report.mandateId} (tenant "${report.tenant}") is signed by key ${report.kid}, and its grant is entry ${report.seq} of the audit log checkpointed at size ${report.treeSize}`
            : `FAILED (${report.failure?.part}): ${report.failure?.reason}`,
        );
        if (!report.ok) process.exitCode = 1;
      }),
  );
  return mandates;
}

/** The bundle (JSON text), waiting while the grant is not in the audit log yet (UNAVAILABLE). */
async function downloadReceipt(options: TenantOptions, mandateId: string): Promise<string> {
  const client = grpcClient(Issue, options);
  const until = Date.now() + RECEIPT_WAIT_MS;
  for (;;) {
    try {
      const { bundle } = await client.getMandateReceipt({ tenant: options.tenant, mandateId });
      return Buffer.from(bundle).toString("utf8");
    } catch (error) {
      if (!(error instanceof ConnectError && error.code === Code.Unavailable) || Date.now() > until) throw error;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}

function createCommand(): Command {
  return command("create", "grant a mandate to an agent on behalf of a principal (an administrative grant)")
    .addOption(tenantOption)
    .requiredOption("--principal <sub>", "the human granting the mandate (their subject id)")
    .requiredOption("--agent <client-id>", "the agent receiving it: a client of the tenant")
    .option("--scope <scopes>", "scopes the agent may request, space-separated; repeatable", collectWords, [])
    .option("--resource <uri>", "resource (RFC 8707 audience) it may target; repeatable", collect, [])
    .option("--detail <json>", "an RFC 9396 authorization details object; repeatable", collectDetail, [])
    .option("--not-before <when>", "valid from: an RFC 3339 time or a duration from now (default now)", parseWhen)
    .option("--expires <when>", "valid until: a duration from now (30d) or an RFC 3339 time", parseWhen)
    .option("--max-token-ttl <duration>", "longest access-token lifetime, e.g. 5m", parseDurationMs)
    .option("--uses <n[/period]>", "at most N calls, in all or per period (e.g. 100/1d)", parseUses)
    .option(
      "--budget <meter:max[/period]>",
      "a usage limit, e.g. amount:EUR:500/30d; repeatable",
      (value: string, previous: Limit[]) => [...previous, parseBudget(value)],
      [],
    )
    .option("--depth <n>", "how many further hops of sub-delegation it allows (default 0)", parseCount)
    .option("--may-act <client-id>", "an agent that may receive a sub-mandate; repeatable", collect, [])
    .option("--parent <mandate-id>", "grant a sub-mandate of this mandate (it may only narrow it)")
    .option("--amends <mandate-id>", "grant the next version of this mandate (it is revoked, superseded)")
    .option("--revoke-on-account-end", "revoke it when the principal's account is deleted or disabled")
    .addOption(addressOption)
    .addOption(tokenOption)
    .option("--json", "print as JSON")
    .action(async (options: MandateCreateOptions) => {
      const { mandate } = await grpcClient(Issue, options).createMandate({
        tenant: options.tenant,
        mandate: mandateFrom(options),
      });
      show(options, mandate);
    });
}

function mandateFrom(options: MandateCreateOptions) {
  const limits = [...(options.uses ? [options.uses] : []), ...options.budget];
  return {
    principal: { id: options.principal, kind: PartyKind.HUMAN },
    agent: { id: options.agent, kind: PartyKind.AGENT },
    scopes: options.scope,
    resources: options.resource,
    authorizationDetails: options.detail as Mandate["authorizationDetails"],
    ...(options.notBefore !== undefined ? { notBefore: timestampFromMs(options.notBefore) } : {}),
    ...(options.expires !== undefined ? { expireTime: timestampFromMs(options.expires) } : {}),
    ...(options.maxTokenTtl !== undefined ? { maxTokenLifetime: durationFromMs(options.maxTokenTtl) } : {}),
    usageLimits: limits.map((l) => ({
      meter: l.meter,
      maximum: l.maximum,
      ...(l.periodMs > 0 ? { period: durationFromMs(l.periodMs) } : {}),
    })),
    maxDelegationDepth: options.depth ?? 0,
    mayAct: options.mayAct,
    parentMandateId: options.parent ?? "",
    amendsMandateId: options.amends ?? "",
    revocationPolicy: { revokeOnAccountEnd: options.revokeOnAccountEnd === true },
  };
}

function show(options: TenantOptions, mandate: Mandate | undefined): void {
  print(options, mandate && toJson(MandateSchema, mandate), () => (mandate ? describe(mandate) : "(none)"));
}

function describe(m: Mandate): string {
  const limits = m.usageLimits.map((l) => `${l.maximum} ${l.meter}${l.period ? ` per ${l.period.seconds}s` : ""}`);
  return [
    `mandate        ${m.id}`,
    `state          ${stateName(m.state)}`,
    `principal      ${m.principal?.id ?? ""}`,
    `agent          ${m.agent?.id ?? ""}`,
    `scopes         ${m.scopes.join(" ") || "-"}`,
    `resources      ${m.resources.join(" ") || "-"}`,
    ...m.authorizationDetails.map((d) => `detail         ${JSON.stringify(d)}`),
    `valid          ${isoOf(m.notBefore)} .. ${isoOf(m.expireTime)}`,
    `token ttl      ${m.maxTokenLifetime ? `${m.maxTokenLifetime.seconds}s` : "-"}`,
    `limits         ${limits.join(", ") || "-"}`,
    `delegation     depth ${m.maxDelegationDepth}${m.mayAct.length ? `, may act: ${m.mayAct.join(" ")}` : ""}`,
    ...(m.parentMandateId ? [`parent         ${m.parentMandateId}`] : []),
    `version        ${m.version}${m.amendsMandateId ? ` (amends ${m.amendsMandateId})` : ""}`,
    ...m.usage.map((u) => `usage          ${u.used} of ${u.maximum} ${u.meter} (${u.remaining} left)`),
    ...(m.revokeReason ? [`revoked        ${m.revokeReason}`] : []),
  ].join("\n");
}

function stateName(state: MandateState): string {
  return (MandateState[state] ?? "UNSPECIFIED").toLowerCase();
}

function isoOf(timestamp: { seconds: bigint; nanos: number } | undefined): string {
  return timestamp ? new Date(Number(timestamp.seconds) * 1000 + timestamp.nanos / 1e6).toISOString() : "-";
}

async function allMandates(options: MandateListOptions): Promise<Mandate[]> {
  const all: Mandate[] = [];
  const issue = grpcClient(Issue, options);
  const states = options.state.map((s) => MandateState[s.toUpperCase() as keyof typeof MandateState]);
  let pageToken = "";
  do {
    const page = await issue.listMandates({
      tenant: options.tenant,
      principalId: options.principal ?? "",
      agentId: options.agent ?? "",
      states,
      page: { pageToken },
    });
    all.push(...page.mandates);
    pageToken = page.nextPageToken;
  } while (pageToken);
  return all;
}

function collectState(value: string, previous: string[]): string[] {
  if (!(STATE_NAMES as readonly string[]).includes(value)) {
    throw new InvalidArgumentError(`expected one of ${STATE_NAMES.join(", ")}`);
  }
  return [...previous, value];
}

function collectWords(value: string, previous: string[]): string[] {
  return [...previous, ...value.split(/\s+/).filter(Boolean)];
}

function collectDetail(value: string, previous: Array<Record<string, unknown>>): Array<Record<string, unknown>> {
  let detail: unknown;
  try {
    detail = JSON.parse(value);
  } catch {
    throw new InvalidArgumentError('expected a JSON object, e.g. {"type":"payment_initiation","max_amount":100}');
  }
  if (typeof detail !== "object" || detail === null || Array.isArray(detail)) {
    throw new InvalidArgumentError("expected a JSON object with a type");
  }
  return [...previous, detail as Record<string, unknown>];
}

/** "90s", "5m", "24h", "30d", "500ms". */
export function parseDurationMs(value: string): number {
  const match = /^(\d+)(ms|s|m|h|d)$/.exec(value);
  if (!match || Number(match[1]) <= 0) throw new InvalidArgumentError('expected a duration such as "5m", "24h", "30d"');
  return Number(match[1]) * (DURATION_UNITS_MS[match[2] as string] ?? 1);
}

/** A duration from now, or an RFC 3339 time; milliseconds since the epoch. */
function parseWhen(value: string): number {
  if (/^\d+(ms|s|m|h|d)$/.test(value)) return Date.now() + parseDurationMs(value);
  const at = Date.parse(value);
  if (!/^\d{4}-\d{2}-\d{2}T/.test(value) || Number.isNaN(at)) {
    throw new InvalidArgumentError('expected a duration from now ("30d") or an RFC 3339 time');
  }
  return at;
}

function parseCount(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError("expected a whole number");
  return Number(value);
}

function parseUses(value: string): Limit {
  const [count, period] = value.split("/");
  if (!count || !/^[1-9]\d*$/.test(count)) throw new InvalidArgumentError("expected N or N/PERIOD, e.g. 10 or 100/1d");
  return { meter: "calls", maximum: Number(count), periodMs: period ? parseDurationMs(period) : 0 };
}

/** "METER:MAX[/PERIOD]"; the meter may itself contain ":" (amount:EUR:500). */
function parseBudget(value: string): Limit {
  const match = /^(.+):(\d+(?:\.\d+)?)(?:\/(\w+))?$/.exec(value);
  if (!match || !(Number(match[2]) > 0)) {
    throw new InvalidArgumentError("expected METER:MAX[/PERIOD], e.g. amount:EUR:500/30d");
  }
  return {
    meter: match[1] as string,
    maximum: Number(match[2]),
    periodMs: match[3] ? parseDurationMs(match[3]) : 0,
  };
}
