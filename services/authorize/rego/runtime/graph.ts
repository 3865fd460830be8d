// graph.reachable and graph.reachable_paths as OPA (v1/topdown/reachable.go): a graph is an object
// from node to its neighbours (an array or a set; anything else has none).
import { consume } from "./budget";
import { operandTypeError } from "./operands";
import { ARRAY, OBJECT, SET, arrayAppend, compare, item, length, newArray, newSet, objectGet, setAdd, setContains, typeOf } from "./value";

function vertexCount(collection: usize): u32 {
  const t = typeOf(collection);
  return t == ARRAY || t == SET ? length(collection) : 0;
}

function checkOperands(graph: usize, initial: usize, name: string): bool {
  if (typeOf(graph) != OBJECT) {
    operandTypeError(name, 1, "must be object but got ", graph);
    return false;
  }
  const t = typeOf(initial);
  if (t != ARRAY && t != SET) {
    operandTypeError(name, 2, "must be {array, set} but got ", initial);
    return false;
  }
  return true;
}

/** Every node reachable from the initial ones that the graph has (breadth first, as OPA). */
export function b_graph_reachable(graph: usize, initial: usize): usize {
  if (!checkOperands(graph, initial, "graph.reachable")) return 0;
  const queue = newArray(vertexCount(initial) + 4);
  for (let i: u32 = 0; i < length(initial); i++) arrayAppend(queue, item(initial, i));
  const reached = newSet(8);
  for (let head: u32 = 0; head < length(queue); head++) {
    consume(1);
    const node = item(queue, head);
    const edges = objectGet(graph, node);
    if (edges == 0) continue;
    const n = vertexCount(edges);
    for (let i: u32 = 0; i < n; i++) {
      consume(1);
      if (!setContains(reached, item(edges, i))) arrayAppend(queue, item(edges, i));
    }
    setAdd(reached, node);
  }
  return reached;
}

/** Whether `node` is on `path` (OPA's `reached` set is exactly the path's nodes). */
function onPath(path: usize, node: usize): bool {
  for (let i: u32 = 0; i < length(path); i++) if (compare(item(path, i), node) == 0) return true;
  return false;
}

function extended(path: usize, node: usize): usize {
  const out = newArray(length(path) + 1);
  for (let i: u32 = 0; i < length(path); i++) arrayAppend(out, item(path, i));
  arrayAppend(out, node);
  return out;
}

/** OPA's pathBuilder: every path from `root` on, ending at a leaf, a missing node or a cycle. */
function buildPaths(graph: usize, root: usize, path: usize, paths: usize): void {
  consume(1 + <i32>length(path));
  const edges = objectGet(graph, root);
  if (edges == 0) {
    setAdd(paths, path); // a node outside the graph ends the path before it
    return;
  }
  const here = extended(path, root);
  const n = vertexCount(edges);
  if (n == 0) {
    setAdd(paths, here);
    return;
  }
  for (let i: u32 = 0; i < n; i++) {
    const neighbor = item(edges, i);
    if (onPath(here, neighbor)) setAdd(paths, here);
    else buildPaths(graph, neighbor, here, paths);
  }
}

export function b_graph_reachable_paths(graph: usize, initial: usize): usize {
  if (!checkOperands(graph, initial, "graph.reachable_paths")) return 0;
  const paths = newSet(8);
  for (let i: u32 = 0; i < length(initial); i++) {
    const node = item(initial, i);
    const edges = objectGet(graph, node);
    if (edges == 0) continue;
    const start = newArray(1);
    arrayAppend(start, node);
    const n = vertexCount(edges);
    if (n == 0) setAdd(paths, start);
    for (let e: u32 = 0; e < n; e++) buildPaths(graph, item(edges, e), start, paths);
  }
  return paths;
}
