// Server-rendered pages: plain HTML, no scripts, escaped everywhere, readable without CSS, with a
// strict Content-Security-Policy and no framing (clickjacking on consent).
import type { ServerResponse } from "node:http";

export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Tagged template that escapes every interpolation unless it is already `Html`. */
export class Html {
  readonly text: string;
  constructor(text: string) {
    this.text = text;
  }
}

export function html(strings: TemplateStringsArray, ...values: unknown[]): Html {
  let out = strings[0] ?? "";
  values.forEach((value, i) => {
    out += render(value) + (strings[i + 1] ?? "");
  });
  return new Html(out);
}

function render(value: unknown): string {
  if (value instanceof Html) return value.text;
  if (Array.isArray(value)) return value.map(render).join("");
  if (value === undefined || value === null || value === false) return "";
  return escapeHtml(String(value));
}

const STYLE = `
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;background:#f4f5f7;color:#1d2330;margin:0}
main{max-width:28rem;margin:3rem auto;background:#fff;padding:2rem;border-radius:8px;box-shadow:0 1px 4px #0002}
h1{font-size:1.4rem;margin-top:0}label{display:block;margin:1rem 0 .25rem;font-weight:600}
input{width:100%;box-sizing:border-box;padding:.6rem;font-size:1rem;border:1px solid #8a93a6;border-radius:4px}
button{font-size:1rem;padding:.6rem 1.2rem;border-radius:4px;border:1px solid #1d4ed8;margin:1.25rem .5rem 0 0;cursor:pointer}
button.primary{background:#1d4ed8;color:#fff}button.secondary{background:#fff;color:#1d4ed8}
a.primary{display:inline-block;background:#1d4ed8;color:#fff;padding:.6rem 1.2rem;border-radius:4px;text-decoration:none}
a:focus-visible{outline:3px solid #f59e0b;outline-offset:2px}
button:focus-visible,input:focus-visible{outline:3px solid #f59e0b;outline-offset:2px}
.error{background:#fde8e8;border:1px solid #b91c1c;color:#7f1d1d;padding:.75rem;border-radius:4px}
ul{padding-left:1.25rem}li{margin:.35rem 0}code{background:#eef;padding:0 .25rem;border-radius:3px}
.muted{color:#4b5565;font-size:.9rem}`;

export function page(title: string, body: Html): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} · Mandate</title>
<style>${STYLE}</style>
</head>
<body>
<main>
${body.text}
</main>
</body>
</html>`;
}

export function sendPage(
  res: ServerResponse,
  status: number,
  title: string,
  body: Html,
  headers: Record<string, string> = {},
  /** Where a form on the page may end up: CSP form-action also governs the redirects after a submit. */
  formTargets: string[] = [],
): void {
  const text = page(title, body);
  const formAction = ["'self'", ...formTargets].join(" ");
  res.writeHead(status, {
    "content-type": "text/html; charset=utf-8",
    "content-length": Buffer.byteLength(text),
    "cache-control": "no-store",
    "content-security-policy": `default-src 'none'; style-src 'unsafe-inline'; form-action ${formAction}; frame-ancestors 'none'`,
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    ...headers,
  });
  res.end(text);
}

/** The CSP source for a redirect URI: its origin, or its scheme for a native app's private-use scheme. */
export function cspSource(uri: string): string {
  const url = new URL(uri);
  return url.protocol === "http:" || url.protocol === "https:" ? url.origin : url.protocol;
}
