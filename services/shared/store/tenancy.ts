// Tenant isolation enforced by the store layer itself: a Kysely plugin attached to every
// tenant-scoped handle inspects each query before it runs and refuses one that touches a tenant
// table without pinning it to the handle's tenant (a `tenant_id = <tenant>` conjunct in WHERE for
// reads, updates and deletes; `tenant_id = <tenant>` in every inserted row; no update of tenant_id).
// A forgotten filter is therefore an error in tests, never a cross-tenant read in production.
import {
  AliasNode,
  AndNode,
  BinaryOperationNode,
  ColumnNode,
  ColumnUpdateNode,
  DeleteQueryNode,
  IdentifierNode,
  InsertQueryNode,
  type JoinNode,
  type Kysely,
  type KyselyPlugin,
  type OperationNode,
  OperatorNode,
  ParensNode,
  type PluginTransformQueryArgs,
  type PluginTransformResultArgs,
  PrimitiveValueListNode,
  type QueryResult,
  ReferenceNode,
  type RootOperationNode,
  SelectQueryNode,
  TableNode,
  type Transaction,
  type UnknownRow,
  UpdateQueryNode,
  ValueListNode,
  ValueNode,
  ValuesNode,
  type WhereNode,
} from "kysely";
import { type Database, TENANT_TABLES } from "./schema.ts";

declare const tenantPinned: unique symbol;
/**
 * A handle whose every query the guard below pins to one tenant. Only `pinToTenant` makes one, so a
 * store that takes a TenantDb cannot be handed the global handle. (A type-level mark: no runtime cost.)
 */
export type TenantDb = Kysely<Database> & { readonly [tenantPinned]: string };
/** A transaction on a TenantDb: its queries are pinned to the same tenant. */
export type TenantTransaction = Transaction<Database> & { readonly [tenantPinned]: string };

export function pinToTenant(db: Kysely<Database>, tenantId: string): TenantDb;
export function pinToTenant(db: Transaction<Database>, tenantId: string): TenantTransaction;
export function pinToTenant(db: Kysely<Database>, tenantId: string): TenantDb {
  return db.withPlugin(new TenantScopePlugin(tenantId)) as TenantDb;
}

export class TenantScopeViolation extends Error {
  constructor(message: string) {
    super(`tenant scope violation: ${message}`);
    this.name = "TenantScopeViolation";
  }
}

interface TableRef {
  table: string;
  alias: string | undefined;
}

export class TenantScopePlugin implements KyselyPlugin {
  readonly tenantId: string;
  constructor(tenantId: string) {
    this.tenantId = tenantId;
  }

  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    const node = args.node;
    if (SelectQueryNode.is(node)) this.#checkSelect(node);
    else if (UpdateQueryNode.is(node)) this.#checkUpdate(node);
    else if (DeleteQueryNode.is(node)) this.#requirePinned(node.from.froms.flatMap(tableRef), node.where, "delete");
    else if (InsertQueryNode.is(node)) this.#checkInsert(node);
    return node;
  }

  #checkSelect(node: SelectQueryNode): void {
    const refs = [...(node.from?.froms ?? []), ...(node.joins ?? []).map((j: JoinNode) => j.table)].flatMap(tableRef);
    this.#requirePinned(refs, node.where, "select");
  }

  #checkUpdate(node: UpdateQueryNode): void {
    const refs = node.table ? tableRef(node.table) : [];
    this.#requirePinned(refs, node.where, "update");
    const movesTenant = (node.updates ?? []).some(
      (update) => ColumnUpdateNode.is(update) && columnName(update.column) === "tenant_id",
    );
    if (movesTenant && refs.some(isTenantTable)) throw new TenantScopeViolation("an update may not change tenant_id");
  }

  #checkInsert(node: InsertQueryNode): void {
    const refs = tableRef(node.into as OperationNode);
    if (refs.some(isTenantTable)) this.#requireInsertRows(node, refs[0]?.table ?? "");
  }

  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    return args.result;
  }

  #requirePinned(refs: TableRef[], where: WhereNode | undefined, verb: string): void {
    const scoped = refs.filter(isTenantTable);
    if (scoped.length === 0) return;
    const conjuncts = where ? flattenAnd(where.where) : [];
    for (const ref of scoped) {
      const pinned = conjuncts.some((c) => this.#pinsTenant(c, ref, scoped.length > 1));
      if (!pinned) {
        throw new TenantScopeViolation(
          `${verb} on "${ref.table}" must filter tenant_id = '${this.tenantId}' (use the tenant-scoped store handle)`,
        );
      }
    }
  }

  #pinsTenant(node: OperationNode, ref: TableRef, needQualifier: boolean): boolean {
    if (!BinaryOperationNode.is(node)) return false;
    if (!OperatorNode.is(node.operator) || node.operator.operator !== "=") return false;
    const [column, value] = ValueNode.is(node.leftOperand)
      ? [node.rightOperand, node.leftOperand]
      : [node.leftOperand, node.rightOperand];
    if (!ValueNode.is(value) || value.value !== this.tenantId) return false;
    const name = columnName(column);
    if (name !== "tenant_id") return false;
    const qualifier = columnQualifier(column);
    if (qualifier === undefined) return !needQualifier;
    return qualifier === (ref.alias ?? ref.table);
  }

  #requireInsertRows(node: InsertQueryNode, table: string): void {
    const columns = (node.columns ?? []).map((c) => c.column.name);
    const index = columns.indexOf("tenant_id");
    if (index < 0 || !node.values || !ValuesNode.is(node.values)) {
      throw new TenantScopeViolation(`insert into "${table}" must set tenant_id = '${this.tenantId}'`);
    }
    for (const row of node.values.values) {
      const value = PrimitiveValueListNode.is(row)
        ? row.values[index]
        : ValueListNode.is(row)
          ? literalValue(row.values[index])
          : undefined;
      if (value !== this.tenantId) {
        throw new TenantScopeViolation(`insert into "${table}" must set tenant_id = '${this.tenantId}'`);
      }
    }
  }
}

function isTenantTable(ref: TableRef): boolean {
  return TENANT_TABLES.has(ref.table);
}

function tableRef(node: OperationNode): TableRef[] {
  if (TableNode.is(node)) return [{ table: node.table.identifier.name, alias: undefined }];
  if (AliasNode.is(node) && TableNode.is(node.node)) {
    const alias = IdentifierNode.is(node.alias) ? node.alias.name : undefined;
    return [{ table: node.node.table.identifier.name, alias }];
  }
  return [];
}

function flattenAnd(node: OperationNode): OperationNode[] {
  if (AndNode.is(node)) return [...flattenAnd(node.left), ...flattenAnd(node.right)];
  if (ParensNode.is(node)) return flattenAnd(node.node);
  return [node];
}

function columnName(node: OperationNode): string | undefined {
  if (ColumnNode.is(node)) return node.column.name;
  if (ReferenceNode.is(node) && ColumnNode.is(node.column)) return node.column.column.name;
  return undefined;
}

function columnQualifier(node: OperationNode): string | undefined {
  return ReferenceNode.is(node) && node.table ? node.table.table.identifier.name : undefined;
}

function literalValue(node: OperationNode | undefined): unknown {
  return node && ValueNode.is(node) ? node.value : undefined;
}
