// `mandate clients`: manage a tenant's OAuth clients over gRPC.
import { toJson } from "@bufbuild/protobuf";
import { type Command, InvalidArgumentError, Option } from "commander";
import { type OAuthClient, OAuthClientSchema } from "../../gen/mandate/v1/clients_pb.js";
import { Issue } from "../../gen/mandate/v1/issue_pb.js";
import {
  addressOption,
  collect,
  command,
  grpcClient,
  print,
  type TenantOptions,
  tenantOption,
  tenantRpcCommand,
  tokenOption,
} from "./common.ts";

interface ClientCreateOptions extends TenantOptions {
  name: string;
  redirectUri: string[];
  authMethod?: string;
  grantType: string[];
  scope: string;
  jwksUri?: string;
  requirePar?: boolean;
  dpop?: boolean;
  accessTokenTtl?: string;
  resource: string[];
  rateLimit?: { requestsPerSecond: number; burst: number };
  tlsSubjectDn?: string;
  tlsSanDns?: string;
  tlsSanUri?: string;
  tlsSanIp?: string;
  tlsSanEmail?: string;
  tlsBoundTokens?: boolean;
}

export function clientsCommand(): Command {
  const clients = command("clients", "manage a tenant's OAuth clients (over gRPC)");
  clients.addCommand(createCommand());
  clients.addCommand(
    tenantRpcCommand("get", "show a client")
      .argument("<client-id>", "the client identifier")
      .action(async (clientId: string, options: TenantOptions) => {
        const { client } = await grpcClient(Issue, options).getClient({ tenant: options.tenant, clientId });
        print(options, client && toJson(OAuthClientSchema, client), () =>
          JSON.stringify(client && toJson(OAuthClientSchema, client), null, 2),
        );
      }),
  );
  clients.addCommand(
    tenantRpcCommand("list", "list a tenant's clients").action(async (options: TenantOptions) => {
      const all = await allClients(options);
      print(
        options,
        all.map((c) => toJson(OAuthClientSchema, c)),
        () =>
          all.map((c) => `${c.clientId}\t${c.tokenEndpointAuthMethod}\t${c.clientName}`).join("\n") || "(no clients)",
      );
    }),
  );
  clients.addCommand(
    tenantRpcCommand("delete", "delete a client")
      .argument("<client-id>", "the client identifier")
      .action(async (clientId: string, options: TenantOptions) => {
        await grpcClient(Issue, options).deleteClient({ tenant: options.tenant, clientId });
        print(options, { deleted: clientId }, () => `deleted client ${clientId}`);
      }),
  );
  return clients;
}

function createCommand(): Command {
  return (
    command("create", "register a client; prints its secret once (client_secret_* methods)")
      .addOption(tenantOption)
      .option("--name <name>", "name shown on consent pages", "")
      .option("--redirect-uri <uri>", "redirect URI, matched exactly; repeatable", collect, [])
      .addOption(
        new Option("--auth-method <method>", "token endpoint authentication (default client_secret_basic)").choices([
          "none",
          "client_secret_basic",
          "client_secret_post",
          "private_key_jwt",
          "tls_client_auth",
          "self_signed_tls_client_auth",
        ]),
      )
      // RFC 8705 §2.1.2: with tls_client_auth, exactly one names the certificate.
      .option("--tls-subject-dn <dn>", "tls_client_auth: the certificate's subject DN (RFC 4514)")
      .option("--tls-san-dns <name>", "tls_client_auth: a dNSName SAN of the certificate")
      .option("--tls-san-uri <uri>", "tls_client_auth: a URI SAN of the certificate")
      .option("--tls-san-ip <ip>", "tls_client_auth: an iPAddress SAN of the certificate")
      .option("--tls-san-email <email>", "tls_client_auth: an rfc822Name SAN of the certificate")
      .option("--tls-bound-tokens", "always bind its access tokens to its client certificate (RFC 8705 §3)")
      .option("--grant-type <type>", "allowed grant type; repeatable (default authorization_code)", collect, [])
      .option("--scope <scopes>", "allowed scopes, space-separated", "")
      .option("--jwks-uri <url>", "where the client publishes its keys (private_key_jwt)")
      .option("--require-par", "require pushed authorization requests (RFC 9126)")
      .option("--dpop", "always bind its access tokens to a DPoP key (RFC 9449)")
      .option("--access-token-ttl <seconds>", "access-token lifetime, 10-3600 s (default: oauth.accessTokenTtl)")
      .option(
        "--resource <uri>",
        "resource (RFC 8707) it may obtain tokens for; repeatable (default: the tenant's default resources)",
        collect,
        [],
      )
      .option(
        "--rate-limit <rps[:burst]>",
        "its quota at the OAuth endpoints, e.g. 10:20 (default: none)",
        parseRateLimit,
      )
      .addOption(addressOption)
      .addOption(tokenOption)
      .option("--json", "print as JSON")
      .action(async (options: ClientCreateOptions) => {
        const { client, clientSecret } = await grpcClient(Issue, options).createClient({
          tenant: options.tenant,
          metadata: clientMetadata(options),
        });
        const json = client && {
          ...(toJson(OAuthClientSchema, client) as Record<string, unknown>),
          ...(clientSecret ? { clientSecret } : {}),
        };
        print(options, json, () =>
          [
            `client_id      ${client?.clientId}`,
            ...(clientSecret ? [`client_secret  ${clientSecret}   (shown once: store it now)`] : []),
            `auth method    ${client?.tokenEndpointAuthMethod}`,
            `grant types    ${client?.grantTypes.join(", ")}`,
          ].join("\n"),
        );
      })
  );
}

/** The registration metadata from the options; "" / 0 / false leave a field to the server's default. */
function clientMetadata(options: ClientCreateOptions) {
  return {
    clientName: options.name,
    redirectUris: options.redirectUri,
    tokenEndpointAuthMethod: options.authMethod ?? "",
    grantTypes: options.grantType,
    scope: options.scope,
    jwksUri: options.jwksUri ?? "",
    requirePushedAuthorizationRequests: options.requirePar ?? false,
    dpopBoundAccessTokens: options.dpop ?? false,
    accessTokenLifetimeSeconds: options.accessTokenTtl ? Number(options.accessTokenTtl) : 0,
    resources: options.resource,
    rateLimit: options.rateLimit,
    tlsClientAuthSubjectDn: options.tlsSubjectDn ?? "",
    tlsClientAuthSanDns: options.tlsSanDns ?? "",
    tlsClientAuthSanUri: options.tlsSanUri ?? "",
    tlsClientAuthSanIp: options.tlsSanIp ?? "",
    tlsClientAuthSanEmail: options.tlsSanEmail ?? "",
    tlsClientCertificateBoundAccessTokens: options.tlsBoundTokens ?? false,
  };
}

async function allClients(options: TenantOptions): Promise<OAuthClient[]> {
  const all: OAuthClient[] = [];
  const issue = grpcClient(Issue, options);
  let pageToken = "";
  do {
    const page = await issue.listClients({ tenant: options.tenant, page: { pageToken } });
    all.push(...page.clients);
    pageToken = page.nextPageToken;
  } while (pageToken);
  return all;
}

/** "<requests per second>[:<burst>]" of --rate-limit. */
function parseRateLimit(value: string): { requestsPerSecond: number; burst: number } {
  const match = /^(\d+(?:\.\d+)?)(?::(\d+))?$/.exec(value);
  if (!match || !(Number(match[1]) > 0)) {
    throw new InvalidArgumentError("expected <requests per second>[:<burst>], e.g. 10 or 10:20");
  }
  return { requestsPerSecond: Number(match[1]), burst: match[2] ? Number(match[2]) : 0 };
}
