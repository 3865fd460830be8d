// `mandate tenants`: manage the tenants of a running Mandate over gRPC.
import { toJson } from "@bufbuild/protobuf";
import { type Command, Option } from "commander";
import { type Tenant, TenantSchema, Tenants } from "../../gen/mandate/v1/tenants_pb.js";
import { addressOption, type CommonOptions, collect, command, grpcClient, print, tokenOption } from "./common.ts";

interface TenantCreateOptions extends CommonOptions {
  displayName?: string;
  signingAlg?: string;
  defaultResource: string[];
}

export function tenantsCommand(): Command {
  const tenants = command("tenants", "manage tenants of a running Mandate (over gRPC)");
  tenants.addCommand(
    command("create", "register a tenant")
      .argument("<id>", "tenant id (lowercase letters, digits, inner hyphens)")
      .option("--display-name <name>", "human-readable name")
      .addOption(
        new Option(
          "--signing-alg <alg>",
          "JWS algorithm of the tenant's token keys (default: signer.defaultAlgorithm)",
        ).choices(["ES256", "EdDSA", "PS256"]),
      )
      .option(
        "--default-resource <uri>",
        "resource (RFC 8707) its clients may target when they list none; repeatable",
        collect,
        [],
      )
      .addOption(addressOption)
      .addOption(tokenOption)
      .option("--json", "print as JSON")
      .action(async (id: string, options: TenantCreateOptions) => {
        const { tenant } = await grpcClient(Tenants, options).createTenant({
          tenant: id,
          displayName: options.displayName ?? "",
          tokenSigningAlgorithm: options.signingAlg ?? "",
          defaultResources: options.defaultResource,
        });
        print(options, tenant && toJson(TenantSchema, tenant), () => `created tenant ${tenant?.id}`);
      }),
  );
  tenants.addCommand(
    command("get", "show a tenant")
      .argument("<id>", "tenant id")
      .addOption(addressOption)
      .addOption(tokenOption)
      .option("--json", "print as JSON")
      .action(async (id: string, options: CommonOptions) => {
        const { tenant } = await grpcClient(Tenants, options).getTenant({ tenant: id });
        print(options, tenant && toJson(TenantSchema, tenant), () => `${tenant?.id}\t${tenant?.displayName}`);
      }),
  );
  tenants.addCommand(
    command("list", "list tenants")
      .addOption(addressOption)
      .addOption(tokenOption)
      .option("--json", "print as JSON")
      .action(async (options: CommonOptions) => {
        const all = await allTenants(options);
        print(
          options,
          all.map((t) => toJson(TenantSchema, t)),
          () => all.map((t) => `${t.id}\t${t.displayName}`).join("\n") || "(no tenants)",
        );
      }),
  );
  return tenants;
}

async function allTenants(options: CommonOptions): Promise<Tenant[]> {
  const all: Tenant[] = [];
  const client = grpcClient(Tenants, options);
  let pageToken = "";
  do {
    const page = await client.listTenants({ page: { pageToken } });
    all.push(...page.tenants);
    pageToken = page.nextPageToken;
  } while (pageToken);
  return all;
}
