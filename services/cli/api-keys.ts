// `mandate api-keys create|list|rotate|revoke`: API keys Mandate creates for agents (issue 18),
// over gRPC (Issue.*ApiKey). The key is printed once, by create and rotate; an agent exchanges it at
// the token endpoint (RFC 8693, subject_token_type urn:mandate:params:oauth:token-type:api-key) for a
// short-lived DPoP- or certificate-bound token.
import { toJson } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { type Command, Option } from "commander";
import { type ApiKey, ApiKeySchema, Issue } from "../../gen/mandate/v1/issue_pb.js";
import {
  collect,
  command,
  grpcClient,
  iso,
  lifecycleState,
  print,
  printTable,
  type TenantOptions,
  tenantRpcCommand,
} from "./common.ts";
import { parseDurationMs } from "./mandates.ts";

interface CreateOptions extends TenantOptions {
  scope: string[];
  resource: string[];
  ttl?: number;
}

export function apiKeysCommand(): Command {
  const keys = command("api-keys", "manage API keys of agents: prefixed, hashed at rest, scoped, expiring (over gRPC)");
  keys.addCommand(
    tenantRpcCommand("create", "create an API key for an agent; the key is printed once")
      .argument("<client-id>", "the agent's client identifier")
      .requiredOption("--scope <scope>", "a scope its tokens may carry (repeatable; among the agent's)", collect, [])
      .option("--resource <uri>", "a resource its tokens may target (repeatable; default: the agent's)", collect, [])
      .addOption(
        new Option(
          "--ttl <duration>",
          "how long it works, e.g. 30d (default federation.apiKeyTtl, at most 366d)",
        ).argParser(parseDurationMs),
      )
      .action(async (clientId: string, options: CreateOptions) => {
        const created = await grpcClient(Issue, options).createApiKey({
          tenant: options.tenant,
          clientId,
          scopes: options.scope,
          resources: options.resource,
          ttl: options.ttl ? durationFromMs(options.ttl) : undefined,
        });
        printNewKey(options, created.key, created.apiKey);
      }),
  );
  keys.addCommand(
    tenantRpcCommand("list", "list API keys (never the keys: id, prefix, scopes, expiry, last use)")
      .option("--client <client-id>", "only this agent's keys")
      .action(async (options: TenantOptions & { client?: string }) => {
        const { apiKeys } = await grpcClient(Issue, options).listApiKeys({
          tenant: options.tenant,
          clientId: options.client ?? "",
        });
        printTable(options, apiKeys, {
          json: (k) => toJson(ApiKeySchema, k),
          empty: "(no API keys)",
          header: ["ID", "AGENT", "SCOPES", "EXPIRES", "LAST USED", "STATE"],
          row: (k) => [
            k.id,
            k.clientId,
            k.scopes.join(" "),
            iso(k.expireTime),
            iso(k.lastUseTime),
            lifecycleState(k, k.rotatedTo ? `rotated to ${k.rotatedTo}` : "active"),
          ],
        });
      }),
  );
  keys.addCommand(
    tenantRpcCommand("rotate", "replace a key: the new one is printed once, the old works until the overlap ends")
      .argument("<id>", "the key's id")
      .action(async (id: string, options: TenantOptions) => {
        const rotated = await grpcClient(Issue, options).rotateApiKey({ tenant: options.tenant, id });
        printNewKey(
          options,
          rotated.key,
          rotated.apiKey,
          `the old key ${id} works until ${iso(rotated.previous?.expireTime)}`,
        );
      }),
  );
  keys.addCommand(
    tenantRpcCommand("revoke", "revoke a key: refused from now on")
      .argument("<id>", "the key's id")
      .action(async (id: string, options: TenantOptions) => {
        const { apiKey } = await grpcClient(Issue, options).revokeApiKey({ tenant: options.tenant, id });
        print(options, apiKey && toJson(ApiKeySchema, apiKey), () => `revoked API key ${id}`);
      }),
  );
  return keys;
}

function printNewKey(options: TenantOptions, key: string, apiKey: ApiKey | undefined, note?: string): void {
  const json = { key, apiKey: apiKey ? toJson(ApiKeySchema, apiKey) : null };
  print(options, json, () =>
    [
      `key       ${key}   (shown once: store it now)`,
      `id        ${apiKey?.id ?? ""}`,
      `agent     ${apiKey?.clientId ?? ""}`,
      `scopes    ${apiKey?.scopes.join(" ") ?? ""}`,
      `resources ${apiKey?.resources.join(" ") ?? ""}`,
      `expires   ${iso(apiKey?.expireTime)}`,
      ...(note ? ["", note] : []),
    ].join("\n"),
  );
}
