// `mandate agents`: a tenant's agents — clients of kind agent, with an owner who answers for them, a
// description shown to humans, and the key their tokens are bound to — over gRPC (Issue.*Client);
// their certificates (enrollment tokens, listing, revocation: Issue.*Agent*); and the agent's own
// side of enrollment and renewal (agent-enrollment.ts), which talks to the issuer over HTTP.
import { readFileSync } from "node:fs";
import { type JsonObject, toJson } from "@bufbuild/protobuf";
import { durationFromMs, timestampDate } from "@bufbuild/protobuf/wkt";
import { type Command, CommanderError, Option } from "commander";
import { ClientKind, type OAuthClient, OAuthClientSchema } from "../../gen/mandate/v1/clients_pb.js";
import { AgentCertificateSchema, Issue } from "../../gen/mandate/v1/issue_pb.js";
import { REVOCATION_REASONS } from "../issue/agents/certificates.ts";
import { addAttestorCommands } from "./agent-attestors.ts";
import { enrollCommand, renewCommand } from "./agent-enrollment.ts";
import {
  collect,
  command,
  grpcClient,
  print,
  printTable,
  type TenantOptions,
  table,
  tenantRpcCommand,
} from "./common.ts";
import { parseDurationMs } from "./mandates.ts";

interface AgentCreateOptions extends TenantOptions {
  name: string;
  owner: string;
  description?: string;
  dpopJkt?: string;
  jwks?: string;
  jwksUri?: string;
  authMethod?: string;
  grantType: string[];
  scope: string;
  resource: string[];
  accessTokenTtl?: string;
}

interface AgentListOptions extends TenantOptions {
  owner?: string;
}

export function agentsCommand(): Command {
  const agents = command("agents", "manage a tenant's agents: clients with an owner and a bound key (over gRPC)");
  agents.addCommand(createCommand());
  agents.addCommand(
    tenantRpcCommand("get", "show an agent")
      .argument("<client-id>", "the agent's client identifier")
      .action(async (clientId: string, options: TenantOptions) => {
        const { client } = await grpcClient(Issue, options).getClient({ tenant: options.tenant, clientId });
        if (client?.kind !== ClientKind.AGENT) {
          throw new CommanderError(
            1,
            "mandate.usage",
            `client ${clientId} is not an agent (see \`mandate clients get\`)`,
          );
        }
        print(options, toJson(OAuthClientSchema, client), () => describe(client));
      }),
  );
  agents.addCommand(
    tenantRpcCommand("list", "list a tenant's agents")
      .option("--owner <sub>", "only the agents of this owner (a human's sub or an org id)")
      .action(async (options: AgentListOptions) => {
        const all = await allAgents(options);
        printTable(options, all, {
          json: (c) => toJson(OAuthClientSchema, c),
          empty: "(no agents)",
          header: ["CLIENT ID", "NAME", "OWNER", "KEY"],
          row: (c) => [c.clientId, c.clientName, c.owner, keyOf(c)],
        });
      }),
  );
  addAttestorCommands(agents);
  agents.addCommand(enrollmentTokenCommand());
  agents.addCommand(certificatesCommand());
  agents.addCommand(revokeCertificatesCommand());
  agents.addCommand(enrollCommand());
  agents.addCommand(renewCommand());
  return agents;
}

function enrollmentTokenCommand(): Command {
  return tenantRpcCommand(
    "enrollment-token",
    "create a one-time enrollment token for an agent; the agent runs `mandate agents enroll --token ...` with it",
  )
    .argument("<client-id>", "the agent's client identifier")
    .addOption(
      new Option(
        "--ttl <duration>",
        "how long it stays usable, e.g. 30m, 2h (default and most: agents.enrollmentTokenTtl)",
      ).argParser(parseDurationMs),
    )
    .action(async (clientId: string, options: TenantOptions & { ttl?: number }) => {
      const created = await grpcClient(Issue, options).createAgentEnrollmentToken({
        tenant: options.tenant,
        clientId,
        ttl: options.ttl ? durationFromMs(options.ttl) : undefined,
      });
      const expires = created.expireTime ? timestampDate(created.expireTime).toISOString() : "";
      print(options, { token: created.token, id: created.id, expireTime: expires }, () =>
        [
          `token     ${created.token}   (shown once; usable once, until ${expires})`,
          `id        ${created.id}`,
          "",
          "On the agent's machine:",
          `  mandate agents enroll --issuer <issuer URL of ${options.tenant}> --token <token> --key agent-key.pem --generate-key ec --out agent.pem`,
        ].join("\n"),
      );
    });
}

function certificatesCommand(): Command {
  return tenantRpcCommand("certificates", "list the certificates issued to an agent, newest first")
    .argument("<client-id>", "the agent's client identifier")
    .action(async (clientId: string, options: TenantOptions) => {
      const { certificates } = await grpcClient(Issue, options).listAgentCertificates({
        tenant: options.tenant,
        clientId,
      });
      const when = (t: Parameters<typeof timestampDate>[0] | undefined) => (t ? timestampDate(t).toISOString() : "");
      print(
        options,
        certificates.map((c) => toJson(AgentCertificateSchema, c)),
        () =>
          certificates.length === 0
            ? `(no certificates: create an enrollment token with \`mandate agents enrollment-token ${clientId}\`)`
            : table(
                ["SERIAL", "NOT AFTER", "PROOF", "REVOKED"],
                certificates.map((c) => [
                  c.serial,
                  when(c.notAfter),
                  c.proof,
                  c.revokeTime ? `${when(c.revokeTime)} (${c.revocationReason || "unspecified"})` : "",
                ]),
              ),
      );
    });
}

function revokeCertificatesCommand(): Command {
  return tenantRpcCommand(
    "revoke-certificates",
    "revoke an agent's certificates (all, or one with --serial): refused at once, listed on the CRL until they expire",
  )
    .argument("<client-id>", "the agent's client identifier")
    .option("--serial <hex>", "only this certificate (see `mandate agents certificates`)")
    .addOption(
      new Option("--reason <reason>", "RFC 5280 revocation reason").choices(REVOCATION_REASONS).default("unspecified"),
    )
    .action(async (clientId: string, options: TenantOptions & { serial?: string; reason: string }) => {
      const { revokedCount } = await grpcClient(Issue, options).revokeAgentCertificates({
        tenant: options.tenant,
        clientId,
        serial: options.serial ?? "",
        reason: options.reason,
      });
      print(options, { revokedCount }, () =>
        revokedCount === 0
          ? "nothing to revoke: no unrevoked certificate matched (its enrollment tokens are void now)"
          : `revoked ${revokedCount} certificate${revokedCount === 1 ? "" : "s"}; the agent must enroll again with a new token`,
      );
    });
}

function createCommand(): Command {
  return tenantRpcCommand("create", "register an agent; prints its client id, and its secret once (if it has one)")
    .requiredOption("--name <name>", "name shown to humans (consent pages, my mandates)")
    .requiredOption("--owner <sub>", "who answers for it: the sub of the human or the id of the org it acts for")
    .option("--description <text>", "what it is and does, in words shown to humans (at most 1024 characters)")
    .addOption(
      new Option(
        "--dpop-jkt <thumbprint>",
        "RFC 7638 thumbprint of its DPoP key: its tokens are bound to that key (write --dpop-jkt=VALUE when it starts with -)",
      ),
    )
    .addOption(
      new Option("--jwks <file>", "its public keys, a JWK Set (or one JWK) in a JSON file (private_key_jwt)").conflicts(
        "jwksUri",
      ),
    )
    .option("--jwks-uri <url>", "where it publishes its public keys, https (private_key_jwt)")
    .addOption(
      new Option(
        "--auth-method <method>",
        "token endpoint authentication (default private_key_jwt with --jwks/--jwks-uri, else client_secret_basic); tls_client_auth: its enrolled certificate (RFC 8705)",
      ).choices([
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
        "tls_client_auth",
        "self_signed_tls_client_auth",
      ]),
    )
    .option(
      "--grant-type <type>",
      "allowed grant type; repeatable (default client_credentials and token exchange)",
      collect,
      [],
    )
    .option("--scope <scopes>", "allowed scopes, space-separated", "")
    .option("--resource <uri>", "resource (RFC 8707) it may obtain tokens for; repeatable", collect, [])
    .option("--access-token-ttl <seconds>", "access-token lifetime, 10-3600 s (default: oauth.accessTokenTtl)")
    .action(async (options: AgentCreateOptions) => {
      if (!options.dpopJkt && !options.jwks && !options.jwksUri && options.authMethod !== "tls_client_auth") {
        throw new CommanderError(
          2,
          "mandate.usage",
          "an agent needs a key: give --dpop-jkt, --jwks or --jwks-uri, or --auth-method tls_client_auth (its enrolled certificate)",
        );
      }
      const { client, clientSecret } = await grpcClient(Issue, options).createClient({
        tenant: options.tenant,
        metadata: agentMetadata(options),
      });
      const json = client && {
        ...(toJson(OAuthClientSchema, client) as Record<string, unknown>),
        ...(clientSecret ? { clientSecret } : {}),
      };
      print(options, json, () =>
        [
          ...(clientSecret ? [`client_secret  ${clientSecret}   (shown once: store it now)`] : []),
          client ? describe(client) : "",
        ].join("\n"),
      );
    });
}

/** CreateClient's metadata from the options; "" / 0 leave a field to the server's default. */
function agentMetadata(options: AgentCreateOptions) {
  return {
    kind: ClientKind.AGENT,
    clientName: options.name,
    owner: options.owner,
    description: options.description ?? "",
    dpopJkt: options.dpopJkt ?? "",
    jwks: options.jwks ? readJwks(options.jwks) : undefined,
    jwksUri: options.jwksUri ?? "",
    tokenEndpointAuthMethod: options.authMethod ?? "",
    grantTypes: options.grantType,
    scope: options.scope,
    resources: options.resource,
    accessTokenLifetimeSeconds: options.accessTokenTtl ? Number(options.accessTokenTtl) : 0,
  };
}

/** The JWK Set in `file`; a single JWK is taken as a set of one. */
function readJwks(file: string): JsonObject {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, "utf8"));
  } catch (error) {
    throw new CommanderError(2, "mandate.usage", `cannot read the JWK Set ${file}: ${(error as Error).message}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new CommanderError(2, "mandate.usage", `${file} is not a JWK Set ({"keys": [...]}) or a JWK`);
  }
  return ("keys" in parsed ? parsed : { keys: [parsed] }) as JsonObject;
}

/** The agent for humans: who it is, whose it is, what key its tokens are bound to. */
function describe(client: OAuthClient): string {
  return [
    `client_id      ${client.clientId}`,
    `name           ${client.clientName}`,
    `owner          ${client.owner}`,
    ...(client.description ? [`description    ${client.description}`] : []),
    `key            ${keyOf(client)}`,
    `auth method    ${client.tokenEndpointAuthMethod}`,
    `grant types    ${client.grantTypes.join(", ")}`,
    ...(client.scope ? [`scope          ${client.scope}`] : []),
    ...(client.resources.length ? [`resources      ${client.resources.join(" ")}`] : []),
  ].join("\n");
}

/** What its tokens are bound to, or how it proves itself. */
function keyOf(client: OAuthClient): string {
  const keys = (client.jwks?.keys as unknown[] | undefined)?.length;
  return (
    [
      client.dpopJkt && `DPoP key ${client.dpopJkt}`,
      keys && `jwks (${keys} key${keys === 1 ? "" : "s"})`,
      client.jwksUri && `jwks_uri ${client.jwksUri}`,
    ]
      .filter(Boolean)
      .join(", ") || "(none)"
  );
}

async function allAgents(options: AgentListOptions): Promise<OAuthClient[]> {
  const all: OAuthClient[] = [];
  const issue = grpcClient(Issue, options);
  let pageToken = "";
  do {
    const page = await issue.listClients({
      tenant: options.tenant,
      kind: ClientKind.AGENT,
      owner: options.owner ?? "",
      page: { pageToken },
    });
    all.push(...page.clients);
    pageToken = page.nextPageToken;
  } while (pageToken);
  return all;
}
