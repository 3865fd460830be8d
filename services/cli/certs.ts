// `mandate certs dev-ca`: a local CA and one certificate per Mandate service (and the edge), to try
// split mode with mTLS. Production takes certificates from cert-manager or SPIRE; these follow the
// same shape: the service's SPIFFE ID as the only URI SAN, client and server use, P-256 keys.
// Built with @peculiar/x509 over WebCrypto, never by hand-assembled DER; loaded on use (it needs the
// reflect-metadata polyfill, which no other command should pay for).
import { webcrypto } from "node:crypto";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { type Command, CommanderError, Option } from "commander";
import { SERVICE_IDENTITIES, spiffeId } from "../shared/rpc/mtls.ts";

type Print = (options: { json?: boolean }, data: unknown, human: () => string) => void;

const ALGORITHM = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
const DAY_MS = 86_400_000;

export interface DevCa {
  dir: string;
  trustDomain: string;
  ca: string;
  services: Record<string, { cert: string; key: string; spiffeId: string }>;
}

/** Writes ca.pem (+ ca-key.pem) and <service>.pem / <service>-key.pem for every Mandate identity. */
export async function makeDevCa(dir: string, trustDomain: string, validDays = 90): Promise<DevCa> {
  await import("reflect-metadata");
  const x509 = await import("@peculiar/x509");
  x509.cryptoProvider.set(webcrypto as unknown as Crypto);
  const subtle = webcrypto.subtle;
  const notBefore = new Date(Date.now() - 60_000);
  const notAfter = new Date(Date.now() + validDays * DAY_MS);
  const caKeys = (await subtle.generateKey(ALGORITHM, true, ["sign", "verify"])) as CryptoKeyPair;
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    name: `CN=Mandate development CA (${trustDomain})`,
    notBefore,
    notAfter,
    keys: caKeys,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const write = (name: string, text: string, secret = false) => {
    const path = join(dir, name);
    writeFileSync(path, text, { mode: secret ? 0o600 : 0o644 });
    return path;
  };
  const keyPem = async (key: CryptoKey) =>
    x509.PemConverter.encode(await subtle.exportKey("pkcs8", key), "PRIVATE KEY");
  const result: DevCa = { dir, trustDomain, ca: write("ca.pem", ca.toString("pem")), services: {} };
  write("ca-key.pem", await keyPem(caKeys.privateKey), true);
  for (const service of SERVICE_IDENTITIES) {
    const keys = (await subtle.generateKey(ALGORITHM, true, ["sign", "verify"])) as CryptoKeyPair;
    const id = spiffeId(trustDomain, service);
    const certificate = await x509.X509CertificateGenerator.create({
      subject: `CN=mandate-${service}`,
      issuer: ca.subject,
      notBefore,
      notAfter,
      publicKey: keys.publicKey,
      signingKey: caKeys.privateKey,
      signingAlgorithm: ALGORITHM,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
        // SPIFFE X.509-SVID §2: the SPIFFE ID is the only URI SAN; DNS/IP names serve other clients (the CLI).
        new x509.SubjectAlternativeNameExtension([
          { type: "url", value: id },
          // Names other clients (the CLI, grpcurl) check: the compose service name, loopback.
          { type: "dns", value: service },
          { type: "dns", value: `mandate-${service}` },
          { type: "dns", value: "localhost" },
          { type: "ip", value: "127.0.0.1" },
        ]),
        await x509.AuthorityKeyIdentifierExtension.create(caKeys.publicKey),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    result.services[service] = {
      cert: write(`${service}.pem`, certificate.toString("pem")),
      key: write(`${service}-key.pem`, await keyPem(keys.privateKey), true),
      spiffeId: id,
    };
  }
  return result;
}

export function certsCommand(command: (name: string, description: string) => Command, print: Print): Command {
  const certs = command("certs", "certificates for service-to-service mTLS (split mode)");
  certs.addCommand(
    command("dev-ca", "make a local CA and a certificate per service and the edge, for trying split mode with mTLS")
      .requiredOption("-o, --out <dir>", "directory to write (PEM files; keys mode 0600)")
      .addOption(
        new Option("--trust-domain <domain>", "SPIFFE trust domain (tls.trustDomain)").default("mandate.local"),
      )
      .option("--days <n>", "validity in days", "90")
      .option("--if-missing", "do nothing when the directory already holds a CA (ca.pem), e.g. in a one-shot container")
      .option("--json", "print the files as JSON")
      .action(
        async (options: { out: string; trustDomain: string; days: string; ifMissing?: boolean; json?: boolean }) => {
          if (options.ifMissing && existsSync(join(resolve(options.out), "ca.pem"))) {
            print(
              options,
              { dir: resolve(options.out), created: false },
              () => `${resolve(options.out)} already holds a CA: kept`,
            );
            return;
          }
          const days = Number(options.days);
          if (!Number.isInteger(days) || days < 1 || days > 825) {
            throw new CommanderError(2, "mandate.usage", "--days must be a whole number from 1 to 825");
          }
          if (!/^[a-z0-9._-]+$/.test(options.trustDomain)) {
            throw new CommanderError(2, "mandate.usage", "--trust-domain must be a DNS-like name, e.g. mandate.local");
          }
          const made = await makeDevCa(resolve(options.out), options.trustDomain, days);
          print(options, made, () =>
            [
              `wrote a CA and ${Object.keys(made.services).length} service certificates to ${made.dir}`,
              "run each process with its own certificate, e.g. the Signer:",
              `  MANDATE_TLS_CA_FILE=${made.ca} MANDATE_TLS_CERT_FILE=${made.services.signer?.cert} \\`,
              `  MANDATE_TLS_KEY_FILE=${made.services.signer?.key} MANDATE_TLS_TRUST_DOMAIN=${made.trustDomain} mandate serve signer`,
            ].join("\n"),
          );
        },
      ),
  );
  return certs;
}
