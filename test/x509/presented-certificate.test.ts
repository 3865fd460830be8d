// presentedCertificate on real servers: node:https with requestCert (clients presenting openssl-made
// certificates, with and without their chain) and node:http behind a "proxy" whose header is believed
// only from a configured address (the test client is 127.0.0.1; 10.0.0.0/8 excludes it).
import { X509Certificate } from "node:crypto";
import { createServer as createHttpServer, request as httpRequest, type IncomingMessage, type Server } from "node:http";
import { createServer as createHttpsServer, request as httpsRequest } from "node:https";
import { Writable } from "node:stream";
import fc from "fast-check";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  addressInRanges,
  type PresentedCertificateOptions,
  parseClientCertHeaders,
  parseXfcc,
  presentedCertificate,
} from "../../services/shared/x509/presented-certificate.ts";
import { CertificateRefused, type PresentedCertificate } from "../../services/shared/x509/types.ts";
import { intermediateCa, leafCertificate, type PkiCertificate, pemChain, rootCa } from "../helpers/openssl-pki.ts";
import { listen } from "../helpers/tls.ts";

const AGENT = "spiffe://acme.agents.mandate.local/agent/agent-1";

let root: PkiCertificate;
let intermediate: PkiCertificate;
let leaf: PkiCertificate;
let https: Server;
let http: Server;
let httpsPort: number;
let httpPort: number;
let options: PresentedCertificateOptions = { header: "none", proxies: [] };
const logged: string[] = [];
const logger = pino(
  { level: "debug" },
  new Writable({
    write(chunk, _encoding, done) {
      logged.push(String(chunk));
      done();
    },
  }),
);

type Answer = { presented?: { source: string; leaf: string; chain: string[] }; refused?: string; none?: true };

function answer(req: IncomingMessage): Answer {
  try {
    const presented = presentedCertificate(req, options, logger);
    if (!presented) return { none: true };
    const b64 = (der: Uint8Array) => Buffer.from(der).toString("base64");
    return { presented: { source: presented.source, leaf: b64(presented.leaf), chain: presented.chain.map(b64) } };
  } catch (error) {
    if (error instanceof CertificateRefused) return { refused: `${error.reason}: ${error.message}` };
    throw error;
  }
}

function handler(req: IncomingMessage, res: import("node:http").ServerResponse): void {
  res.setHeader("content-type", "application/json");
  res.end(JSON.stringify(answer(req)));
}

beforeAll(async () => {
  root = rootCa();
  intermediate = intermediateCa(root);
  leaf = leafCertificate(intermediate, { uris: [AGENT] });
  const server = leafCertificate(root, { ipAddresses: ["127.0.0.1"], extendedKeyUsage: ["serverAuth"] });
  https = createHttpsServer(
    { key: server.keyPem, cert: server.pem, requestCert: true, rejectUnauthorized: false },
    handler,
  );
  http = createHttpServer(handler);
  httpsPort = await listen(https);
  httpPort = await listen(http);
});

afterAll(() => {
  https.closeAllConnections();
  https.close();
  http.close();
});

function overTls(client: { key?: string; cert?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host: "127.0.0.1", port: httpsPort, path: "/", ca: root.pem, agent: false, ...client },
      (res) => collect(res, resolve, reject),
    );
    req.on("error", reject).end();
  });
}

function overHttp(headers: Record<string, string>): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: "127.0.0.1", port: httpPort, path: "/", headers, agent: false }, (res) =>
      collect(res, resolve, reject),
    );
    req.on("error", reject).end();
  });
}

function collect(res: IncomingMessage, resolve: (a: Answer) => void, reject: (e: Error) => void): void {
  let body = "";
  res.on("data", (chunk) => {
    body += chunk;
  });
  res.on("end", () => (res.statusCode === 200 ? resolve(JSON.parse(body) as Answer) : reject(new Error(body))));
}

const b64 = (c: PkiCertificate) => Buffer.from(c.der).toString("base64");
const clientCert = (...chain: PkiCertificate[]) => `:${b64(chain[0] as PkiCertificate)}:`;
const xfccPem = (pem: string) => encodeURIComponent(pem);

describe("from the TLS handshake (node:https, requestCert, any certificate accepted)", () => {
  it("no certificate: undefined", async () => {
    options = { header: "none", proxies: [] };
    expect(await overTls()).toEqual({ none: true });
  });

  it("the leaf alone, and the leaf with its chain (the self-signed root ends the walk)", async () => {
    options = { header: "none", proxies: [] };
    const alone = await overTls({ key: leaf.keyPem, cert: leaf.pem });
    expect(alone.presented?.source).toBe("tls");
    expect(alone.presented?.leaf).toBe(b64(leaf));
    expect(alone.presented?.chain).toEqual([]);
    const withIntermediate = await overTls({ key: leaf.keyPem, cert: pemChain(leaf, intermediate) });
    expect(withIntermediate.presented?.chain).toEqual([b64(intermediate)]);
    const withRoot = await overTls({ key: leaf.keyPem, cert: pemChain(leaf, intermediate, root) });
    expect(withRoot.presented?.chain).toEqual([b64(intermediate), b64(root)]);
  });

  it("an untrusted, expired certificate is still presented: verifying it is certificate-chain.ts's job", async () => {
    options = { header: "none", proxies: [] };
    const foreign = leafCertificate(rootCa(), {
      keyType: "ed25519",
      notBefore: new Date(Date.now() - 2 * 86_400_000),
      notAfter: new Date(Date.now() - 86_400_000),
    });
    const answered = await overTls({ key: foreign.keyPem, cert: foreign.pem });
    expect(answered.presented?.leaf).toBe(b64(foreign));
  });

  it("a configured proxy's header wins over its own TLS certificate; anyone else's header is ignored", async () => {
    const other = leafCertificate(intermediate, { uris: [AGENT] });
    options = { header: "client-cert", proxies: ["127.0.0.1"] };
    const viaProxy = await overTls({ key: leaf.keyPem, cert: leaf.pem, headers: { "client-cert": clientCert(other) } });
    expect(viaProxy.presented).toMatchObject({ source: "client-cert-header", leaf: b64(other) });
    const noHeader = await overTls({ key: leaf.keyPem, cert: leaf.pem });
    expect(noHeader.presented).toMatchObject({ source: "tls", leaf: b64(leaf) });
    options = { header: "client-cert", proxies: ["10.0.0.0/8"] };
    const direct = await overTls({ key: leaf.keyPem, cert: leaf.pem, headers: { "client-cert": clientCert(other) } });
    expect(direct.presented).toMatchObject({ source: "tls", leaf: b64(leaf) });
  });
});

describe("RFC 9440 Client-Cert from a configured proxy", () => {
  it("believed from 127.0.0.1 when it is a configured proxy (address or range)", async () => {
    for (const proxies of [["127.0.0.1"], ["127.0.0.0/8"], ["10.0.0.0/8", "127.0.0.1/32"]]) {
      options = { header: "client-cert", proxies };
      const answered = await overTls({ headers: { "client-cert": clientCert(leaf) } });
      expect(answered.presented).toEqual({ source: "client-cert-header", leaf: b64(leaf), chain: [] });
    }
    options = { header: "client-cert", proxies: ["127.0.0.1"] };
    const chained = await overHttp({
      "client-cert": `:${b64(leaf)}:`,
      "client-cert-chain": `:${b64(intermediate)}:, :${b64(root)}:`,
    });
    expect(chained.presented?.chain).toEqual([b64(intermediate), b64(root)]);
  });

  it("ignored (and logged at debug) from any other address", async () => {
    options = { header: "client-cert", proxies: ["10.0.0.0/8"] };
    logged.length = 0;
    expect(await overHttp({ "client-cert": clientCert(leaf) })).toEqual({ none: true });
    expect(logged.join("")).toContain("not from a configured proxy");
    options = { header: "client-cert", proxies: [] };
    expect(await overHttp({ "client-cert": clientCert(leaf) })).toEqual({ none: true });
    // Not parsed either: garbage from an untrusted address is not an error, only ignored.
    expect(await overHttp({ "client-cert": "garbage" })).toEqual({ none: true });
  });

  it("ignored when the header mode is none or names the other header", async () => {
    options = { header: "none", proxies: ["127.0.0.1"] };
    expect(await overHttp({ "client-cert": clientCert(leaf) })).toEqual({ none: true });
    options = { header: "x-forwarded-client-cert", proxies: ["127.0.0.1"] };
    expect(await overHttp({ "client-cert": clientCert(leaf) })).toEqual({ none: true });
  });

  it("malformed from a trusted proxy: CertificateRefused malformed", async () => {
    options = { header: "client-cert", proxies: ["127.0.0.1"] };
    const cases: Record<string, string>[] = [
      { "client-cert": b64(leaf) }, // not a Byte Sequence (no colons)
      { "client-cert": ":not base64!:" },
      { "client-cert": "::" },
      { "client-cert": `:${Buffer.from("not a certificate").toString("base64")}:` },
      { "client-cert": `:${b64(leaf)}:, :${b64(leaf)}:` }, // two values (RFC 9440 §2.2: one)
      { "client-cert-chain": `:${b64(intermediate)}:` }, // a chain without a certificate
      { "client-cert": clientCert(leaf), "client-cert-chain": `:${b64(intermediate)}:, garbage` },
    ];
    for (const headers of cases) {
      const answered = await overHttp(headers);
      expect(answered.refused, JSON.stringify(headers)).toMatch(/^malformed: /);
    }
  });
});

describe("Envoy X-Forwarded-Client-Cert from a configured proxy", () => {
  const element = (cert: PkiCertificate, chain?: string) =>
    `By=spiffe://acme/edge;Hash=abc123;Cert="${xfccPem(cert.pem)}"${chain ? `;Chain="${xfccPem(chain)}"` : ""};Subject="CN=agent, O=Acme \\"Inc\\"";URI=${AGENT};DNS=a.example;DNS=b.example`;

  it("the nearest (last) element's Cert, and its Chain without the leaf", async () => {
    options = { header: "x-forwarded-client-cert", proxies: ["127.0.0.0/8"] };
    const earlier = leafCertificate(intermediate, { uris: [AGENT] });
    const answered = await overHttp({
      "x-forwarded-client-cert": `${element(earlier)},${element(leaf, pemChain(leaf, intermediate))}`,
    });
    expect(answered.presented).toEqual({ source: "xfcc-header", leaf: b64(leaf), chain: [b64(intermediate)] });
  });

  it("ignored from any other address", async () => {
    options = { header: "x-forwarded-client-cert", proxies: ["10.0.0.0/8", "fd00::/8"] };
    expect(await overHttp({ "x-forwarded-client-cert": element(leaf) })).toEqual({ none: true });
  });

  it("malformed from a trusted proxy", async () => {
    options = { header: "x-forwarded-client-cert", proxies: ["127.0.0.1"] };
    const pem = xfccPem(leaf.pem);
    const cases = [
      "By=spiffe://acme/edge;Hash=abc", // no Cert
      `Cert="${pem}`, // unclosed quote
      `Cert="${pem}"x`, // text after the quoted value
      `Cert=${pem};Cert=${pem}`, // Cert twice
      `Cert="%E0%A4%A"`, // not URL-encoding
      `Cert="${xfccPem(pemChain(leaf, intermediate))}"`, // two certificates in Cert
      `Cert="${xfccPem("hello")}"`, // not PEM
      `Cert="${xfccPem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")}"`, // PEM, not X.509
      `Cert="${pem}";Chain="${xfccPem("junk")}"`,
      `Cert="${pem}",`, // an empty element
      "just text",
      "",
    ];
    for (const header of cases) {
      const answered = await overHttp({ "x-forwarded-client-cert": header });
      expect(answered.refused, header.slice(0, 60)).toMatch(/^malformed: /);
    }
  });
});

describe("header parsers never throw anything but CertificateRefused", () => {
  const onlyRefusals = (parse: () => PresentedCertificate) => {
    try {
      parse();
    } catch (error) {
      if (!(error instanceof CertificateRefused)) throw error;
      expect(error.reason).toBe("malformed");
    }
  };

  it("Client-Cert and Client-Cert-Chain", () => {
    const valid = `:${b64(leaf)}:`;
    const values = fc.oneof(
      fc.string(),
      fc.constant(valid),
      fc.string().map((s) => `:${s}:`),
      fc.base64String().map((s) => `:${s}:`),
    );
    fc.assert(
      fc.property(fc.option(values, { nil: undefined }), fc.option(values, { nil: undefined }), (value, chain) =>
        onlyRefusals(() => parseClientCertHeaders(value, chain)),
      ),
    );
  });

  it("X-Forwarded-Client-Cert", () => {
    const pieces = fc.constantFrom(
      '"',
      "\\",
      ",",
      ";",
      "=",
      "Cert=",
      "Chain=",
      " ",
      `"${xfccPem(leaf.pem)}"`,
      "%",
      "%ZZ",
    );
    const headers = fc.oneof(
      fc.string(),
      fc.array(fc.oneof(pieces, fc.string()), { maxLength: 12 }).map((p) => p.join("")),
    );
    fc.assert(fc.property(headers, (header) => onlyRefusals(() => parseXfcc(header))));
  });

  it("what a parser accepts are certificates", () => {
    const parsed = parseXfcc(`Hash=x;Cert=${xfccPem(leaf.pem)}`);
    expect(new X509Certificate(parsed.leaf).serialNumber.toUpperCase()).toBe(leaf.serial);
  });
});

describe("addressInRanges", () => {
  it("matches addresses and CIDR ranges of either family, IPv4-mapped IPv6 as IPv4", () => {
    expect(addressInRanges("127.0.0.1", ["127.0.0.1"])).toBe(true);
    expect(addressInRanges("::ffff:127.0.0.1", ["127.0.0.0/8"])).toBe(true);
    expect(addressInRanges("10.1.2.3", ["10.0.0.0/8"])).toBe(true);
    expect(addressInRanges("11.1.2.3", ["10.0.0.0/8"])).toBe(false);
    expect(addressInRanges("fd00::1", ["fd00::/8"])).toBe(true);
    expect(addressInRanges("fe80::1", ["fd00::/8", "10.0.0.0/8"])).toBe(false);
    expect(addressInRanges("127.0.0.1", [])).toBe(false);
    expect(addressInRanges("", ["0.0.0.0/0"])).toBe(false);
    expect(addressInRanges("not an ip", ["0.0.0.0/0"])).toBe(false);
    expect(addressInRanges("127.0.0.1", ["not a range"])).toBe(false);
  });
});
