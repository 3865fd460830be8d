// `mandate agents attestors add|list|remove` and `mandate agents bind-workload|unbind-workload`: the
// workload platforms whose signed JWTs attest agents at enrollment (e.g. a Kubernetes cluster's
// service-account issuer), and which workload subject is which agent, over gRPC
// (Issue.*AgentAttestor, Issue.*AgentWorkload).
import { readFileSync } from "node:fs";
import { type JsonObject, toJson } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { type Command, CommanderError, Option } from "commander";
import {
  type AgentAttestor,
  AgentAttestorSchema,
  AgentWorkloadBindingSchema,
  Issue,
} from "../../gen/mandate/v1/issue_pb.js";
import { command, grpcClient, print, type TenantOptions, table, tenantRpcCommand } from "./common.ts";

interface AddOptions extends TenantOptions {
  issuer: string;
  audience: string;
  jwksUri?: string;
  jwks?: string;
}

interface BindOptions extends TenantOptions {
  attestor: string;
  subject: string;
}

/** Adds the attestor and workload-binding subcommands to `mandate agents`. */
export function addAttestorCommands(agents: Command): void {
  agents.addCommand(attestorsCommand());
  agents.addCommand(
    tenantRpcCommand("bind-workload", "bind a workload subject of an attestor to an agent: its attested JWTs enroll it")
      .argument("<client-id>", "the agent's client identifier")
      .requiredOption("--attestor <name>", "the attestor whose tokens carry the subject")
      .requiredOption("--subject <sub>", "the tokens' sub, e.g. system:serviceaccount:<namespace>:<name>")
      .action(async (clientId: string, options: BindOptions) => {
        const { binding } = await grpcClient(Issue, options).bindAgentWorkload({
          tenant: options.tenant,
          attestor: options.attestor,
          subject: options.subject,
          clientId,
        });
        print(
          options,
          binding && toJson(AgentWorkloadBindingSchema, binding),
          () => `bound ${options.subject} (attestor ${options.attestor}) to agent ${clientId}`,
        );
      }),
  );
  agents.addCommand(
    tenantRpcCommand("unbind-workload", "remove a workload subject's binding: its tokens enroll no agent")
      .requiredOption("--attestor <name>", "the attestor whose tokens carry the subject")
      .requiredOption("--subject <sub>", "the tokens' sub")
      .action(async (options: BindOptions) => {
        await grpcClient(Issue, options).unbindAgentWorkload({
          tenant: options.tenant,
          attestor: options.attestor,
          subject: options.subject,
        });
        print(options, { attestor: options.attestor, subject: options.subject, unbound: true }, () => "unbound");
      }),
  );
}

function attestorsCommand(): Command {
  const attestors = command(
    "attestors",
    "manage the workload platforms whose signed JWTs attest agents at enrollment (over gRPC)",
  );
  attestors.addCommand(
    tenantRpcCommand("add", "register an attestor: an issuer of workload JWTs and where its keys are")
      .argument("<name>", "the attestor's name (lower-case letters, digits, . _ -)")
      .requiredOption("--issuer <url>", "the iss of its tokens, exactly (Kubernetes: --service-account-issuer)")
      .requiredOption("--audience <aud>", "the audience its tokens must carry (the projected token's audience)")
      .addOption(
        new Option("--jwks-uri <url>", "https URL of its JWK Set (the issuer's discovery jwks_uri)").conflicts("jwks"),
      )
      .option("--jwks <file>", "its JWK Set in a JSON file (kubectl get --raw /openid/v1/jwks)")
      .action(async (name: string, options: AddOptions) => {
        if (!options.jwksUri && !options.jwks) {
          throw new CommanderError(2, "mandate.usage", "give --jwks-uri or --jwks: where the attestor's keys are");
        }
        const keys = options.jwks
          ? { case: "jwks" as const, value: readJwkSet(options.jwks) }
          : { case: "jwksUri" as const, value: options.jwksUri as string };
        const { attestor } = await grpcClient(Issue, options).createAgentAttestor({
          tenant: options.tenant,
          name,
          issuer: options.issuer,
          audience: options.audience,
          keys,
        });
        print(options, attestor && toJson(AgentAttestorSchema, attestor), () => (attestor ? describe(attestor) : ""));
      }),
  );
  attestors.addCommand(
    tenantRpcCommand("list", "list a tenant's attestors with their workload bindings").action(
      async (options: TenantOptions) => {
        const { attestors: all } = await grpcClient(Issue, options).listAgentAttestors({ tenant: options.tenant });
        print(
          options,
          all.map((a) => toJson(AgentAttestorSchema, a)),
          () => (all.length === 0 ? "(no attestors)" : all.map(describe).join("\n\n")),
        );
      },
    ),
  );
  attestors.addCommand(
    tenantRpcCommand("remove", "delete an attestor and its workload bindings")
      .argument("<name>", "the attestor's name")
      .action(async (name: string, options: TenantOptions) => {
        const { removedBindings } = await grpcClient(Issue, options).deleteAgentAttestor({
          tenant: options.tenant,
          name,
        });
        print(
          options,
          { name, removedBindings },
          () => `removed attestor ${name} and ${removedBindings} workload binding(s)`,
        );
      }),
  );
  return attestors;
}

/** A JWK Set ({"keys": [...]}) from a JSON file. */
function readJwkSet(file: string): JsonObject {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, "utf8"));
  } catch (error) {
    throw new CommanderError(2, "mandate.usage", `cannot read the JWK Set ${file}: ${(error as Error).message}`);
  }
  if (typeof parsed !== "object" || parsed === null || !Array.isArray((parsed as { keys?: unknown }).keys)) {
    throw new CommanderError(2, "mandate.usage", `${file} is not a JWK Set ({"keys": [...]})`);
  }
  return parsed as JsonObject;
}

function describe(attestor: AgentAttestor): string {
  const keys = attestor.jwksUri || `JWK Set of ${(attestor.jwks?.keys as unknown[] | undefined)?.length ?? 0} key(s)`;
  const created = attestor.createTime ? timestampDate(attestor.createTime).toISOString() : "";
  const bindings = attestor.bindings.map((b) => [b.subject, b.clientId]);
  return [
    `name       ${attestor.name}`,
    `issuer     ${attestor.issuer}`,
    `audience   ${attestor.audience}`,
    `keys       ${keys}`,
    `created    ${created}`,
    bindings.length === 0 ? "bindings   (none)" : table(["SUBJECT", "AGENT"], bindings),
  ].join("\n");
}
