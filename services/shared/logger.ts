// Structured JSON logs (pino) carrying the active trace and span ids, with secrets redacted.
import { trace } from "@opentelemetry/api";
import { type Logger, pino } from "pino";

export type { Logger };

/** Paths never written to logs: credentials and tokens that requests and configs carry. */
const REDACTED_PATHS = [
  "password",
  "*.password",
  "secret",
  "*.secret",
  "*.clientSecret",
  "*.client_secret",
  "token",
  "*.token",
  "*.accessToken",
  "*.refreshToken",
  "authorization",
  "*.authorization",
  "headers.authorization",
  "headers.cookie",
  "*.pin",
];

export function createLogger(
  level: string,
  destination: pino.DestinationStream | undefined = undefined,
  name = "mandate",
): Logger {
  const options: pino.LoggerOptions = {
    name,
    level,
    redact: { paths: REDACTED_PATHS, censor: "[REDACTED]" },
    mixin() {
      const spanContext = trace.getActiveSpan()?.spanContext();
      return spanContext && trace.isSpanContextValid(spanContext)
        ? { trace_id: spanContext.traceId, span_id: spanContext.spanId }
        : {};
    },
  };
  return destination ? pino(options, destination) : pino(options);
}
