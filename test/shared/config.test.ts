import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  ConfigError,
  ENV_BINDINGS,
  loadConfig,
  redactConfig,
  signerTiming,
  withHttpPort,
} from "../../services/shared/config.ts";

function file(contents: string): string {
  const path = join(mkdtempSync(join(tmpdir(), "mandate-config-")), "mandate.yaml");
  writeFileSync(path, contents);
  return path;
}

function problems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (error) {
    if (error instanceof ConfigError) return [...error.problems];
    throw error;
  }
  throw new Error("expected a ConfigError");
}

describe("config", () => {
  it("has embedded defaults", () => {
    const config = loadConfig({ env: {} });
    expect(config.http.port).toBe(4460);
    expect(config.grpc.port).toBe(4461);
    expect(config.database.url).toBe("sqlite:.mandate/mandate.db");
    expect(config.telemetry.otlpEndpoint).toBeUndefined();
    expect(config.publicBaseUrl).toBe("http://127.0.0.1:4460");
    expect(config.api.audience).toBe(config.publicBaseUrl);
    expect(config.admin.credentialsFile).toBe(".mandate/admin.json");
  });

  it("moves the issuers with the edge's port unless the public base URL is set", () => {
    const moved = loadConfig({ env: { MANDATE_HTTP_PORT: "6460" } });
    expect(moved.publicBaseUrl).toBe("http://127.0.0.1:6460");
    expect(moved.api.audience).toBe("http://127.0.0.1:6460");
    expect(loadConfig({ env: { MANDATE_HTTP_HOST: "0.0.0.0", MANDATE_HTTP_PORT: "7000" } }).publicBaseUrl).toBe(
      "http://127.0.0.1:7000",
    );
    const pinned = loadConfig({
      env: { MANDATE_HTTP_PORT: "6460", MANDATE_PUBLIC_BASE_URL: "https://mandate.example.com/" },
    });
    expect(pinned.publicBaseUrl).toBe("https://mandate.example.com");
    // Port 0: the port picked at start replaces the derived values, never the explicit ones.
    expect(withHttpPort(loadConfig({ env: { MANDATE_HTTP_PORT: "0" } }), 5555).publicBaseUrl).toBe(
      "http://127.0.0.1:5555",
    );
    expect(withHttpPort(pinned, 5555).publicBaseUrl).toBe("https://mandate.example.com");
  });

  it("reads the file, then lets the environment and the command line win", () => {
    const path = file("grpc:\n  port: 5000\nhttp:\n  port: 5001\nlog:\n  level: debug\n");
    const config = loadConfig({ file: path, env: { MANDATE_GRPC_PORT: "6000" }, overrides: { "http.port": "7000" } });
    expect(config.grpc.port).toBe(6000);
    expect(config.http.port).toBe(7000);
    expect(config.log.level).toBe("debug");
  });

  it("maps service addresses and CORS origins from the environment", () => {
    const config = loadConfig({
      env: { MANDATE_SIGNER_ADDRESS: "signer:4461", MANDATE_HTTP_CORS_ORIGINS: "https://a.example, https://b.example" },
    });
    expect(config.services.signer).toBe("signer:4461");
    expect(config.http.corsOrigins).toEqual(["https://a.example", "https://b.example"]);
  });

  it("reports every bad value by key, with its source and what is expected", () => {
    const path = file("grpc:\n  port: 99999\nunknownKey: 1\n");
    const found = problems(() =>
      loadConfig({
        file: path,
        env: { MANDATE_HTTP_PORT: "abc", MANDATE_LOG_LEVEL: "loud", MANDATE_AUDIT_ADDRESS: "nope" },
      }),
    );
    expect(found).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^grpc\.port \(from file .*\): .*99999/),
        expect.stringMatching(/^http\.port \(from env MANDATE_HTTP_PORT\): .*"abc"/),
        expect.stringMatching(/^log\.level \(from env MANDATE_LOG_LEVEL\): .*"loud"/),
        expect.stringMatching(/^services\.audit \(from env MANDATE_AUDIT_ADDRESS\): expected host:port/),
        expect.stringMatching(/unknownKey/),
      ]),
    );
  });

  it("never prints a database password", () => {
    const url = "postgres://mandate:hunter2@db:5432/mandate";
    const config = loadConfig({ env: { MANDATE_DATABASE_URL: url } });
    expect(JSON.stringify(redactConfig(config))).not.toContain("hunter2");
    const found = problems(() => loadConfig({ env: { MANDATE_DATABASE_URL: url, MANDATE_DATABASE_POOL_SIZE: "-1" } }));
    expect(found.join("\n")).not.toContain("hunter2");
  });

  it("reads the database and Redis URLs from files (secrets mounted as files), never both ways", () => {
    const dir = mkdtempSync(join(tmpdir(), "mandate-secret-"));
    const database = join(dir, "database-url");
    writeFileSync(database, "postgres://mandate:hunter2@db:5432/mandate\n");
    const redis = join(dir, "redis-url");
    writeFileSync(redis, "redis://:s3cret@cache:6379/0");
    const config = loadConfig({ env: { MANDATE_DATABASE_URL_FILE: database, MANDATE_REDIS_URL_FILE: redis } });
    expect(config.database.url).toBe("postgres://mandate:hunter2@db:5432/mandate");
    expect(config.redis.url).toBe("redis://:s3cret@cache:6379/0");
    expect(JSON.stringify(redactConfig(config))).not.toContain("hunter2");

    const both = problems(() =>
      loadConfig({ env: { MANDATE_DATABASE_URL_FILE: database, MANDATE_DATABASE_URL: "sqlite:x.db" } }),
    );
    expect(both).toEqual(["database.url: set MANDATE_DATABASE_URL or MANDATE_DATABASE_URL_FILE, not both"]);
    expect(problems(() => loadConfig({ env: { MANDATE_DATABASE_URL_FILE: join(dir, "missing") } }))[0]).toMatch(
      /^MANDATE_DATABASE_URL_FILE: .*missing cannot be read \(ENOENT\)$/,
    );
    const empty = join(dir, "empty");
    writeFileSync(empty, "\n");
    expect(problems(() => loadConfig({ env: { MANDATE_REDIS_URL_FILE: empty } }))[0]).toMatch(/is empty$/);
    // A bad URL in the file is reported by key and source, without the file's content.
    writeFileSync(redis, "http://:hunter2@cache:6379");
    const bad = problems(() => loadConfig({ env: { MANDATE_REDIS_URL_FILE: redis } })).join("\n");
    expect(bad).toContain("redis.url (from env MANDATE_REDIS_URL_FILE)");
    expect(bad).not.toContain("hunter2");
  });

  it("explains an unreadable or malformed file", () => {
    expect(problems(() => loadConfig({ file: "/nonexistent/mandate.yaml", env: {} }))[0]).toMatch(
      /cannot be read \(ENOENT\)/,
    );
    expect(problems(() => loadConfig({ file: file("a: [unclosed"), env: {} }))[0]).toMatch(/not valid YAML/);
  });

  it("reads signer durations and derives the rotation timing", () => {
    const config = loadConfig({
      env: {
        MANDATE_SIGNER_ROTATION_INTERVAL: "10s",
        MANDATE_SIGNER_OVERLAP: "5000",
        MANDATE_SIGNER_PREPUBLISH: "4s",
        MANDATE_OAUTH_ACCESS_TOKEN_TTL: "4s",
      },
    });
    // A token lifetime beyond the overlap could never be signed: refused at start.
    expect(problems(() => loadConfig({ env: { MANDATE_SIGNER_OVERLAP: "5000" } })).join("\n")).toMatch(
      /oauth.accessTokenTtl: must not exceed signer.overlap/,
    );
    expect(signerTiming(config.signer)).toEqual({
      intervalMs: 10_000,
      prepublishMs: 4000,
      overlapMs: 5000,
      checkMs: 1000,
    });
    expect(signerTiming(loadConfig({ env: {} }).signer)).toMatchObject({
      intervalMs: 86_400_000,
      prepublishMs: 21_600_000,
      checkMs: 60_000,
    });
    expect(problems(() => loadConfig({ env: { MANDATE_SIGNER_ROTATION_INTERVAL: "soon" } }))[0]).toMatch(
      /signer.rotationInterval \(from env MANDATE_SIGNER_ROTATION_INTERVAL\): expected a duration such as "30s"/,
    );
    expect(
      problems(() =>
        loadConfig({ env: { MANDATE_SIGNER_ROTATION_INTERVAL: "1h", MANDATE_SIGNER_PREPUBLISH: "2h" } }),
      )[0],
    ).toMatch(/signer.prepublish \(from env MANDATE_SIGNER_PREPUBLISH\): must be shorter than signer.rotationInterval/);
  });

  it("requires one token and one PIN source for PKCS#11, and never prints the PIN or the KEK", () => {
    const found = problems(() => loadConfig({ env: { MANDATE_SIGNER_BACKEND: "pkcs11" } }));
    expect(found).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/signer.pkcs11.tokenLabel: set exactly one of tokenLabel or slot/),
        expect.stringMatching(/signer.pkcs11.pin: set exactly one of pin or pinFile/),
      ]),
    );
    const secrets = { MANDATE_PKCS11_PIN: "s3cret-pin", MANDATE_SIGNER_KEK: "k".repeat(43) };
    const config = loadConfig({
      env: { MANDATE_SIGNER_BACKEND: "pkcs11", MANDATE_PKCS11_TOKEN_LABEL: "t", ...secrets },
    });
    const printed = JSON.stringify(redactConfig(config));
    expect(printed).not.toContain("s3cret-pin");
    expect(printed).not.toContain("k".repeat(43));
    const bad = problems(() => loadConfig({ env: { MANDATE_SIGNER_KEK: "short-secret" } }));
    expect(bad.join("\n")).not.toContain("short-secret");
  });

  it("documents every environment variable in the README", () => {
    const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
    for (const [name] of ENV_BINDINGS) {
      if (/^MANDATE_[A-Z]+_ADDRESS$/.test(name)) continue; // documented as MANDATE_<NAME>_ADDRESS
      expect(readme, name).toContain(name);
    }
  });
});
