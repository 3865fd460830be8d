// mandate.v1.Tenants: the registry of tenants. Creating one records a `tenant.created.v1` audit
// event in the same transaction.
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Tenants } from "../../gen/mandate/v1/tenants_pb.js";
import { tenantCreated } from "../shared/audit-events.ts";
import type { ServiceDeps } from "../shared/deps.ts";
import { alreadyExists, invalidArgument, notFound } from "../shared/errors.ts";
import { PLATFORM_TENANT } from "../shared/oauth/mandate-api.ts";
import { resourceProblem } from "../shared/oauth/resource-indicator.ts";
import { auditedCaller, callerOf } from "../shared/rpc/access.ts";
import { defineService } from "../shared/rpc/service.ts";
import type { TenantsTable } from "../shared/store/schema.ts";

const DEFAULT_PAGE_SIZE = 50;

function toTenant(row: TenantsTable) {
  return {
    id: row.id,
    displayName: row.display_name,
    createTime: timestampFromMs(row.created_at),
    tokenSigningAlgorithm: row.token_signing_alg ?? "",
    defaultResources: row.default_resources ? (JSON.parse(row.default_resources) as string[]) : [],
  };
}

export function tenantsService({ store, clock }: ServiceDeps) {
  return defineService(Tenants, {
    async createTenant(request, context) {
      if (request.tenant === PLATFORM_TENANT) {
        throw invalidArgument([
          { field: "tenant", description: `"${PLATFORM_TENANT}" is reserved for the deployment's administrators` },
        ]);
      }
      const now = clock.now();
      const defaultResources = [...new Set(request.defaultResources)];
      const bad = defaultResources.flatMap((resource, i) => {
        const problem = resourceProblem(resource);
        return problem ? [{ field: `default_resources[${i}]`, description: problem }] : [];
      });
      if (bad.length > 0) throw invalidArgument(bad);
      const row: TenantsTable = {
        id: request.tenant,
        display_name: request.displayName || request.tenant,
        created_at: now,
        token_signing_alg: request.tokenSigningAlgorithm || null,
        default_resources: defaultResources.length ? JSON.stringify(defaultResources) : null,
      };
      const scoped = store.forTenant(request.tenant);
      // The tenant's row (a global table) and its first audit event commit together.
      await scoped.transaction(async (tx) => {
        const inserted = await tx
          .insertInto("tenants")
          .values(row)
          .onConflict((c) => c.column("id").doNothing())
          .executeTakeFirst();
        if (Number(inserted.numInsertedOrUpdatedRows ?? 0) === 0) throw alreadyExists("tenant", request.tenant);
        const tenant = {
          id: row.id,
          displayName: row.display_name,
          tokenSigningAlg: row.token_signing_alg,
          defaultResources,
        };
        await scoped.recordEvent(tx, tenantCreated(tenant, auditedCaller(callerOf(context))), now);
      });
      return { tenant: toTenant(row) };
    },

    async getTenant(request) {
      const row = await store.db.selectFrom("tenants").selectAll().where("id", "=", request.tenant).executeTakeFirst();
      if (!row) throw notFound("tenant", request.tenant);
      return { tenant: toTenant(row) };
    },

    async listTenants(request) {
      const pageSize = request.page?.pageSize || DEFAULT_PAGE_SIZE;
      const after = decodeCursor(request.page?.pageToken ?? "");
      let query = store.db
        .selectFrom("tenants")
        .selectAll()
        .orderBy("id")
        .limit(pageSize + 1);
      if (after !== undefined) query = query.where("id", ">", after);
      const rows = await query.execute();
      const page = rows.slice(0, pageSize);
      const last = page.at(-1);
      return {
        tenants: page.map(toTenant),
        nextPageToken: rows.length > pageSize && last ? Buffer.from(last.id).toString("base64url") : "",
      };
    },
  });
}

function decodeCursor(token: string): string | undefined {
  if (token === "") return undefined;
  const id = Buffer.from(token, "base64url").toString("utf8");
  if (!/^[a-z0-9-]{1,63}$/.test(id))
    throw invalidArgument([{ field: "page.page_token", description: "not a token this server issued" }]);
  return id;
}
