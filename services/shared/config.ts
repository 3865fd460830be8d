// Configuration: read once at start from an optional file (YAML or JSON) and the environment,
// validated as a whole, every bad value reported by its key with what was expected. Values from the
// environment win over the file. Secrets never appear in errors or logs (see `redactConfig`).
import { existsSync, readFileSync } from "node:fs";
import { isIP } from "node:net";
import { resolve } from "node:path";
import { parse as parseYaml } from "yaml";
import { z } from "zod";

export const SERVICE_NAMES = ["authorize", "introspect", "issue", "audit", "signer", "tenants"] as const;
export type ServiceName = (typeof SERVICE_NAMES)[number];

const port = z.coerce.number().int().min(0).max(65535);
const positiveInt = z.coerce.number().int().positive();
const host = z.string().min(1);
/** true/false, also from the environment ("true", "false", "1", "0", "yes", "no"). */
const flag = z.union([z.boolean(), z.stringbool()]);
/** A list, also from the environment as comma-separated values. */
const commaList = <T extends z.ZodType>(item: T) =>
  z.preprocess(
    (v) =>
      typeof v === "string"
        ? v
            .split(",")
            .map((entry) => entry.trim())
            .filter(Boolean)
        : v,
    z.array(item),
  );

const DURATION_UNITS_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
/** A duration as "90s", "10m", "24h", "1d" or a number of milliseconds; parsed to milliseconds. */
const DURATION_HINT = 'expected a duration such as "30s", "10m", "24h" or a number of milliseconds';
const duration = z
  .union([z.number().int().positive(), z.string().regex(/^\d+(ms|s|m|h|d)?$/, DURATION_HINT)], { error: DURATION_HINT })
  .transform((value) => {
    if (typeof value === "number") return value;
    const [, amount, unit] = /^(\d+)([a-z]*)$/.exec(value) as RegExpExecArray;
    return Number(amount) * DURATION_UNITS_MS[(unit || "ms") as keyof typeof DURATION_UNITS_MS];
  })
  .refine((ms) => ms > 0, DURATION_HINT);

/** An IP address or a CIDR range (trusted proxies). */
const addressRange = z
  .string()
  .refine(
    (v) => /^[0-9a-fA-F:.]+(\/\d{1,3})?$/.test(v) && isIP(v.split("/")[0] as string) !== 0,
    "expected an IP address or CIDR range",
  );

const JWS_ALGORITHMS = ["ES256", "EdDSA", "PS256"] as const;

/** A token bucket: "<requests per second>:<burst>" (e.g. "0.5:20") or {capacity, refillPerSecond}. */
const RATE_RULE_HINT = 'expected "<requests per second>:<burst>" such as "0.5:20", or {capacity, refillPerSecond}';
const rateRule = z.union(
  [
    z.strictObject({
      capacity: positiveInt,
      refillPerSecond: z.coerce.number().positive().max(1_000_000),
    }),
    z
      .string()
      .regex(/^\d+(\.\d+)?:\d+$/, RATE_RULE_HINT)
      .transform((value) => {
        const [rate, burst] = value.split(":").map(Number) as [number, number];
        return { capacity: burst, refillPerSecond: rate };
      })
      .refine((rule) => rule.capacity > 0 && rule.refillPerSecond > 0, RATE_RULE_HINT),
  ],
  { error: RATE_RULE_HINT },
);

const serviceAddress = z
  .string()
  .regex(/^[A-Za-z0-9.-]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$/, "expected host:port, e.g. 127.0.0.1:4461");

export const configSchema = z
  .strictObject({
    /**
     * Public base URL of the HTTP edge; issuers are `{publicBaseUrl}/t/{tenant}`. Default: the edge's
     * own address (http.host, http.port), so changing the port moves the issuers with it.
     */
    publicBaseUrl: z
      .url({ protocol: /^https?$/, error: "expected an http(s) URL" })
      .transform((url) => url.replace(/\/+$/, ""))
      .optional(),
    http: z
      .strictObject({
        host: host.default("127.0.0.1"),
        port: port.default(4460),
        /** Largest request body accepted on the edge (bytes). */
        maxRequestBytes: positiveInt.default(4 * 1024 * 1024),
        /** Browser origins allowed to call gRPC-Web/Connect (CORS); "*" allows any. */
        corsOrigins: commaList(z.string()).default([]),
        /** Proxies (IPs or CIDR ranges) whose X-Forwarded-For is believed for the client address; none by default. */
        trustedProxies: commaList(addressRange).default([]),
        /**
         * RFC 8705 mutual TLS at the edge: a second listener (HTTPS) that asks every client for a
         * certificate and serves the same endpoints; discovery announces it in `mtls_endpoint_aliases`.
         * Off unless `port` is set. Without certFile/keyFile, `mandate dev` makes a development server
         * certificate under .mandate/tls.
         */
        mtls: z
          .strictObject({
            host: host.optional(),
            port: port.optional(),
            /** Base URL clients use for the mTLS listener; default https://{host}:{port}. */
            publicUrl: z
              .url({ protocol: /^https$/, error: "expected an https URL" })
              .transform((url) => url.replace(/\/+$/, ""))
              .optional(),
            certFile: z.string().min(1).optional(),
            keyFile: z.string().min(1).optional(),
          })
          .prefault({}),
        /**
         * Behind a TLS-terminating proxy: the header carrying the client certificate (RFC 9440
         * `Client-Cert`, or Envoy's `X-Forwarded-Client-Cert`), believed only from `proxies`.
         */
        clientCertificate: z
          .strictObject({
            header: z.enum(["none", "client-cert", "x-forwarded-client-cert"]).default("none"),
            /** Proxies (IPs or CIDR ranges) whose certificate header is believed; none by default. */
            proxies: commaList(addressRange).default([]),
          })
          .prefault({}),
      })
      .prefault({}),
    /**
     * Agent identity (issue 17): each tenant's agent certificate authority, whose keys live in the
     * Signer, and the X.509-SVIDs it issues to enrolled agents.
     */
    agents: z
      .strictObject({
        /** A tenant's SPIFFE trust domain is `{tenant}.{trustDomainSuffix}`. */
        trustDomainSuffix: z
          .string()
          .regex(/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/, "expected a DNS name such as agents.mandate.local")
          .default("agents.mandate.local"),
        /** Lifetime of an agent certificate: 5 minutes to 24 hours. */
        certificateTtl: duration.default(3_600_000),
        /** Lifetime of a one-time enrollment token. */
        enrollmentTokenTtl: duration.default(86_400_000),
        ca: z
          .strictObject({
            /** How long a root signs intermediates before its successor does; published for its whole life. */
            rootInterval: duration.default(5 * 365 * 86_400_000),
            /** How long an intermediate issues agent certificates before its successor takes over. */
            intermediateInterval: duration.default(7 * 86_400_000),
            /** How long an intermediate is in the trust bundle before it issues (pre-publication). */
            intermediatePrepublish: duration.default(86_400_000),
          })
          .prefault({}),
      })
      .prefault({})
      .superRefine((agents, ctx) => {
        if (agents.certificateTtl < 300_000 || agents.certificateTtl > 86_400_000) {
          ctx.addIssue({ code: "custom", path: ["certificateTtl"], message: "must be from 5 minutes to 24 hours" });
        }
        if (agents.ca.intermediatePrepublish >= agents.ca.intermediateInterval) {
          ctx.addIssue({
            code: "custom",
            path: ["ca", "intermediatePrepublish"],
            message: "must be shorter than agents.ca.intermediateInterval",
          });
        }
        if (agents.ca.intermediateInterval * 2 > agents.ca.rootInterval) {
          ctx.addIssue({
            code: "custom",
            path: ["ca", "intermediateInterval"],
            message: "must be at most half of agents.ca.rootInterval",
          });
        }
      }),
    /**
     * Federation (issue 18): upstream identity providers for humans, the agent federation gateway,
     * API keys and cross-organization trust.
     */
    federation: z
      .strictObject({
        /**
         * Key sealing upstream IdP client secrets and SAML SP private keys at rest (32 bytes,
         * base64url; AES-256-GCM). Secret. `mandate dev` generates one under .mandate/.
         */
        secretKey: z
          .string()
          .regex(/^[A-Za-z0-9_-]{43}=?$/, "expected 32 bytes in base64url (43 characters)")
          .optional(),
        secretKeyFile: z.string().min(1).optional(),
        /** How long a login sent to an upstream IdP may take to come back. */
        loginTtl: duration.default(600_000),
        /** Lifetime of a token issued to a federated identity (agent gateway, cross-organization). */
        tokenTtl: duration.default(300_000),
        /** Default lifetime of an API key, and how long a rotated key keeps working beside its successor. */
        apiKeyTtl: duration.default(90 * 86_400_000),
        apiKeyRotationOverlap: duration.default(86_400_000),
      })
      .prefault({}),
    grpc: z
      .strictObject({
        host: host.default("127.0.0.1"),
        port: port.default(4461),
        /** Largest message accepted (bytes); larger ones get RESOURCE_EXHAUSTED. */
        maxReceiveMessageBytes: positiveInt.default(4 * 1024 * 1024),
        /** Largest message sent (bytes). */
        maxSendMessageBytes: positiveInt.default(16 * 1024 * 1024),
        /** Deadline applied to calls that arrive without one (ms). */
        defaultDeadlineMs: positiveInt.default(30_000),
        /**
         * Base URL callers use for native gRPC (`https://mandate-grpc.example.com`), the `htu` of their
         * DPoP proofs; default http(s)://{grpc.host}:{grpc.port}.
         */
        publicUrl: z
          .url({ protocol: /^https?$/, error: "expected an http(s) URL" })
          .transform((url) => url.replace(/\/+$/, ""))
          .optional(),
      })
      .prefault({}),
    /**
     * Service-to-service mTLS (split mode): this process's certificate and key, and the CA bundle that
     * signs every Mandate service's certificate. Each certificate names its service with a SPIFFE ID
     * URI SAN, spiffe://{trustDomain}/mandate/{service}. Files, so cert-manager or SPIRE can rotate them.
     */
    tls: z
      .strictObject({
        certFile: z.string().min(1).optional(),
        keyFile: z.string().min(1).optional(),
        caFile: z.string().min(1).optional(),
        trustDomain: z
          .string()
          .regex(/^[a-z0-9._-]+$/, "expected a SPIFFE trust domain such as mandate.local")
          .default("mandate.local"),
      })
      .prefault({})
      .superRefine((tls, ctx) => {
        // A CA alone is a client's trust (the CLI); a certificate needs its key and the CA of its peers.
        if (tls.certFile === undefined && tls.keyFile === undefined) return;
        for (const key of ["certFile", "keyFile", "caFile"] as const) {
          if (tls[key] === undefined) {
            ctx.addIssue({
              code: "custom",
              path: [key],
              message: "set tls.certFile, tls.keyFile and tls.caFile together",
            });
          }
        }
      }),
    /** Mandate's own API (the RPCs): callers present access tokens issued for this resource. */
    api: z
      .strictObject({
        /** The API's resource identifier (RFC 8707), the `aud` of caller tokens; default publicBaseUrl. */
        audience: z.url({ error: "expected an absolute URI" }).optional(),
      })
      .prefault({}),
    admin: z
      .strictObject({
        /**
         * Where `mandate dev` and `mandate admin bootstrap` write the platform-admin client's credentials
         * and where the CLI reads them (mode 0600). Secret.
         */
        credentialsFile: z.string().min(1).default(".mandate/admin.json"),
      })
      .prefault({}),
    /** How long shutdown waits for in-flight calls before cutting them (ms). */
    shutdownGraceMs: positiveInt.default(10_000),
    database: z
      .strictObject({
        /** `sqlite:PATH` / a file path (embedded default) or `postgres://...` (production). */
        url: z.string().min(1).default("sqlite:.mandate/mandate.db"),
        /** Connection pool size for PostgreSQL. */
        poolSize: positiveInt.default(10),
        /**
         * SQLite durability: "full" (a committed transaction survives a power loss) or "normal" (the
         * last commits before a power loss may be lost; a process crash loses nothing). Default:
         * "normal" for `mandate dev`, "full" otherwise.
         */
        sqliteSynchronous: z.enum(["full", "normal"]).optional(),
      })
      .prefault({}),
    /** gRPC addresses of services that run in other processes (`mandate serve`). */
    services: z.partialRecord(z.enum(SERVICE_NAMES), serviceAddress).default({}),
    telemetry: z
      .strictObject({
        serviceName: z.string().min(1).default("mandate"),
        /** OTLP/HTTP endpoint, e.g. http://collector:4318; unset: telemetry stays in-process (no-op export). */
        otlpEndpoint: z.url({ error: "expected a URL such as http://127.0.0.1:4318" }).optional(),
        metricsIntervalMs: positiveInt.default(15_000),
      })
      .prefault({}),
    log: z
      .strictObject({
        level: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
      })
      .prefault({}),
    signer: z
      .strictObject({
        /** Where private keys live: "software" (encrypted in the store; the embedded default) or "pkcs11" (an HSM). */
        backend: z.enum(["software", "pkcs11"]).default("software"),
        /** Token-signing algorithm for tenants that do not choose one. */
        defaultAlgorithm: z.enum(JWS_ALGORITHMS).default("ES256"),
        /** How long a key signs before its successor takes over. */
        rotationInterval: duration.default(86_400_000),
        /** How long a key is in the JWKS before it signs (pre-publication); default a quarter of the interval. */
        prepublish: duration.optional(),
        /** How long a retired key stays in the JWKS; also the longest lifetime a signed token may have. */
        overlap: duration.default(3_600_000),
        /** How often each replica reloads keys and the rotation leader runs the schedule; default derived from prepublish. */
        checkInterval: duration.optional(),
        software: z
          .strictObject({
            /** Key-encryption key: 32 bytes, base64url. Secret. */
            kek: z
              .string()
              .regex(/^[A-Za-z0-9_-]{43}=?$/, "expected 32 bytes in base64url (43 characters)")
              .optional(),
            /** File holding the key-encryption key (base64url), e.g. a mounted secret. */
            kekFile: z.string().min(1).optional(),
          })
          .prefault({}),
        pkcs11: z
          .strictObject({
            /** Path of the PKCS#11 module (.so). */
            module: z.string().min(1).default("/usr/lib/softhsm/libsofthsm2.so"),
            /** Token to use, by label... */
            tokenLabel: z.string().min(1).optional(),
            /** ...or by slot id. */
            slot: z.coerce.number().int().nonnegative().optional(),
            /** User PIN. Secret; prefer pinFile. */
            pin: z.string().min(1).optional(),
            /** File holding the user PIN. */
            pinFile: z.string().min(1).optional(),
            /** Sessions kept open for signing in parallel. */
            sessionPoolSize: positiveInt.max(64).default(4),
          })
          .prefault({}),
      })
      .prefault({})
      .superRefine((signer, ctx) => {
        const prepublish = signer.prepublish ?? Math.floor(signer.rotationInterval / 4);
        if (prepublish >= signer.rotationInterval) {
          ctx.addIssue({
            code: "custom",
            path: ["prepublish"],
            message: "must be shorter than signer.rotationInterval",
          });
        }
        if (signer.backend !== "pkcs11") return;
        const { tokenLabel, slot, pin, pinFile } = signer.pkcs11;
        if ((tokenLabel === undefined) === (slot === undefined)) {
          ctx.addIssue({
            code: "custom",
            path: ["pkcs11", "tokenLabel"],
            message: "set exactly one of tokenLabel or slot",
          });
        }
        if ((pin === undefined) === (pinFile === undefined)) {
          ctx.addIssue({ code: "custom", path: ["pkcs11", "pin"], message: "set exactly one of pin or pinFile" });
        }
      }),
    audit: z
      .strictObject({
        /** Most entries committed in one transaction (appends that arrive together share one). */
        maxBatch: positiveInt.max(10_000).default(1000),
        /** Sign a checkpoint after this many new entries... */
        checkpointEveryEntries: positiveInt.default(1000),
        /** ...or this long after the last one, if the log grew. */
        checkpointInterval: duration.default(10_000),
        /** How often the writer moves events from the transactional outbox into the logs. */
        outboxPollInterval: duration.default(250),
        /** Not ready (/readyz 503) while an event older than this waits in the outbox. */
        maxLag: duration.default(60_000),
      })
      .prefault({}),
    authorize: z
      .strictObject({
        /** Policy of tenants without a bundle of their own: a directory of Rego (compiled at start) or a bundle file. */
        defaultPolicy: z.string().min(1).default("policies/default"),
        /** Largest Wasm memory one policy instance may grow to, in MiB; beyond it the decision is a deny. */
        maxMemoryMiB: positiveInt.max(4096).default(64),
        /** Steps one evaluation may take (loop iterations and calls) before it is a deny. */
        evaluationBudget: positiveInt.default(20_000_000),
        /** Policy instances of a tenant unused this long are dropped (loaded again on the next decision). */
        idleEviction: duration.default(600_000),
        /** Most tenants with loaded policies in one process; the least recently used go first. */
        maxLoadedTenants: positiveInt.default(1000),
        /** How often each replica checks the store for policy changes when no notification arrives. */
        reloadPollInterval: duration.default(1000),
        /** Decision-log mask: input paths (e.g. "/context/ip", "/resource/attributes/ssn") never logged. */
        decisionLogMask: z.array(z.string().regex(/^(\/[^/]+)+$/, "a path like /context/ip")).default([]),
        /** Longest a decision-log entry waits to be written with others ("0" writes each at once). */
        decisionLogFlush: z
          .union([z.literal(0), z.literal("0"), duration])
          .transform(Number)
          .default(500),
      })
      .prefault({}),
    /** Revocations (the revocation log, services/shared/oauth/revocations.ts): how replicas learn them. */
    revocation: z
      .strictObject({
        /** How often each replica reads the revocation log's heads when no notification arrives. */
        pollInterval: duration.default(500),
        /**
         * While the LISTEN connection is down, how long after its last successful poll a replica still
         * answers from memory; beyond it, every token check reads the store (fail closed).
         */
        staleAfter: duration.default(2000),
        /** Notifications (PostgreSQL NOTIFY, Redis pub/sub); off leaves the poll alone (benchmark baseline). */
        notifications: flag.default(true),
        /**
         * PostgreSQL LISTEN for them (with notifications on). Off for PostgreSQL-compatible engines
         * without LISTEN/NOTIFY: Redis pub/sub (redis.url) and the poll carry revocations then.
         */
        listen: flag.default(true),
        /** How often the revocation feed (gRPC stream, SSE) sends a heartbeat when nothing is revoked. */
        feedHeartbeat: duration.default(5000),
      })
      .prefault({}),
    /** Shared ephemeral state (DPoP and client-assertion replay caches). Unset: in-process (one replica only). */
    redis: z
      .strictObject({
        /** e.g. redis://127.0.0.1:6379/0. Secret when it carries a password. */
        url: z.url({ protocol: /^rediss?$/, error: "expected a redis:// or rediss:// URL" }).optional(),
      })
      .prefault({}),
    oauth: z
      .strictObject({
        /** Access-token lifetime when the client does not set one (RFC 9068 tokens; keep it short). */
        accessTokenTtl: duration.default(300_000),
        /** Absolute lifetime of a refresh-token family, from the original grant. */
        refreshTokenTtl: duration.default(30 * 86_400_000),
        /** Authorization codes are single use and short-lived (RFC 6749 §4.1.2 recommends at most 10 minutes). */
        codeTtl: duration.default(60_000),
        /** Lifetime of a pushed authorization request's request_uri (RFC 9126 §2.2). */
        parTtl: duration.default(90_000),
        /** ID-token lifetime. */
        idTokenTtl: duration.default(3_600_000),
        /** Browser login session lifetime at the authorization server. */
        sessionTtl: duration.default(8 * 3_600_000),
        /** Largest clock difference accepted on DPoP proofs and client assertions (`iat`, RFC 9449 §11.1). */
        clockSkew: duration.default(60_000),
        /** How long a DPoP server nonce stays valid; a new one is handed out halfway (RFC 9449 §8.2). */
        dpopNonceTtl: duration.default(300_000),
        /** Require a server-provided DPoP nonce at the token endpoint (RFC 9449 §8). */
        requireDpopNonce: flag.default(true),
        /** Dynamic Client Registration (RFC 7591): "open", "token" (initial access token required) or "off". */
        registration: z.enum(["open", "token", "off"]).default("open"),
        /** Initial access tokens accepted when registration is "token". Secret. */
        initialAccessTokens: z.array(z.string().min(16)).default([]),
        /** Fetch and accept https client_id URLs (Client ID Metadata Documents, as MCP requires). */
        clientIdMetadataDocuments: flag.default(true),
        /** Allow metadata documents on loopback/private addresses (tests only; SSRF guard off). */
        allowPrivateMetadataHosts: flag.default(false),
      })
      .prefault({}),
    /**
     * Abuse limits on unauthenticated traffic, per client IP (and per client id / account for
     * failures), as token buckets shared through Redis when redis.url is set. Per-client quotas
     * (client metadata rate_limit) apply whatever `enabled` says.
     */
    rateLimits: z
      .strictObject({
        enabled: flag.default(true),
        /** Dynamic client registrations per IP. */
        registration: rateRule.default({ capacity: 30, refillPerSecond: 0.5 }),
        /** Authorization requests per IP. */
        authorize: rateRule.default({ capacity: 300, refillPerSecond: 10 }),
        /** Failed client authentications (token, PAR, introspection, revocation), per client id and per IP. */
        failedClientAuth: z
          .strictObject({
            perClient: rateRule.default({ capacity: 20, refillPerSecond: 0.1 }),
            perIp: rateRule.default({ capacity: 100, refillPerSecond: 1 }),
          })
          .prefault({}),
        /** Failed logins (dev users), per account and per IP. */
        login: z
          .strictObject({
            perAccount: rateRule.default({ capacity: 10, refillPerSecond: 1 / 60 }),
            perIp: rateRule.default({ capacity: 50, refillPerSecond: 0.2 }),
          })
          .prefault({}),
        /** RPCs without caller credentials, per IP. */
        unauthenticatedRpc: rateRule.default({ capacity: 500, refillPerSecond: 50 }),
      })
      .prefault({}),
    identity: z
      .strictObject({
        /** Who logs humans in: "dev" (users from this config; embedded default) or "kratos" (Ory Kratos). */
        provider: z.enum(["dev", "kratos"]).default("dev"),
        /** Dev users: passwords only as scrypt hashes (`mandate users hash-password`). */
        devUsers: z
          .array(
            z.strictObject({
              id: z.string().min(1),
              username: z.string().min(1),
              passwordHash: z.string().regex(/^scrypt\$/, "expected a scrypt hash from `mandate users hash-password`"),
              name: z.string().optional(),
              email: z.string().optional(),
            }),
          )
          .default([]),
        kratos: z
          .strictObject({
            /** Kratos public API as this server reaches it (toSession). */
            publicUrl: z.url().optional(),
            /** Kratos public URL as browsers reach it (login redirects); defaults to publicUrl. */
            browserUrl: z.url().optional(),
            /**
             * Kratos admin API as this server reaches it (never exposed to browsers): account status
             * for mandates' revoke_on_account_end, login_hint lookup for CIBA requests. Without it,
             * neither is offered with Kratos.
             */
            adminUrl: z.url().optional(),
          })
          .prefault({}),
      })
      .prefault({})
      .superRefine((identity, ctx) => {
        if (identity.provider === "kratos" && !identity.kratos.publicUrl) {
          ctx.addIssue({
            code: "custom",
            path: ["kratos", "publicUrl"],
            message: "required when identity.provider is kratos",
          });
        }
      }),
    dev: z
      .strictObject({
        /** Tenant `mandate dev` seeds. */
        tenant: z.string().default("demo"),
      })
      .prefault({}),
  })
  .superRefine((config, ctx) => {
    // The Signer signs no token that outlives its key's place in the JWKS (signer.overlap): a longer
    // default lifetime would make every token request fail.
    if (config.oauth.accessTokenTtl > config.signer.overlap) {
      ctx.addIssue({
        code: "custom",
        path: ["oauth", "accessTokenTtl"],
        message: `must not exceed signer.overlap (${config.signer.overlap} ms): tokens may not outlive their key's publication`,
      });
    }
  });

/** The configuration with the defaults that depend on other keys resolved. */
export type Config = Omit<z.infer<typeof configSchema>, "publicBaseUrl" | "api"> & {
  publicBaseUrl: string;
  api: { audience: string };
};

/** Environment variables and the config key each one sets. */
export const ENV_BINDINGS: ReadonlyArray<readonly [env: string, path: string]> = [
  ["MANDATE_PUBLIC_BASE_URL", "publicBaseUrl"],
  ["MANDATE_HTTP_HOST", "http.host"],
  ["MANDATE_HTTP_PORT", "http.port"],
  ["MANDATE_HTTP_MAX_REQUEST_BYTES", "http.maxRequestBytes"],
  ["MANDATE_HTTP_CORS_ORIGINS", "http.corsOrigins"],
  ["MANDATE_GRPC_HOST", "grpc.host"],
  ["MANDATE_GRPC_PORT", "grpc.port"],
  ["MANDATE_GRPC_MAX_RECEIVE_MESSAGE_BYTES", "grpc.maxReceiveMessageBytes"],
  ["MANDATE_GRPC_MAX_SEND_MESSAGE_BYTES", "grpc.maxSendMessageBytes"],
  ["MANDATE_GRPC_DEFAULT_DEADLINE_MS", "grpc.defaultDeadlineMs"],
  ["MANDATE_GRPC_PUBLIC_URL", "grpc.publicUrl"],
  ["MANDATE_FEDERATION_SECRET_KEY", "federation.secretKey"],
  ["MANDATE_FEDERATION_SECRET_KEY_FILE", "federation.secretKeyFile"],
  ["MANDATE_FEDERATION_LOGIN_TTL", "federation.loginTtl"],
  ["MANDATE_FEDERATION_TOKEN_TTL", "federation.tokenTtl"],
  ["MANDATE_FEDERATION_API_KEY_TTL", "federation.apiKeyTtl"],
  ["MANDATE_FEDERATION_API_KEY_ROTATION_OVERLAP", "federation.apiKeyRotationOverlap"],
  ["MANDATE_HTTP_MTLS_HOST", "http.mtls.host"],
  ["MANDATE_HTTP_MTLS_PORT", "http.mtls.port"],
  ["MANDATE_HTTP_MTLS_PUBLIC_URL", "http.mtls.publicUrl"],
  ["MANDATE_HTTP_MTLS_CERT_FILE", "http.mtls.certFile"],
  ["MANDATE_HTTP_MTLS_KEY_FILE", "http.mtls.keyFile"],
  ["MANDATE_HTTP_CLIENT_CERTIFICATE_HEADER", "http.clientCertificate.header"],
  ["MANDATE_HTTP_CLIENT_CERTIFICATE_PROXIES", "http.clientCertificate.proxies"],
  ["MANDATE_AGENTS_TRUST_DOMAIN_SUFFIX", "agents.trustDomainSuffix"],
  ["MANDATE_AGENTS_CERTIFICATE_TTL", "agents.certificateTtl"],
  ["MANDATE_AGENTS_ENROLLMENT_TOKEN_TTL", "agents.enrollmentTokenTtl"],
  ["MANDATE_AGENTS_CA_ROOT_INTERVAL", "agents.ca.rootInterval"],
  ["MANDATE_AGENTS_CA_INTERMEDIATE_INTERVAL", "agents.ca.intermediateInterval"],
  ["MANDATE_AGENTS_CA_INTERMEDIATE_PREPUBLISH", "agents.ca.intermediatePrepublish"],
  ["MANDATE_TLS_CERT_FILE", "tls.certFile"],
  ["MANDATE_TLS_KEY_FILE", "tls.keyFile"],
  ["MANDATE_TLS_CA_FILE", "tls.caFile"],
  ["MANDATE_TLS_TRUST_DOMAIN", "tls.trustDomain"],
  ["MANDATE_API_AUDIENCE", "api.audience"],
  ["MANDATE_ADMIN_FILE", "admin.credentialsFile"],
  ["MANDATE_SHUTDOWN_GRACE_MS", "shutdownGraceMs"],
  ["MANDATE_DATABASE_URL", "database.url"],
  ["MANDATE_DATABASE_POOL_SIZE", "database.poolSize"],
  ["MANDATE_DATABASE_SQLITE_SYNCHRONOUS", "database.sqliteSynchronous"],
  ["MANDATE_OTLP_ENDPOINT", "telemetry.otlpEndpoint"],
  ["OTEL_EXPORTER_OTLP_ENDPOINT", "telemetry.otlpEndpoint"],
  ["OTEL_SERVICE_NAME", "telemetry.serviceName"],
  ["OTEL_METRIC_EXPORT_INTERVAL", "telemetry.metricsIntervalMs"],
  ["MANDATE_LOG_LEVEL", "log.level"],
  ["MANDATE_AUDIT_MAX_BATCH", "audit.maxBatch"],
  ["MANDATE_AUDIT_CHECKPOINT_EVERY_ENTRIES", "audit.checkpointEveryEntries"],
  ["MANDATE_AUDIT_CHECKPOINT_INTERVAL", "audit.checkpointInterval"],
  ["MANDATE_AUDIT_OUTBOX_POLL_INTERVAL", "audit.outboxPollInterval"],
  ["MANDATE_AUDIT_MAX_LAG", "audit.maxLag"],
  ["MANDATE_AUTHORIZE_DEFAULT_POLICY", "authorize.defaultPolicy"],
  ["MANDATE_AUTHORIZE_MAX_MEMORY_MIB", "authorize.maxMemoryMiB"],
  ["MANDATE_AUTHORIZE_EVALUATION_BUDGET", "authorize.evaluationBudget"],
  ["MANDATE_AUTHORIZE_RELOAD_POLL_INTERVAL", "authorize.reloadPollInterval"],
  ["MANDATE_REVOCATION_POLL_INTERVAL", "revocation.pollInterval"],
  ["MANDATE_REVOCATION_STALE_AFTER", "revocation.staleAfter"],
  ["MANDATE_REVOCATION_NOTIFICATIONS", "revocation.notifications"],
  ["MANDATE_REVOCATION_LISTEN", "revocation.listen"],
  ["MANDATE_REVOCATION_FEED_HEARTBEAT", "revocation.feedHeartbeat"],
  ["MANDATE_REDIS_URL", "redis.url"],
  ["MANDATE_OAUTH_ACCESS_TOKEN_TTL", "oauth.accessTokenTtl"],
  ["MANDATE_OAUTH_REFRESH_TOKEN_TTL", "oauth.refreshTokenTtl"],
  ["MANDATE_OAUTH_REQUIRE_DPOP_NONCE", "oauth.requireDpopNonce"],
  ["MANDATE_OAUTH_REGISTRATION", "oauth.registration"],
  ["MANDATE_OAUTH_ALLOW_PRIVATE_METADATA_HOSTS", "oauth.allowPrivateMetadataHosts"],
  ["MANDATE_HTTP_TRUSTED_PROXIES", "http.trustedProxies"],
  ["MANDATE_RATE_LIMITS_ENABLED", "rateLimits.enabled"],
  ["MANDATE_RATE_LIMITS_REGISTRATION", "rateLimits.registration"],
  ["MANDATE_RATE_LIMITS_AUTHORIZE", "rateLimits.authorize"],
  ["MANDATE_RATE_LIMITS_FAILED_CLIENT_AUTH_PER_CLIENT", "rateLimits.failedClientAuth.perClient"],
  ["MANDATE_RATE_LIMITS_FAILED_CLIENT_AUTH_PER_IP", "rateLimits.failedClientAuth.perIp"],
  ["MANDATE_RATE_LIMITS_LOGIN_PER_ACCOUNT", "rateLimits.login.perAccount"],
  ["MANDATE_RATE_LIMITS_LOGIN_PER_IP", "rateLimits.login.perIp"],
  ["MANDATE_RATE_LIMITS_UNAUTHENTICATED_RPC", "rateLimits.unauthenticatedRpc"],
  ["MANDATE_IDENTITY_PROVIDER", "identity.provider"],
  ["MANDATE_KRATOS_PUBLIC_URL", "identity.kratos.publicUrl"],
  ["MANDATE_KRATOS_BROWSER_URL", "identity.kratos.browserUrl"],
  ["MANDATE_KRATOS_ADMIN_URL", "identity.kratos.adminUrl"],
  ["MANDATE_SIGNER_BACKEND", "signer.backend"],
  ["MANDATE_SIGNER_DEFAULT_ALGORITHM", "signer.defaultAlgorithm"],
  ["MANDATE_SIGNER_ROTATION_INTERVAL", "signer.rotationInterval"],
  ["MANDATE_SIGNER_PREPUBLISH", "signer.prepublish"],
  ["MANDATE_SIGNER_OVERLAP", "signer.overlap"],
  ["MANDATE_SIGNER_CHECK_INTERVAL", "signer.checkInterval"],
  ["MANDATE_SIGNER_KEK", "signer.software.kek"],
  ["MANDATE_SIGNER_KEK_FILE", "signer.software.kekFile"],
  ["MANDATE_PKCS11_MODULE", "signer.pkcs11.module"],
  ["MANDATE_PKCS11_TOKEN_LABEL", "signer.pkcs11.tokenLabel"],
  ["MANDATE_PKCS11_SLOT", "signer.pkcs11.slot"],
  ["MANDATE_PKCS11_PIN", "signer.pkcs11.pin"],
  ["MANDATE_PKCS11_PIN_FILE", "signer.pkcs11.pinFile"],
  ["MANDATE_PKCS11_SESSION_POOL_SIZE", "signer.pkcs11.sessionPoolSize"],
  ...SERVICE_NAMES.map((name) => [`MANDATE_${name.toUpperCase()}_ADDRESS`, `services.${name}`] as const),
];

/**
 * Settings read from a file an environment variable names (compose and Kubernetes secrets mounted as
 * files), so a password embedded in a URL stays out of the process environment (`inspect` shows it).
 */
export const FILE_ENV_BINDINGS: ReadonlyArray<readonly [string, string]> = [
  ["MANDATE_DATABASE_URL_FILE", "database.url"],
  ["MANDATE_REDIS_URL_FILE", "redis.url"],
];

/** Keys whose values are secrets or may embed one (a password in a URL). */
const SECRET_KEYS = new Set([
  "database.url",
  "redis.url",
  "signer.software.kek",
  "signer.pkcs11.pin",
  "federation.secretKey",
]);

export class ConfigError extends Error {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ConfigError";
    this.problems = problems;
  }
}

export interface LoadConfigOptions {
  /** Config file path; defaults to $MANDATE_CONFIG, then ./mandate.yaml when it exists. */
  file?: string | undefined;
  env?: NodeJS.ProcessEnv;
  /** Values that win over file and environment (CLI flags). */
  overrides?: Record<string, unknown>;
}

export function loadConfig(options: LoadConfigOptions = {}): Config {
  const env = options.env ?? process.env;
  const sources = new Map<string, string>();
  const raw: Record<string, unknown> = {};

  const file = options.file ?? env.MANDATE_CONFIG ?? (existsSync("mandate.yaml") ? "mandate.yaml" : undefined);
  if (file !== undefined) {
    const fromFile = readConfigFile(file);
    for (const [path, value] of flatten(fromFile)) {
      setPath(raw, path, value);
      sources.set(path, `file ${file}`);
    }
  }
  applyEnvironment(env, raw, sources);
  for (const [path, value] of Object.entries(options.overrides ?? {})) {
    if (value === undefined) continue;
    setPath(raw, path, value);
    sources.set(path, "command line");
  }

  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => {
        const key = issue.path.join(".");
        const source = sources.get(key);
        const given = SECRET_KEYS.has(key) ? "" : describeGiven(getPath(raw, key));
        return `${key || "(root)"}${source ? ` (from ${source})` : ""}: ${issue.message}${given}`;
      }),
    );
  }
  return resolveDefaults(parsed.data);
}

/** Defaults derived from other keys: the public base URL follows the edge's address. */
function resolveDefaults(parsed: z.infer<typeof configSchema>): Config {
  const publicBaseUrl = parsed.publicBaseUrl ?? edgeUrl(parsed.http.host, parsed.http.port);
  return { ...parsed, publicBaseUrl, api: { audience: parsed.api.audience ?? publicBaseUrl } };
}

function edgeUrl(host: string, port: number): string {
  const shown = ["0.0.0.0", "::", "[::]"].includes(host) ? "127.0.0.1" : host;
  return `http://${shown.includes(":") ? `[${shown}]` : shown}:${port}`;
}

/**
 * The configuration once the edge's port is known (http.port 0 asks for any free port): the defaults
 * derived from it (publicBaseUrl, api.audience) follow; values set explicitly stay.
 */
export function withHttpPort(config: Config, port: number): Config {
  const derived = edgeUrl(config.http.host, config.http.port);
  const publicBaseUrl = config.publicBaseUrl === derived ? edgeUrl(config.http.host, port) : config.publicBaseUrl;
  const audience = config.api.audience === config.publicBaseUrl ? publicBaseUrl : config.api.audience;
  return { ...config, http: { ...config.http, port }, publicBaseUrl, api: { audience } };
}

/** The environment's settings into `raw`: MANDATE_* values, then the files MANDATE_*_FILE names. */
function applyEnvironment(env: NodeJS.ProcessEnv, raw: Record<string, unknown>, sources: Map<string, string>): void {
  for (const [name, path] of ENV_BINDINGS) {
    const value = env[name];
    if (value === undefined || value === "") continue;
    setPath(raw, path, value);
    sources.set(path, `env ${name}`);
  }
  for (const [name, path] of FILE_ENV_BINDINGS) {
    const file = env[name];
    if (file === undefined || file === "") continue;
    const direct = ENV_BINDINGS.find(([, bound]) => bound === path)?.[0];
    if (direct && env[direct]) throw new ConfigError([`${path}: set ${direct} or ${name}, not both`]);
    setPath(raw, path, readSecretFile(name, file));
    sources.set(path, `env ${name}`);
  }
}

/** A secret file's content without its trailing newline; ConfigError when it is unreadable or empty. */
function readSecretFile(name: string, file: string): string {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    throw new ConfigError([`${name}: ${file} cannot be read (${(error as NodeJS.ErrnoException).code})`]);
  }
  const value = text.replace(/\r?\n$/, "");
  if (value === "") throw new ConfigError([`${name}: ${file} is empty`]);
  return value;
}

function readConfigFile(file: string): Record<string, unknown> {
  const path = resolve(file);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new ConfigError([`config file ${path}: cannot be read (${(error as NodeJS.ErrnoException).code})`]);
  }
  let value: unknown;
  try {
    value = parseYaml(text);
  } catch (error) {
    throw new ConfigError([`config file ${path}: not valid YAML or JSON: ${(error as Error).message}`]);
  }
  if (value === null || value === undefined) return {};
  if (typeof value !== "object" || Array.isArray(value)) {
    throw new ConfigError([`config file ${path}: expected a mapping of keys at the top level`]);
  }
  return value as Record<string, unknown>;
}

function describeGiven(value: unknown): string {
  if (value === undefined) return "";
  const text = typeof value === "string" ? JSON.stringify(value) : (JSON.stringify(value) ?? String(value));
  return `, got ${text.length > 80 ? `${text.slice(0, 77)}...` : text}`;
}

function flatten(value: Record<string, unknown>, prefix = ""): Array<[string, unknown]> {
  return Object.entries(value).flatMap(([key, inner]) => {
    const path = prefix ? `${prefix}.${key}` : key;
    return inner !== null && typeof inner === "object" && !Array.isArray(inner)
      ? flatten(inner as Record<string, unknown>, path)
      : [[path, inner] as [string, unknown]];
  });
}

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split(".");
  let node = target;
  for (const key of keys.slice(0, -1)) {
    const next = node[key];
    if (next === null || typeof next !== "object") node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[keys.at(-1) as string] = value;
}

function getPath(source: Record<string, unknown>, path: string): unknown {
  let node: unknown = source;
  for (const key of path.split(".")) {
    if (node === null || typeof node !== "object") return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return node;
}

/** Replaces the password of a URL, for logs and messages. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "REDACTED";
    return parsed.toString();
  } catch {
    return url.includes("@") ? "REDACTED" : url;
  }
}

/** The configuration as it may be printed or logged. */
export function redactConfig(config: Config): Config {
  const { signer } = config;
  return {
    ...config,
    database: { ...config.database, url: redactUrl(config.database.url) },
    redis: config.redis.url ? { url: redactUrl(config.redis.url) } : config.redis,
    oauth: { ...config.oauth, initialAccessTokens: config.oauth.initialAccessTokens.map(() => "REDACTED") },
    federation: { ...config.federation, ...(config.federation.secretKey ? { secretKey: "REDACTED" } : {}) },
    signer: {
      ...signer,
      software: { ...signer.software, ...(signer.software.kek ? { kek: "REDACTED" } : {}) },
      pkcs11: { ...signer.pkcs11, ...(signer.pkcs11.pin ? { pin: "REDACTED" } : {}) },
    },
  };
}

/** Timing of key rotation, with the defaults derived from the interval. */
export function signerTiming(signer: Config["signer"]): {
  intervalMs: number;
  prepublishMs: number;
  overlapMs: number;
  checkMs: number;
} {
  const intervalMs = signer.rotationInterval;
  const prepublishMs = signer.prepublish ?? Math.floor(intervalMs / 4);
  // Replicas must see a new key well within the pre-publication window; a minute is often enough.
  const checkMs = signer.checkInterval ?? Math.max(500, Math.min(60_000, Math.floor(prepublishMs / 4)));
  return { intervalMs, prepublishMs, overlapMs: signer.overlap, checkMs };
}
