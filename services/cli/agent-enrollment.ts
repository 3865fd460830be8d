// The agent's side of certificate enrollment (issue 17): `mandate agents enroll` and `mandate agents
// renew`. The private key stays on this machine (read from disk, or generated there with mode 0600);
// only a CSR (PKCS#10, built with @peculiar/x509, signed by the key) goes to the issuer, with a
// one-time enrollment token, a workload attestation, or — for renewal — the current certificate
// presented over mutual TLS. @peculiar/x509 is loaded on use (it needs the reflect-metadata polyfill).
import { createPrivateKey, createPublicKey, type KeyObject, webcrypto } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { type Command, CommanderError, Option } from "commander";
import { command, print } from "./common.ts";

type KeyKind = "ec" | "rsa" | "ed25519";

interface AgentTlsOptions {
  issuer: string;
  key: string;
  caFile?: string;
  json?: boolean;
}

interface EnrollOptions extends AgentTlsOptions {
  token?: string;
  attestationFile?: string;
  generateKey?: KeyKind;
  out: string;
}

interface RenewOptions extends AgentTlsOptions {
  cert: string;
  out?: string;
  mtlsUrl?: string;
}

/** The issuer's answer to an enrollment or renewal (services/issue/agents/http.ts). */
interface Enrolled {
  spiffe_id: string;
  serial: string;
  not_after: string;
  certificate: string;
  chain: string;
  renewal_endpoint: string;
}

/** What to do about each error the issuer answers with. */
const HINTS: Record<string, string> = {
  invalid_grant:
    "ask an administrator for a new enrollment token (`mandate agents enrollment-token <client-id>`): tokens work once and expire",
  access_denied:
    "the agent or its certificate was revoked or deleted; an administrator must create a new enrollment token",
  invalid_request: "fix the request as described (key type and size: EC P-256/P-384, Ed25519, RSA 2048-8192)",
  temporarily_unavailable: "the issuer's certificate authority is unavailable: retry shortly",
  slow_down: "too many failed attempts from this address: wait and retry",
};

export function enrollCommand(): Command {
  return command("enroll", "enroll this machine's agent key: get a certificate (X.509-SVID) from the issuer")
    .requiredOption("--issuer <url>", "the tenant's issuer URL, e.g. https://mandate.example/t/acme")
    .addOption(
      new Option("--token <token>", "the one-time enrollment token an administrator created").conflicts(
        "attestationFile",
      ),
    )
    .option("--attestation-file <file>", "a workload platform's signed JWT (e.g. a Kubernetes service-account token)")
    .requiredOption("--key <file>", "the agent's private key (PEM); never sent anywhere")
    .addOption(
      new Option("--generate-key <type>", "generate the key into --key first (mode 0600)").choices([
        "ec",
        "rsa",
        "ed25519",
      ]),
    )
    .requiredOption("--out <file>", "where to write the certificate and its chain (PEM)")
    .option("--ca-file <file>", "CA certificates (PEM) that verify the issuer's TLS certificate")
    .option("--json", "print as JSON")
    .action(async (options: EnrollOptions) => {
      if (!options.token && !options.attestationFile) {
        throw new CommanderError(2, "mandate.usage", "give --token (an enrollment token) or --attestation-file");
      }
      const key = await agentKey(options.key, options.generateKey);
      const body = {
        csr: await certificationRequest(key),
        ...(options.token ? { enrollment_token: options.token } : {}),
        ...(options.attestationFile ? { attestation: readText(options.attestationFile, "attestation").trim() } : {}),
      };
      const enrolled = await postJson(`${issuerBase(options.issuer)}/agents/enroll`, body, tlsOf(options));
      writeCertificate(options.out, enrolled);
      report(options, enrolled, options.out);
    });
}

export function renewCommand(): Command {
  return command("renew", "renew the agent's certificate over mutual TLS with the current one (same key)")
    .requiredOption("--issuer <url>", "the tenant's issuer URL, e.g. https://mandate.example/t/acme")
    .requiredOption("--key <file>", "the agent's private key (PEM)")
    .requiredOption("--cert <file>", "the current certificate and chain (PEM), as `enroll` wrote it")
    .option("--out <file>", "where to write the new certificate (default: replace --cert)")
    .option(
      "--mtls-url <url>",
      "base URL of the issuer's mTLS listener (http.mtls.publicUrl), when it is not the issuer's own host",
    )
    .option("--ca-file <file>", "CA certificates (PEM) that verify the server's TLS certificate")
    .option("--json", "print as JSON")
    .action(async (options: RenewOptions) => {
      const key = await agentKey(options.key, undefined);
      const url = await renewalUrl(options);
      if (!url.startsWith("https:")) {
        throw new CommanderError(
          2,
          "mandate.usage",
          `renewal presents the certificate over TLS: ${url} is not https (give --mtls-url)`,
        );
      }
      const tls = { ...tlsOf(options), cert: readText(options.cert, "certificate"), key: readText(options.key, "key") };
      const enrolled = await postJson(url, { csr: await certificationRequest(key) }, tls);
      const out = options.out ?? options.cert;
      writeCertificate(out, enrolled);
      report(options, enrolled, out);
    });
}

/** The issuer URL without a trailing slash; a usage error unless it is http(s). */
function issuerBase(issuer: string): string {
  let url: URL;
  try {
    url = new URL(issuer);
  } catch {
    throw new CommanderError(
      2,
      "mandate.usage",
      `--issuer ${issuer} is not a URL (e.g. https://mandate.example/t/acme)`,
    );
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new CommanderError(2, "mandate.usage", "--issuer must be an https (or local http) URL");
  }
  return issuer.replace(/\/+$/, "");
}

/**
 * The renewal endpoint: on the mTLS listener given, or else the one the issuer's metadata announces
 * (RFC 8705 §5 mtls_endpoint_aliases, beside the token endpoint's alias), or else the issuer's own.
 */
async function renewalUrl(options: RenewOptions): Promise<string> {
  const issuer = issuerBase(options.issuer);
  if (!options.mtlsUrl) return (await announcedRenewalUrl(issuer)) ?? `${issuer}/agents/renew`;
  const path = new URL(issuer).pathname; // /t/<tenant>
  return `${options.mtlsUrl.replace(/\/+$/, "")}${path}/agents/renew`;
}

/** The renewal endpoint beside the token endpoint's mTLS alias in a plain-HTTP issuer's metadata, if any. */
async function announcedRenewalUrl(issuer: string): Promise<string | undefined> {
  // An https issuer is reached with --ca-file's trust, which the metadata fetch would not use: say --mtls-url there.
  if (!issuer.startsWith("http:")) return undefined;
  try {
    const response = await fetch(`${issuer}/.well-known/oauth-authorization-server`);
    if (!response.ok) return undefined;
    const metadata = (await response.json()) as { mtls_endpoint_aliases?: { token_endpoint?: unknown } };
    const alias = metadata.mtls_endpoint_aliases?.token_endpoint;
    return typeof alias === "string" ? alias.replace(/\/oauth2\/token$/, "/agents/renew") : undefined;
  } catch {
    return undefined;
  }
}

function tlsOf(options: AgentTlsOptions): { ca?: string } {
  return options.caFile ? { ca: readText(options.caFile, "CA file") } : {};
}

function readText(file: string, what: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (error) {
    throw new CommanderError(2, "mandate.usage", `cannot read the ${what} ${file}: ${(error as Error).message}`);
  }
}

/** The agent's key from disk, generated there first with --generate-key (never overwriting one). */
async function agentKey(file: string, generate: KeyKind | undefined): Promise<KeyObject> {
  if (generate) {
    if (existsSync(file)) {
      throw new CommanderError(
        2,
        "mandate.usage",
        `${file} exists: drop --generate-key to use that key, or choose another file`,
      );
    }
    const key = await generatedKey(generate);
    // "wx": never replaces a file that appeared meanwhile; 0600: the key is the agent's identity.
    writeFileSync(file, key.export({ type: "pkcs8", format: "pem" }) as string, { mode: 0o600, flag: "wx" });
    return key;
  }
  try {
    return createPrivateKey(readText(file, "key"));
  } catch (error) {
    if (error instanceof CommanderError) throw error;
    throw new CommanderError(2, "mandate.usage", `${file} is not a PEM private key (use --generate-key to make one)`);
  }
}

async function generatedKey(kind: KeyKind): Promise<KeyObject> {
  const { generateKeyPairSync } = await import("node:crypto");
  if (kind === "ec") return generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey;
  if (kind === "rsa") return generateKeyPairSync("rsa", { modulusLength: 3072 }).privateKey;
  return generateKeyPairSync("ed25519").privateKey;
}

/** The WebCrypto algorithm for the key's type: what the CSR's signature uses (RFC 2986 §3). */
function signingAlgorithm(key: KeyObject): (EcKeyImportParams & EcdsaParams) | RsaHashedImportParams | Algorithm {
  const type = key.asymmetricKeyType;
  const details = key.asymmetricKeyDetails ?? {};
  if (type === "ec") {
    const curve = { prime256v1: "P-256", secp384r1: "P-384" }[details.namedCurve ?? ""];
    if (!curve)
      throw new CommanderError(2, "mandate.usage", `EC keys must be on P-256 or P-384, not ${details.namedCurve}`);
    return { name: "ECDSA", namedCurve: curve, hash: curve === "P-384" ? "SHA-384" : "SHA-256" };
  }
  if (type === "rsa") return { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" };
  if (type === "ed25519") return { name: "Ed25519" };
  throw new CommanderError(2, "mandate.usage", `${type} keys cannot be enrolled: use EC P-256/P-384, Ed25519 or RSA`);
}

/** A PKCS#10 request for the key, signed by it. Its subject is a placeholder: the issuer takes only the key. */
async function certificationRequest(key: KeyObject): Promise<string> {
  await import("reflect-metadata");
  const x509 = await import("@peculiar/x509");
  x509.cryptoProvider.set(webcrypto as unknown as Crypto);
  const algorithm = signingAlgorithm(key);
  const privateKey = await webcrypto.subtle.importKey(
    "pkcs8",
    key.export({ type: "pkcs8", format: "der" }),
    algorithm,
    false,
    ["sign"],
  );
  const publicKey = await webcrypto.subtle.importKey(
    "spki",
    createPublicKey(key).export({ type: "spki", format: "der" }),
    algorithm,
    true,
    ["verify"],
  );
  const request = await x509.Pkcs10CertificateRequestGenerator.create({
    name: "CN=mandate agent",
    keys: { privateKey, publicKey } as unknown as CryptoKeyPair,
    signingAlgorithm: algorithm,
  });
  return request.toString("pem");
}

/** POSTs JSON over HTTP(S) (the client certificate in `tls` for renewal); the issuer's answer or its error, explained. */
function postJson(url: string, body: unknown, tls: { ca?: string; cert?: string; key?: string }): Promise<Enrolled> {
  const payload = JSON.stringify(body);
  const request = url.startsWith("https:") ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: "POST",
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(payload) },
        ...(url.startsWith("https:") ? tls : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => {
          try {
            resolve(answer(url, res.statusCode ?? 0, Buffer.concat(chunks).toString("utf8")));
          } catch (error) {
            reject(error);
          }
        });
      },
    );
    req.on("error", (error) =>
      reject(new Error(`cannot reach ${url}: ${error.message} (check --issuer, --mtls-url and --ca-file)`)),
    );
    req.end(payload);
  });
}

function answer(url: string, status: number, text: string): Enrolled {
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new Error(`${url} answered ${status} without JSON: is --issuer a Mandate tenant's issuer URL?`);
  }
  if (status === 200 && typeof body.certificate === "string") return body as unknown as Enrolled;
  const error = String(body.error ?? `HTTP ${status}`);
  const hint = HINTS[error];
  throw new Error(`${error}: ${String(body.error_description ?? "")}${hint ? `\n(${hint})` : ""}`);
}

/** The certificate then its chain, as a TLS client sends them. */
function writeCertificate(file: string, enrolled: Enrolled): void {
  writeFileSync(file, enrolled.certificate + enrolled.chain, { mode: 0o644 });
}

function report(options: { json?: boolean }, enrolled: Enrolled, out: string): void {
  const summary = {
    spiffeId: enrolled.spiffe_id,
    serial: enrolled.serial,
    notAfter: enrolled.not_after,
    certificateFile: out,
    renewalEndpoint: enrolled.renewal_endpoint,
  };
  print(options, summary, () =>
    [
      `spiffe_id   ${enrolled.spiffe_id}`,
      `serial      ${enrolled.serial}`,
      `not_after   ${enrolled.not_after}   (renew before: \`mandate agents renew\`)`,
      `written     ${out} (certificate and chain)`,
      `renew at    ${enrolled.renewal_endpoint}`,
    ].join("\n"),
  );
}
