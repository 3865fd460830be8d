#!/usr/bin/env node
// Entry point of the `mandate` CLI. Node >= 22.18 runs our TypeScript directly (type stripping).
import "../services/cli/main.ts";
