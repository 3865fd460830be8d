// `mandate tenant-trusts grant|list|revoke`: cross-organization trust (issue 18), over gRPC
// (Issue.*TenantTrust). `--tenant` is the trusting tenant A; `--foreign-tenant` the trusted B. B's
// agents (or humans) then exchange their B tokens (aud = A's issuer) at A's token endpoint with
// subject_token_type urn:mandate:params:oauth:token-type:tenant-access-token.
import { type JsonObject, toJson } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { type Command, InvalidArgumentError, Option } from "commander";
import { Issue, type TenantTrust, TenantTrustSchema } from "../../gen/mandate/v1/issue_pb.js";
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

interface GrantOptions extends TenantOptions {
  foreignTenant: string;
  client: string;
  subjectKind: string[];
  scope: string[];
  resource: string[];
  authorizationDetails?: JsonObject[];
  ttl: number;
}

export function tenantTrustsCommand(): Command {
  const trusts = command(
    "tenant-trusts",
    "manage cross-organization trust: which other tenant's agents (or humans) may act in this one (over gRPC)",
  );
  trusts.addCommand(
    tenantRpcCommand("grant", "trust another tenant's identities within named scopes, resources and details")
      .requiredOption("--foreign-tenant <tenant>", "the trusted tenant (B)")
      .requiredOption("--client <client-id>", "the agent client of this tenant that B's identities act as")
      .option("--subject-kind <kind>", "agent or human (repeatable; default agent)", collect, [])
      .option("--scope <scope>", "a scope crossing tokens may carry (repeatable)", collect, [])
      .option("--resource <uri>", "a resource crossing tokens may target (repeatable)", collect, [])
      .addOption(
        new Option(
          "--authorization-details <json>",
          "RFC 9396 authorization details (a JSON array of objects with a type)",
        ).argParser(parseDetails),
      )
      .addOption(
        new Option("--ttl <duration>", "how long the trust lasts, e.g. 30d")
          .argParser(parseDurationMs)
          .makeOptionMandatory(),
      )
      .action(async (options: GrantOptions) => {
        const { trust } = await grpcClient(Issue, options).createTenantTrust({
          tenant: options.tenant,
          foreignTenant: options.foreignTenant,
          clientId: options.client,
          subjectKinds: options.subjectKind.length ? options.subjectKind : ["agent"],
          scopes: options.scope,
          resources: options.resource,
          authorizationDetails: options.authorizationDetails ?? [],
          expireTime: timestampFromMs(Date.now() + options.ttl),
        });
        print(options, trust && toJson(TenantTrustSchema, trust), () => describe(trust));
      }),
  );
  trusts.addCommand(
    tenantRpcCommand("list", "list this tenant's trusts in other tenants, newest first").action(
      async (options: TenantOptions) => {
        const { trusts: all } = await grpcClient(Issue, options).listTenantTrusts({ tenant: options.tenant });
        printTable(options, all, {
          json: (t) => toJson(TenantTrustSchema, t),
          empty: "(no tenant trusts)",
          header: ["ID", "FOREIGN TENANT", "AS CLIENT", "KINDS", "SCOPES", "EXPIRES", "STATE"],
          row: (t) => [
            t.id,
            t.foreignTenant,
            t.clientId,
            t.subjectKinds.join(","),
            t.scopes.join(" "),
            iso(t.expireTime),
            lifecycleState(t),
          ],
        });
      },
    ),
  );
  trusts.addCommand(
    tenantRpcCommand("revoke", "revoke a trust: new crossings refused, issued crossing tokens revoked at once")
      .argument("<id>", "the trust's id")
      .action(async (id: string, options: TenantOptions) => {
        const revoked = await grpcClient(Issue, options).revokeTenantTrust({ tenant: options.tenant, id });
        print(
          options,
          { trust: revoked.trust && toJson(TenantTrustSchema, revoked.trust), revokedTokens: revoked.revokedTokens },
          () => `revoked tenant trust ${id} (${revoked.revokedTokens} crossing token(s) revoked with it)`,
        );
      }),
  );
  return trusts;
}

function parseDetails(value: string): JsonObject[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    throw new InvalidArgumentError("not JSON");
  }
  if (!Array.isArray(parsed) || parsed.some((d) => typeof d !== "object" || d === null || Array.isArray(d))) {
    throw new InvalidArgumentError("expected a JSON array of objects");
  }
  return parsed as JsonObject[];
}

function describe(trust: TenantTrust | undefined): string {
  if (!trust) return "";
  return [
    `id             ${trust.id}`,
    `foreign tenant ${trust.foreignTenant}`,
    `as client      ${trust.clientId}`,
    `subject kinds  ${trust.subjectKinds.join(", ")}`,
    `scopes         ${trust.scopes.join(" ")}`,
    `resources      ${trust.resources.join(" ")}`,
    ...(trust.authorizationDetails.length ? [`details        ${JSON.stringify(trust.authorizationDetails)}`] : []),
    `expires        ${iso(trust.expireTime)}`,
  ].join("\n");
}
