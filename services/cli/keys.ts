// `mandate keys`: inspect and rotate a tenant's signing keys over gRPC.
import { toJson } from "@bufbuild/protobuf";
import { type Command, Option } from "commander";
import { type KeyInfo, KeyInfoSchema, KeyPurpose, KeyState, Signer } from "../../gen/mandate/v1/signer_pb.js";
import {
  addressOption,
  command,
  grpcClient,
  print,
  type TenantOptions,
  table,
  tenantOption,
  tenantRpcCommand,
  tokenOption,
} from "./common.ts";

const PURPOSES = {
  token: KeyPurpose.TOKEN_SIGNING,
  audit: KeyPurpose.AUDIT_CHECKPOINT,
  "agent-ca-root": KeyPurpose.AGENT_CA_ROOT,
  "agent-ca": KeyPurpose.AGENT_CA,
} as const;

interface KeyOptions extends TenantOptions {
  purpose?: keyof typeof PURPOSES;
}

export function keysCommand(): Command {
  // Shared by both commands: rotate's default also shows in `keys list --help` (where no --purpose
  // lists every purpose). Kept so, as the help output is relied on.
  const purposeOption = new Option(
    "--purpose <purpose>",
    "token (token signing), audit (audit checkpoints), agent-ca-root or agent-ca (the agent CA's root and intermediate)",
  ).choices(Object.keys(PURPOSES));
  const keys = command("keys", "inspect and rotate a tenant's signing keys (over gRPC)");
  keys.addCommand(
    tenantRpcCommand("list", "show each key's state and timestamps")
      .addOption(purposeOption)
      .action(async (options: KeyOptions) => {
        const client = grpcClient(Signer, options);
        const purpose = options.purpose ? PURPOSES[options.purpose] : KeyPurpose.UNSPECIFIED;
        const { keys: found } = await client.listKeys({ tenant: options.tenant, purpose });
        print(
          options,
          found.map((k) => toJson(KeyInfoSchema, k)),
          () => keysTable(found),
        );
      }),
  );
  keys.addCommand(
    command("rotate", "rotate now; with --revoke-current the current key leaves the JWKS at once (compromise)")
      .addOption(tenantOption)
      .addOption(purposeOption.default("token"))
      .option("--revoke-current", "revoke the current key: every token it signed stops verifying")
      .option("--reason <text>", "why, recorded in the audit log", "")
      .addOption(addressOption)
      .addOption(tokenOption)
      .option("--json", "print as JSON")
      .action(async (options: KeyOptions & { revokeCurrent?: boolean; reason: string }) => {
        const client = grpcClient(Signer, options);
        const { keys: after } = await client.rotateKeys({
          tenant: options.tenant,
          purpose: PURPOSES[options.purpose ?? "token"],
          revokeCurrent: options.revokeCurrent ?? false,
          reason: options.reason,
        });
        print(
          options,
          after.map((k) => toJson(KeyInfoSchema, k)),
          () => `rotated; keys now:\n${keysTable(after)}`,
        );
      }),
  );
  return keys;
}

function keysTable(keys: KeyInfo[]): string {
  if (keys.length === 0) return "(no keys yet: they are made on first use)";
  const when = (t: { seconds: bigint } | undefined) => (t ? new Date(Number(t.seconds) * 1000).toISOString() : "-");
  const rows = keys.map((k) => [
    KeyState[k.state].toLowerCase(),
    KeyPurpose[k.purpose].toLowerCase(),
    k.alg,
    k.kid,
    when(k.publishTime),
    when(k.activateTime),
    when(k.retireTime),
    when(k.unpublishTime),
  ]);
  return table(["STATE", "PURPOSE", "ALG", "KID", "PUBLISHED", "SIGNS FROM", "SIGNS UNTIL", "LEAVES JWKS"], rows);
}
