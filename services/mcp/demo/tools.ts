// The demo MCP server's tools: a small shop's orders. Each tool is what `tools/list` shows — a name,
// a description and a JSON Schema — and, where the COAZ-MCP binding's default mapping (action
// "tools/call" on {"type": "tool", "id": <name>}) is not enough, an `x-authzen-mapping` in that
// schema saying which AuthZEN request its call is: the action and the resource it touches, taken
// from the arguments with CEL (`$params.arguments.…`). The subject is always the token's (`$token.sub`,
// the human); the agent goes in the context. policies/examples/mcp-demo decides them.
//
// Every call under a mandate counts against its usage limit on the meter "calls" (one per call, or
// what the tool's `x-mandate-usage` says). `scopes` are checked before the policy is asked: a token
// without them gets the MCP step-up challenge (403 insufficient_scope naming them).
import type { JsonObject } from "@bufbuild/protobuf";

export interface DemoTool {
  name: string;
  description: string;
  inputSchema: JsonObject;
  /** Scopes the token must hold to call it. */
  scopes?: string[];
  run(args: Record<string, unknown>): unknown;
}

interface Order {
  id: string;
  item: string;
  total: number;
  currency: string;
  status: "open" | "shipped" | "cancelled";
}

const ORDERS: Order[] = [
  { id: "ord_1001", item: "Espresso machine", total: 249, currency: "EUR", status: "shipped" },
  { id: "ord_1002", item: "Coffee beans, 1 kg", total: 24, currency: "EUR", status: "open" },
  { id: "ord_1003", item: "Milk frother", total: 39, currency: "EUR", status: "open" },
];

/**
 * A tool's `x-authzen-mapping`: its call is `action` on `resource`, the subject and the agent taken
 * from the token only (COAZ-MCP "Default Mappings"), never from the arguments.
 */
function authzenMapping(action: string, resource: JsonObject): JsonObject {
  return {
    "x-authzen-mapping": {
      evaluation: {
        subject: { type: "identity", id: "$token.sub" },
        action: { name: action },
        resource,
        context: { agent: "$token.?client_id" },
      },
    },
  };
}

const orderId = { order_id: { type: "string", description: "the order, e.g. ord_1001" } };
/** The input of a tool on one order, and the order its call touches. */
const ORDER_INPUT = { type: "object", properties: orderId, required: ["order_id"] };
const THE_ORDER = { type: "order", id: "$params.arguments.order_id" };

function order(id: unknown): Order {
  const found = ORDERS.find((o) => o.id === id);
  if (!found) throw new Error(`no order ${String(id)}`);
  return found;
}

export const DEMO_TOOLS: readonly DemoTool[] = [
  {
    // No declared mapping: the binding's default, decided on the tool's name.
    name: "orders_list",
    description: "List the customer's orders",
    inputSchema: { type: "object", properties: {} },
    run: () => ORDERS.map(({ id, item, status }) => ({ id, item, status })),
  },
  {
    name: "order_get",
    description: "Show one order with its details (counts as 5 calls against the mandate)",
    inputSchema: {
      ...ORDER_INPUT,
      "x-mandate-usage": { meter: "calls", amount: 5 },
      ...authzenMapping("orders.read", THE_ORDER),
    },
    run: (args) => order(args.order_id),
  },
  {
    name: "order_cancel",
    description: "Cancel an open order",
    inputSchema: { ...ORDER_INPUT, ...authzenMapping("orders.cancel", THE_ORDER) },
    run: (args) => ({ ...order(args.order_id), status: "cancelled" }),
  },
  {
    name: "payment_send",
    description: "Pay an order",
    inputSchema: {
      type: "object",
      properties: {
        ...orderId,
        amount: { type: "number", description: "how much, in the order's currency" },
      },
      required: ["order_id", "amount"],
      ...authzenMapping("payments.send", {
        type: "payment",
        id: "$params.arguments.order_id",
        properties: { amount: "$params.arguments.amount" },
      }),
    },
    run: (args) => ({ paid: order(args.order_id).id, amount: args.amount }),
  },
  {
    name: "order_refund",
    description: "Refund a shipped order",
    inputSchema: { ...ORDER_INPUT, ...authzenMapping("orders.refund", THE_ORDER) },
    scopes: ["orders.refund"],
    run: (args) => ({ refunded: order(args.order_id).id }),
  },
];
