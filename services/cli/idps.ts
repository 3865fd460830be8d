// `mandate idps add-oidc|add-saml|list|get|update|remove`: a tenant's upstream identity providers
// for humans (issue 18), over gRPC (Issue.*IdentityProvider). Secrets (the OIDC client secret, the
// SAML SP private key) come from a file or stdin ("-"), so they stay out of the shell history;
// --client-secret takes it on the command line only when explicitly given. They are sealed by the
// server and never shown again.
import { readFileSync } from "node:fs";
import { type JsonObject, toJson } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { type Command, CommanderError, Option } from "commander";
import { type IdentityProvider, IdentityProviderSchema, Issue } from "../../gen/mandate/v1/issue_pb.js";
import { collect, command, grpcClient, print, printTable, type TenantOptions, tenantRpcCommand } from "./common.ts";

interface CommonIdpOptions extends TenantOptions {
  displayName?: string;
  emailDomain: string[];
  claimMapping?: string;
  disabled?: boolean;
}

interface OidcOptions extends CommonIdpOptions {
  issuer?: string;
  clientId: string;
  clientSecret?: string;
  clientSecretFile?: string;
  scope: string[];
  preset?: string;
  entraTenantId?: string;
  oktaDomain?: string;
  googleHostedDomain?: string;
  idTokenAlg?: string;
  clientAuth?: string;
  privateKeyFile?: string;
}

interface SamlOptions extends CommonIdpOptions {
  metadataFile?: string;
  metadataUrl?: string;
  spEntityId?: string;
  wantResponseSigned?: boolean;
  spKeyFile?: string;
  spCertFile?: string;
}

interface UpdateOptions extends TenantOptions {
  enable?: boolean;
  disable?: boolean;
  displayName?: string;
  emailDomain?: string[];
  /** false with --no-email-domains (commander's negation). */
  emailDomains?: boolean;
  claimMapping?: string;
  clientSecret?: string;
  clientSecretFile?: string;
  privateKeyFile?: string;
  spKeyFile?: string;
  spCertFile?: string;
}

export function idpsCommand(): Command {
  const idps = command(
    "idps",
    "manage a tenant's upstream identity providers for humans: OIDC and SAML 2.0 (over gRPC)",
  );
  idps.addCommand(addOidcCommand());
  idps.addCommand(addSamlCommand());
  idps.addCommand(
    tenantRpcCommand("list", "list the tenant's identity providers (never their secrets)").action(
      async (options: TenantOptions) => {
        const { providers } = await grpcClient(Issue, options).listIdentityProviders({ tenant: options.tenant });
        printTable(options, providers, {
          json: (p) => toJson(IdentityProviderSchema, p),
          empty: "(no identity providers)",
          header: ["ID", "KIND", "ENABLED", "DOMAINS", "NAME"],
          row: (p) => [p.id, p.kind, p.enabled ? "yes" : "no", p.emailDomains.join(","), p.displayName],
        });
      },
    ),
  );
  idps.addCommand(
    tenantRpcCommand("get", "show one identity provider (never its secrets)")
      .argument("<id>", "the provider's id")
      .action(async (id: string, options: TenantOptions) => {
        const { provider } = await grpcClient(Issue, options).getIdentityProvider({ tenant: options.tenant, id });
        printProvider(options, provider);
      }),
  );
  idps.addCommand(updateCommand());
  idps.addCommand(
    tenantRpcCommand("remove", "delete an identity provider and the links of its identities")
      .argument("<id>", "the provider's id")
      .action(async (id: string, options: TenantOptions) => {
        const { unlinkedIdentities } = await grpcClient(Issue, options).deleteIdentityProvider({
          tenant: options.tenant,
          id,
        });
        print(
          options,
          { id, unlinkedIdentities },
          () => `removed identity provider ${id} and ${unlinkedIdentities} linked identit(ies)`,
        );
      }),
  );
  return idps;
}

/** Options every add command has: display name, e-mail domains, claim mapping, disabled. */
function withCommonOptions(cmd: Command): Command {
  return cmd
    .argument("<id>", "the provider's id (lower-case letters, digits, -): its name in URLs")
    .option("--display-name <name>", "name on the login page (default: the id)")
    .option("--email-domain <domain>", "an e-mail domain it signs in (home-realm discovery; repeatable)", collect, [])
    .option("--claim-mapping <file>", "claim mapping JSON (email, name, groups → roles; - for stdin)")
    .option("--disabled", "register it disabled");
}

function addOidcCommand(): Command {
  return withCommonOptions(tenantRpcCommand("add-oidc", "register an OpenID Connect identity provider"))
    .requiredOption("--client-id <id>", "Mandate's client id at the IdP")
    .option("--issuer <url>", "the IdP's issuer (https); presets derive it")
    .addOption(new Option("--preset <preset>", "provider preset").choices(["entra", "okta", "google", "none"]))
    .option("--entra-tenant-id <guid>", "Entra ID: the directory (tenant) id whose users may sign in")
    .option("--okta-domain <domain>", "Okta: the org domain, e.g. example.okta.com")
    .option("--google-hosted-domain <domain>", "Google Workspace: the hosted domain (hd) whose users may sign in")
    .option("--scope <scope>", "a scope to request besides openid (repeatable; default profile email)", collect, [])
    .option("--id-token-alg <alg>", "the JWS alg of the IdP's ID tokens (default RS256)")
    .addOption(
      new Option("--client-secret-file <file>", "file holding the client secret (- for stdin)").conflicts(
        "clientSecret",
      ),
    )
    .option("--client-secret <secret>", "the client secret itself (lands in your shell history: prefer the file)")
    .addOption(
      new Option("--client-auth <method>", "token endpoint authentication (default client_secret_basic)").choices([
        "client_secret_basic",
        "private_key_jwt",
      ]),
    )
    .option(
      "--private-key-file <file>",
      "private_key_jwt: the private JWK (JSON) signing client assertions (- for stdin)",
    )
    .action(async (id: string, options: OidcOptions) => {
      const clientSecret = secretOption(options.clientSecret, options.clientSecretFile, "client secret");
      const privateKeyJwk = options.privateKeyFile ? readInput(options.privateKeyFile, "the private JWK") : "";
      if (!clientSecret && !privateKeyJwk) {
        throw new CommanderError(
          2,
          "mandate.usage",
          "give --client-secret-file (or --client-secret), or --client-auth private_key_jwt with --private-key-file",
        );
      }
      const { provider } = await grpcClient(Issue, options).createIdentityProvider({
        ...commonFields(id, options),
        protocol: {
          case: "oidc",
          value: {
            clientId: options.clientId,
            clientSecret: clientSecret ?? "",
            clientAuth: options.clientAuth ?? "",
            privateKeyJwk,
            issuer: options.issuer ?? "",
            scopes: options.scope,
            preset: options.preset ?? "",
            entraTenantId: options.entraTenantId ?? "",
            oktaDomain: options.oktaDomain ?? "",
            googleHostedDomain: options.googleHostedDomain ?? "",
            idTokenSignedResponseAlg: options.idTokenAlg ?? "",
          },
        },
      });
      printProvider(options, provider);
    });
}

function addSamlCommand(): Command {
  return withCommonOptions(tenantRpcCommand("add-saml", "register a SAML 2.0 identity provider from its metadata"))
    .addOption(new Option("--metadata-file <file>", "the IdP's metadata XML (- for stdin)").conflicts("metadataUrl"))
    .option("--metadata-url <url>", "https URL of the IdP's metadata (fetched once by the server)")
    .option("--sp-entity-id <id>", "Mandate's SP entityID (default {issuer}/saml/{id})")
    .option("--want-response-signed", "also require the Response itself to be signed")
    .option("--sp-key-file <file>", "PKCS#8 PEM key decrypting encrypted assertions (- for stdin)")
    .option("--sp-cert-file <file>", "the certificate (PEM) of --sp-key-file, published in the SP metadata")
    .action(async (id: string, options: SamlOptions) => {
      if (!options.metadataFile && !options.metadataUrl) {
        throw new CommanderError(2, "mandate.usage", "give --metadata-file or --metadata-url: the IdP's metadata");
      }
      const metadata = options.metadataFile
        ? { case: "metadataXml" as const, value: readInput(options.metadataFile, "the metadata") }
        : { case: "metadataUrl" as const, value: options.metadataUrl as string };
      const { provider } = await grpcClient(Issue, options).createIdentityProvider({
        ...commonFields(id, options),
        protocol: {
          case: "saml",
          value: {
            metadata,
            spEntityId: options.spEntityId ?? "",
            wantAuthnResponseSigned: options.wantResponseSigned === true,
            ...spKeyFields(options),
          },
        },
      });
      printProvider(options, provider);
    });
}

function updateCommand(): Command {
  return tenantRpcCommand("update", "change an identity provider; what is not given is kept")
    .argument("<id>", "the provider's id")
    .addOption(new Option("--enable", "let users sign in through it").conflicts("disable"))
    .option("--disable", "stop sign-in through it")
    .option("--display-name <name>", "a new display name")
    .option("--email-domain <domain>", "the e-mail domains, replacing them (repeatable)", collect, undefined)
    .option("--no-email-domains", "remove every e-mail domain")
    .option("--claim-mapping <file>", "a new claim mapping JSON (- for stdin)")
    .addOption(
      new Option("--client-secret-file <file>", "rotate: the new client secret (- for stdin)").conflicts(
        "clientSecret",
      ),
    )
    .option("--client-secret <secret>", "rotate: the new client secret itself (lands in your shell history)")
    .option("--private-key-file <file>", "rotate (private_key_jwt): the new private JWK (- for stdin)")
    .option("--sp-key-file <file>", "SAML: a new SP decryption key (PKCS#8 PEM; - for stdin)")
    .option("--sp-cert-file <file>", "SAML: its certificate (PEM)")
    .action(async (id: string, options: UpdateOptions) => {
      const domains = options.emailDomains === false ? [] : options.emailDomain;
      const { provider } = await grpcClient(Issue, options).updateIdentityProvider({
        tenant: options.tenant,
        id,
        ...(options.enable ? { enabled: true } : {}),
        ...(options.disable ? { enabled: false } : {}),
        ...(options.displayName ? { displayName: options.displayName } : {}),
        ...(domains ? { emailDomains: { domains } } : {}),
        ...(options.claimMapping ? { claimMapping: readJson(options.claimMapping) } : {}),
        clientSecret: secretOption(options.clientSecret, options.clientSecretFile, "client secret") ?? "",
        privateKeyJwk: options.privateKeyFile ? readInput(options.privateKeyFile, "the private JWK") : "",
        ...spKeyFields(options),
      });
      printProvider(options, provider);
    });
}

function commonFields(id: string, options: CommonIdpOptions) {
  return {
    tenant: options.tenant,
    id,
    displayName: options.displayName ?? "",
    emailDomains: options.emailDomain,
    ...(options.claimMapping ? { claimMapping: readJson(options.claimMapping) } : {}),
    disabled: options.disabled === true,
  };
}

function spKeyFields(options: { spKeyFile?: string; spCertFile?: string }) {
  return {
    spPrivateKeyPem: options.spKeyFile ? readInput(options.spKeyFile, "the SP key") : "",
    spCertificatePem: options.spCertFile ? readInput(options.spCertFile, "the SP certificate") : "",
  };
}

/** The secret given inline (explicitly), or read from its file / stdin. */
function secretOption(inline: string | undefined, file: string | undefined, what: string): string | undefined {
  if (inline !== undefined) return inline;
  if (file === undefined) return undefined;
  const secret = readInput(file, `the ${what}`).replace(/\r?\n$/, "");
  if (!secret) throw new CommanderError(2, "mandate.usage", `the ${what} in ${file} is empty`);
  return secret;
}

/** A file's text, or stdin's for "-". */
function readInput(file: string, what: string): string {
  try {
    return readFileSync(file === "-" ? 0 : file, "utf8");
  } catch (error) {
    throw new CommanderError(2, "mandate.usage", `cannot read ${what} from ${file}: ${(error as Error).message}`);
  }
}

function readJson(file: string): JsonObject {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readInput(file, "the claim mapping"));
  } catch (error) {
    if (error instanceof CommanderError) throw error;
    throw new CommanderError(2, "mandate.usage", `${file} is not JSON: ${(error as Error).message}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new CommanderError(2, "mandate.usage", `${file} must hold a JSON object`);
  }
  return parsed as JsonObject;
}

function printProvider(options: TenantOptions, provider: IdentityProvider | undefined): void {
  print(options, provider && toJson(IdentityProviderSchema, provider), () => (provider ? describe(provider) : ""));
}

function describe(p: IdentityProvider): string {
  const time = (t: IdentityProvider["createTime"]) => (t ? timestampDate(t).toISOString() : "");
  return [
    `id             ${p.id}`,
    `kind           ${p.kind}`,
    `name           ${p.displayName}`,
    `enabled        ${p.enabled ? "yes" : "no"}`,
    `email domains  ${p.emailDomains.join(", ") || "(none)"}`,
    `settings       ${JSON.stringify(p.settings ?? {})}`,
    `sealed         ${p.sealedFields.join(", ") || "(none)"}`,
    `claim mapping  ${JSON.stringify(p.claimMapping ?? {})}`,
    `created        ${time(p.createTime)}`,
    `updated        ${time(p.updateTime)}`,
  ].join("\n");
}
