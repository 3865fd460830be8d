// grpc.health.v1: a serving status per service name ("" for the whole server, plus e.g.
// "mandate.v1.Authorize"), with Watch streams that see every change. Implemented once as a
// Connect service so native gRPC and gRPC-Web answer the same.
import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  Health,
  type HealthCheckResponse,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from "../../../gen/grpc/health/v1/health_pb.js";
import { notFound } from "../errors.ts";
import type { ServiceModule } from "./service.ts";

export { ServingStatus };

export class HealthRegistry {
  readonly #statuses = new Map<string, ServingStatus>();
  readonly #watchers = new Map<string, Set<(status: ServingStatus) => void>>();

  set(service: string, status: ServingStatus): void {
    if (this.#statuses.get(service) === status) return;
    this.#statuses.set(service, status);
    for (const notify of this.#watchers.get(service) ?? []) notify(status);
  }

  /** Marks every registered name, e.g. NOT_SERVING while draining. */
  setAll(status: ServingStatus): void {
    for (const service of this.#statuses.keys()) this.set(service, status);
  }

  get(service: string): ServingStatus | undefined {
    return this.#statuses.get(service);
  }

  entries(): Array<[string, ServingStatus]> {
    return [...this.#statuses.entries()];
  }

  allServing(): boolean {
    return this.#statuses.size > 0 && [...this.#statuses.values()].every((s) => s === ServingStatus.SERVING);
  }

  watch(service: string, notify: (status: ServingStatus) => void): () => void {
    let set = this.#watchers.get(service);
    if (!set) {
      set = new Set();
      this.#watchers.set(service, set);
    }
    set.add(notify);
    return () => set.delete(notify);
  }
}

export function healthService(registry: HealthRegistry): ServiceModule<typeof Health> {
  const impl: ServiceImpl<typeof Health> = {
    check(request) {
      const status = registry.get(request.service);
      // grpc health protocol: an unknown service name is NOT_FOUND.
      if (status === undefined) throw notFound("service", request.service || '""');
      return { status };
    },
    list() {
      return { statuses: Object.fromEntries(registry.entries().map(([name, status]) => [name, { status }])) };
    },
    async *watch(request, context) {
      const queue: HealthCheckResponse[] = [];
      let wake: (() => void) | undefined;
      const push = (status: ServingStatus) => {
        queue.push(create(HealthCheckResponseSchema, { status }));
        wake?.();
      };
      push(registry.get(request.service) ?? ServingStatus.SERVICE_UNKNOWN);
      const unwatch = registry.watch(request.service, push);
      const aborted = new Promise<void>((resolve) =>
        context.signal.addEventListener("abort", () => resolve(), { once: true }),
      );
      try {
        while (!context.signal.aborted) {
          const next = queue.shift();
          if (next) {
            yield next;
            continue;
          }
          await Promise.race([new Promise<void>((resolve) => (wake = resolve)), aborted]);
          wake = undefined;
        }
      } finally {
        unwatch();
      }
    },
  };
  return { service: Health, impl };
}
