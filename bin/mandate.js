#!/usr/bin/env node
// Entry point of the `mandate` CLI. Node >= 22.18 runs our TypeScript directly (type stripping).
// HSM signatures run on libuv's thread pool (one thread per busy PKCS#11 session): size it before
// anything uses it, unless the operator did (signer.pkcs11.sessionPoolSize is at most 64).
process.env.UV_THREADPOOL_SIZE ??= "16";
await import("../services/cli/main.ts");
