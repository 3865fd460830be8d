// `mandate federation trusts add|list|revoke`: the agent federation gateway's trusts in external
// issuers (issue 18), over gRPC (Issue.*FederationTrust). A trust admits credentials of one kind —
// a JWT of an issuer (jwt), an ID-JAG of an enterprise IdP (id_jag), a SAML bearer assertion (saml),
// a certificate of a CA (x509_ca) — maps their subjects to agents, and bounds what they may get.
import { readFileSync } from "node:fs";
import { toJson } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { type Command, Option } from "commander";
import { FederationTrustSchema, Issue } from "../../gen/mandate/v1/issue_pb.js";
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

interface AddOptions extends TenantOptions {
  kind: string;
  issuer: string;
  jwksUri?: string;
  discovery?: boolean;
  jwksFile?: string;
  certificate: string[];
  audience?: string;
  maxLifetime?: number;
  claim?: string;
  map: string[];
  client?: string;
  scope: string[];
  resource: string[];
  ttl?: number;
}

export function federationCommand(): Command {
  const federation = command("federation", "the agent federation gateway (over gRPC)");
  const trusts = command("trusts", "trusts in external issuers whose credentials agents exchange for Mandate tokens");
  trusts.addCommand(addCommand());
  trusts.addCommand(
    tenantRpcCommand("list", "list the tenant's federation trusts").action(async (options: TenantOptions) => {
      const { trusts: all } = await grpcClient(Issue, options).listFederationTrusts({ tenant: options.tenant });
      printTable(options, all, {
        json: (t) => toJson(FederationTrustSchema, t),
        empty: "(no federation trusts)",
        header: ["ID", "KIND", "ISSUER", "SCOPES", "RESOURCES", "EXPIRES", "STATE"],
        row: (t) => [
          t.id,
          t.kind,
          t.issuer,
          t.allowedScopes.join(" "),
          t.allowedResources.join(" "),
          iso(t.expireTime),
          lifecycleState(t),
        ],
      });
    }),
  );
  trusts.addCommand(
    tenantRpcCommand("revoke", "revoke a trust: its credentials are refused from now on")
      .argument("<id>", "the trust's id")
      .action(async (id: string, options: TenantOptions) => {
        await grpcClient(Issue, options).revokeFederationTrust({ tenant: options.tenant, id });
        print(options, { id, revoked: true }, () => `revoked federation trust ${id}`);
      }),
  );
  federation.addCommand(trusts);
  return federation;
}

function addCommand(): Command {
  return tenantRpcCommand("add", "trust an external issuer")
    .addOption(
      new Option("--kind <kind>", "what it issues").choices(["jwt", "id_jag", "saml", "x509_ca"]).makeOptionMandatory(),
    )
    .requiredOption("--issuer <issuer>", "its identifier: JWT iss, SAML IdP entityID, or a name for the CA")
    .option("--jwks-uri <url>", "jwt/id_jag: the https URL of its JWK Set")
    .option("--discovery", "jwt/id_jag: find its JWK Set by OpenID Discovery / RFC 8414 at the issuer")
    .option("--jwks-file <file>", "jwt/id_jag: a file holding its JWK Set (public keys)")
    .option("--certificate <file>", "saml/x509_ca: a PEM certificate file (repeatable)", collect, [])
    .option("--audience <aud>", "the audience its credentials name (default: the tenant's issuer or token endpoint)")
    .addOption(
      new Option("--max-lifetime <seconds>", "longest assertion lifetime accepted (default 3600)").argParser(Number),
    )
    .option("--claim <name>", "the claim/attribute mapped (default sub; x509_ca: san_uri, san_dns, san_email, subject)")
    .option("--map <value=client-id>", "a claim value and the agent it maps to (repeatable)", collect, [])
    .option("--client <client-id>", "the agent every subject maps to when --map names none")
    .option("--scope <scope>", "a scope its tokens may carry (repeatable)", collect, [])
    .option("--resource <uri>", "a resource its tokens may target (repeatable)", collect, [])
    .addOption(
      new Option("--ttl <duration>", "how long the trust lasts, e.g. 90d (default: until revoked)").argParser(
        parseDurationMs,
      ),
    )
    .action(async (options: AddOptions) => {
      const { trust } = await grpcClient(Issue, options).createFederationTrust({
        tenant: options.tenant,
        kind: options.kind,
        issuer: options.issuer,
        jwksUri: options.jwksUri ?? "",
        discovery: options.discovery ?? false,
        ...(options.jwksFile ? { jwks: JSON.parse(readFileSync(options.jwksFile, "utf8")) } : {}),
        certificates: options.certificate.map((file) => readFileSync(file, "utf8")),
        audience: options.audience ?? "",
        maxLifetimeSeconds: options.maxLifetime ?? 0,
        mappingClaim: options.claim ?? "",
        mappingClients: Object.fromEntries(options.map.map(mapping)),
        mappingClient: options.client ?? "",
        allowedScopes: options.scope,
        allowedResources: options.resource,
        ...(options.ttl ? { expireTime: timestampFromMs(Date.now() + options.ttl) } : {}),
      });
      print(
        options,
        trust && toJson(FederationTrustSchema, trust),
        () => `created federation trust ${trust?.id ?? ""}`,
      );
    });
}

function mapping(entry: string): [string, string] {
  const at = entry.lastIndexOf("=");
  if (at <= 0 || at === entry.length - 1) throw new Error(`--map ${entry}: expected <claim value>=<client id>`);
  return [entry.slice(0, at), entry.slice(at + 1)];
}
