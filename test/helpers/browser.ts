// Headless Chromium (Debian's /usr/bin/chromium) driven by playwright-core.
import { existsSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { build } from "esbuild";
import { type Browser, chromium, type Page } from "playwright-core";
import { expect } from "vitest";

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

/** CI sets MANDATE_REQUIRE_BROWSER=1 so a missing Chromium fails instead of skipping. */
export function browserAvailable(): boolean {
  if (existsSync(CHROMIUM_PATH)) return true;
  if (process.env.MANDATE_REQUIRE_BROWSER === "1") {
    throw new Error(`Chromium not found at ${CHROMIUM_PATH}: apt-get install -y chromium`);
  }
  return false;
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/** Serves one HTML page that loads `entry` bundled for the browser; resolves with its origin. */
export async function servePage(entry: string): Promise<{ origin: string; server: Server }> {
  const bundle = await build({
    entryPoints: [entry],
    bundle: true,
    format: "iife",
    platform: "browser",
    write: false,
    target: "chrome120",
  });
  const script = bundle.outputFiles[0]?.text ?? "";
  const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>gRPC-Web test</title></head><body><script>${script}</script></body></html>`;
  const server = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(html);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

/**
 * Mandate's own pages are strict: the response's CSP allows nothing by default, no framing and no
 * script, and the page carries no script, inline style or event handler.
 */
export async function expectStrictPage(tab: Page, response: Awaited<ReturnType<Page["goto"]>>): Promise<void> {
  const csp = response?.headers()["content-security-policy"] ?? "";
  expect(csp).toContain("default-src 'none'");
  expect(csp).toContain("frame-ancestors 'none'");
  expect(csp).not.toContain("script-src");
  expect(await tab.locator("script").count()).toBe(0);
  expect(await tab.locator("[style]").count()).toBe(0);
  expect(await tab.locator("[onclick], [onload], [onsubmit]").count()).toBe(0);
}
