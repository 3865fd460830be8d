// One autocannon run (bench/http-load.ts), in its own process, whose every request carries a fresh
// DPoP proof (RFC 9449 §4.2: jti, htm, htu, iat; ES256) signed synchronously as the request is
// set up. Prints autocannon's result as JSON, like `autocannon --json`.
//   node bench/load-worker.ts '{"url":...,"headers":{...},"body":"...","dpopKey":{JWK},"seconds":8,"connections":16}'
import { createPrivateKey, createPublicKey, randomUUID, sign } from "node:crypto";
import autocannon from "autocannon";

const config = JSON.parse(process.argv[2] ?? "{}") as {
  url: string;
  headers: Record<string, string>;
  body: string;
  dpopKey: Record<string, unknown>;
  seconds: number;
  connections: number;
};
const key = createPrivateKey({ key: config.dpopKey, format: "jwk" });
const { kty, crv, x, y } = createPublicKey(key).export({ format: "jwk" });
const header = Buffer.from(JSON.stringify({ typ: "dpop+jwt", alg: "ES256", jwk: { kty, crv, x, y } })).toString(
  "base64url",
);
const htu = config.url.split("?")[0];

function proof(): string {
  const claims = { jti: randomUUID(), htm: "POST", htu, iat: Math.floor(Date.now() / 1000) };
  const input = `${header}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}`;
  const signature = sign("sha256", Buffer.from(input), { key, dsaEncoding: "ieee-p1363" });
  return `${input}.${signature.toString("base64url")}`;
}

const result = await autocannon({
  url: config.url,
  connections: config.connections,
  duration: config.seconds,
  requests: [
    {
      method: "POST",
      headers: config.headers,
      body: config.body,
      setupRequest: (request) => ({ ...request, headers: { ...request.headers, dpop: proof() } }),
    },
  ],
});
process.stdout.write(JSON.stringify(result));
