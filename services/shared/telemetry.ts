// OpenTelemetry wiring: one tracer provider and one meter provider per process. With an OTLP
// endpoint configured, spans and metrics are exported over OTLP/HTTP; without one, spans still get
// trace ids (so logs correlate) but nothing leaves the process.

import { hostname } from "node:os";
import { monitorEventLoopDelay } from "node:perf_hooks";
import {
  type Attributes,
  type Counter,
  context,
  type Histogram,
  type MetricOptions,
  metrics,
  propagation,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
} from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { OTLPMetricExporter } from "@opentelemetry/exporter-metrics-otlp-http";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { MeterProvider, PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics";
import { AlwaysOffSampler, BatchSpanProcessor, type SpanProcessor, TracerProvider } from "@opentelemetry/sdk-trace";
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from "@opentelemetry/semantic-conventions";
import type { Config } from "./config.ts";
import { VERSION } from "./version.ts";

export const tracer = trace.getTracer("mandate", VERSION);

/** Bumped when providers are installed: instruments made before then are no-ops and must be remade. */
let providerGeneration = 0;

/**
 * A histogram usable from module scope. The metrics API has no proxy provider (unlike tracing), so
 * an instrument created before `startTelemetry` would stay a no-op; this one binds on first use.
 */
export function histogram(name: string, options: MetricOptions): Pick<Histogram, "record"> {
  let instrument: Histogram | undefined;
  let boundTo = -1;
  return {
    record(value, attributes) {
      if (boundTo !== providerGeneration || !instrument) {
        instrument = metrics.getMeter("mandate", VERSION).createHistogram(name, options);
        boundTo = providerGeneration;
      }
      instrument.record(value, attributes);
    },
  };
}

/** A counter usable from module scope, bound to the installed provider on first use (see `histogram`). */
export function counter(name: string, options: MetricOptions): Pick<Counter, "add"> {
  let instrument: Counter | undefined;
  let boundTo = -1;
  return {
    add(value, attributes) {
      if (boundTo !== providerGeneration || !instrument) {
        instrument = metrics.getMeter("mandate", VERSION).createCounter(name, options);
        boundTo = providerGeneration;
      }
      instrument.add(value, attributes);
    },
  };
}

type GaugeReading = Array<{ value: number; attributes?: Attributes }>;
const gauges: Array<{ name: string; options: MetricOptions; read: () => GaugeReading }> = [];

/**
 * An observable gauge read at each export (`read` returns the current values). Registered now, and
 * again on the providers `startTelemetry` installs, whichever comes first.
 */
export function observableGauge(name: string, options: MetricOptions, read: () => GaugeReading): void {
  gauges.push({ name, options, read });
  registerGauge(gauges.at(-1) as (typeof gauges)[number]);
}

function registerGauge(gauge: (typeof gauges)[number]): void {
  metrics
    .getMeter("mandate", VERSION)
    .createObservableGauge(gauge.name, gauge.options)
    .addCallback((result) => {
      for (const { value, attributes } of gauge.read()) result.observe(value, attributes);
    });
}

/**
 * The process's own health as metrics: resident and heap memory, and event-loop delay (p99 and max
 * over each export interval, from perf_hooks' histogram), so a soak or an operator sees growth.
 */
function runtimeMetrics(): void {
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  observableGauge("process.memory.rss", { description: "Resident set size", unit: "By" }, () => [
    { value: process.memoryUsage.rss() },
  ]);
  observableGauge("process.memory.heap_used", { description: "V8 heap in use", unit: "By" }, () => [
    { value: process.memoryUsage().heapUsed },
  ]);
  observableGauge(
    "nodejs.eventloop.delay",
    { description: "Event-loop delay since the previous export", unit: "ms" },
    () => {
      const reading = [
        { value: delay.percentile(99) / 1e6, attributes: { quantile: "p99" } },
        { value: delay.max / 1e6, attributes: { quantile: "max" } },
      ];
      delay.reset();
      return reading;
    },
  );
}

export interface Telemetry {
  shutdown(): Promise<void>;
}

let installed: Telemetry | undefined;

/** Installs the global providers once per process; later calls return the same handle. */
export function startTelemetry(config: Config["telemetry"], extraSpanProcessors: SpanProcessor[] = []): Telemetry {
  if (installed) return installed;
  const resource = resourceFromAttributes({
    [ATTR_SERVICE_NAME]: config.serviceName,
    [ATTR_SERVICE_VERSION]: VERSION,
    // Unique per process (semantic conventions: service.instance.id), so the series of replicas and of
    // `serve --workers` workers stay apart and the backend adds them up instead of overwriting.
    "service.instance.id": `${hostname()}/${process.pid}`,
  });
  const spanProcessors = [...extraSpanProcessors];
  if (config.otlpEndpoint) {
    spanProcessors.push(
      new BatchSpanProcessor({
        exporter: new OTLPTraceExporter({ url: `${trimSlash(config.otlpEndpoint)}/v1/traces` }),
      }),
    );
  }
  // With nowhere to send spans they are not recorded: each still gets its ids (logs, audit events
  // and W3C trace context carry them) but no attributes, events or timings are kept per request.
  const tracerProvider = new TracerProvider({
    resource,
    spanProcessors,
    ...(spanProcessors.length === 0 ? { sampler: new AlwaysOffSampler() } : {}),
  });
  const readers = config.otlpEndpoint
    ? [
        new PeriodicExportingMetricReader({
          exporter: new OTLPMetricExporter({ url: `${trimSlash(config.otlpEndpoint)}/v1/metrics` }),
          exportIntervalMillis: config.metricsIntervalMs,
        }),
      ]
    : [];
  // Without a reader nothing ever collects the measurements: the metrics API's no-op provider stays
  // in place, so recording one costs nothing (the SDK would still build each data point's attributes).
  const meterProvider = readers.length > 0 ? new MeterProvider({ resource, readers }) : undefined;
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(tracerProvider);
  if (meterProvider) metrics.setGlobalMeterProvider(meterProvider);
  providerGeneration++;
  for (const gauge of gauges) registerGauge(gauge);
  runtimeMetrics();
  installed = {
    async shutdown() {
      await Promise.allSettled([tracerProvider.shutdown(), meterProvider?.shutdown()]);
    },
  };
  return installed;
}

function trimSlash(url: string): string {
  return url.replace(/\/+$/, "");
}

/** Runs `fn` inside a span that records errors and ends with it. */
export async function inSpan<T>(
  name: string,
  attributes: Record<string, string | number | boolean>,
  kind: SpanKind,
  fn: (span: Span) => Promise<T>,
): Promise<T> {
  return tracer.startActiveSpan(name, { kind, attributes }, async (span) => {
    try {
      return await fn(span);
    } catch (error) {
      span.recordException(error as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error).message });
      throw error;
    } finally {
      span.end();
    }
  });
}

/** The current trace id, or undefined outside a sampled span. */
export function currentTraceId(): string | undefined {
  const spanContext = trace.getActiveSpan()?.spanContext();
  return spanContext && trace.isSpanContextValid(spanContext) ? spanContext.traceId : undefined;
}

export { SpanKind };
