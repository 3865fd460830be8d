// What compiled policy code calls: documents, iteration, equality, collection building, rule
// results with OPA's conflict errors, `with` replacement and the ABI's evaluation entry points.
// Every function returns a value address, or 0 for "undefined" (the generated code then fails the
// current query branch).
import { budgetStart, consumeMany } from "./budget";
import { dumpJson, parseJson } from "./json";
import { heapGet, heapSet, malloc, setHeapLimit } from "./memory";
import { int64Of, isInt64, newInt } from "./numbers";
import {
  ARRAY, BOOLEAN, OBJECT, SET,
  arrayAppend, booleanValue, compare, item, length, newArray, newBoolean, newObject, newSet, newString,
  objectGet, objectInsert, objectKey, objectValue, setAdd, setContains, typeOf,
} from "./value";

@external("env", "opa_abort") declare function opa_abort(addr: usize): void;
// Linked by the compiler: the policy's entry function and its JSON tables.
@external("mandate", "policy_entry") declare function policy_entry(entrypoint: i32, input: usize, data: usize): usize;
@external("mandate", "policy_entrypoints") declare function policy_entrypoints(): usize;
@external("mandate", "policy_builtins") declare function policy_builtins(): usize;

// ---- aborting ------------------------------------------------------------------------------------

/** Ends the evaluation with an error; opa-wasm throws the message. */
export function abortWith(message: string): void {
  const n = message.length;
  const at = malloc(<usize>n + 1);
  for (let i = 0; i < n; i++) store<u8>(at + <usize>i, <u8>message.charCodeAt(i));
  store<u8>(at + <usize>n, 0);
  opa_abort(at);
  unreachable();
}

export function abortWith2(prefix: string, name: string): void {
  const n = prefix.length + name.length;
  const at = malloc(<usize>n + 1);
  for (let i = 0; i < prefix.length; i++) store<u8>(at + <usize>i, <u8>prefix.charCodeAt(i));
  for (let i = 0; i < name.length; i++) store<u8>(at + <usize>(prefix.length + i), <u8>name.charCodeAt(i));
  store<u8>(at + <usize>n, 0);
  opa_abort(at);
  unreachable();
}

/** Built-in type errors abort (the default) or make the call undefined; set by the start function. */
export let strictBuiltinErrors: bool = true;

export function rt_set_strict(strict: i32): void {
  strictBuiltinErrors = strict != 0;
}

export function rt_set_heap_limit(bytes: usize): void {
  setHeapLimit(bytes);
}

/** Aborts with a message held in a string value (the compiler's messages). */
export function rt_abort(message: usize): void {
  const n = load<u32>(message, 4);
  const at = malloc(<usize>n + 1);
  memory.copy(at, <usize>load<u32>(message, 8), <usize>n);
  store<u8>(at + <usize>n, 0);
  opa_abort(at);
  unreachable();
}

// ---- constants and documents ---------------------------------------------------------------------

/** Moves the heap past the compiler's constant data (called once, from the start function). */
export function rt_heap_reserve(end: usize): void {
  const aligned = (end + 7) & ~(<usize>7);
  if (heapGet() < aligned) heapSet(aligned);
}

export function rt_const(addr: usize, len: usize): usize {
  return parseJson(addr, len);
}

/** `x[key]`: array index, object key or set member; undefined otherwise. */
export function rt_dot(v: usize, key: usize): usize {
  const t = typeOf(v);
  if (t == OBJECT) return objectGet(v, key);
  if (t == ARRAY) {
    // OPA's Array.Get: an index whose text is an int64 ("1.0" is not one).
    if (!isInt64(key)) return 0;
    const i = int64Of(key);
    return i >= 0 && i < <i64>length(v) ? item(v, <u32>i) : 0;
  }
  if (t == SET) return setContains(v, key) ? key : 0;
  return 0;
}

/** `some x in v` needs a collection (an error otherwise); `every` over a scalar is undefined. */
export function rt_check_iterable(v: usize, error: i32): i32 {
  const t = typeOf(v);
  if (t == ARRAY || t == OBJECT || t == SET) return 1;
  if (error != 0 && strictBuiltinErrors) abortWith("eval_type_error: `some .. in` expects an array, set or object");
  return 0;
}

/** How many (key, value) pairs a scan visits: 0 for scalars. */
export function rt_iter_len(v: usize): i32 {
  const t = typeOf(v);
  return t == ARRAY || t == OBJECT || t == SET ? <i32>length(v) : 0;
}

export function rt_iter_key(v: usize, i: i32): usize {
  const t = typeOf(v);
  if (t == ARRAY) return newInt(<i64>i);
  if (t == OBJECT) return objectKey(v, <u32>i);
  return item(v, <u32>i);
}

export function rt_iter_value(v: usize, i: i32): usize {
  return typeOf(v) == OBJECT ? objectValue(v, <u32>i) : item(v, <u32>i);
}

export function rt_equal(a: usize, b: usize): i32 {
  return compare(a, b) == 0 ? 1 : 0;
}

/** An expression holds unless its value is `false` (Rego's truth of an expression). */
export function rt_truthy(v: usize): i32 {
  return typeOf(v) == BOOLEAN && !booleanValue(v) ? 0 : 1;
}

export function rt_bool(b: i32): usize {
  return newBoolean(b != 0);
}

/** Destructuring checks: an array of exactly `n` items / an object. */
export function rt_is_array_of(v: usize, n: i32): i32 {
  return typeOf(v) == ARRAY && <i32>length(v) == n ? 1 : 0;
}

export function rt_is_object_of(v: usize, n: i32): i32 {
  return typeOf(v) == OBJECT && <i32>length(v) == n ? 1 : 0;
}

// ---- building collections ------------------------------------------------------------------------

export function rt_array(): usize {
  return newArray(4);
}

export function rt_set(): usize {
  return newSet(4);
}

export function rt_object(): usize {
  return newObject(4);
}

export function rt_array_append(a: usize, v: usize): void {
  arrayAppend(a, v);
}

export function rt_set_add(s: usize, v: usize): void {
  setAdd(s, v);
}

export function rt_object_insert(o: usize, k: usize, v: usize): void {
  objectInsert(o, k, v);
}

/** Object comprehensions and partial objects: one key, one value (OPA's conflict error). */
export function rt_object_insert_unique(o: usize, k: usize, v: usize): void {
  const existing = objectGet(o, k);
  if (existing != 0 && compare(existing, v) != 0) abortWith("eval_conflict_error: object keys must be unique");
  objectInsert(o, k, v);
}

// ---- rule results --------------------------------------------------------------------------------

export function rt_merge_complete(result: usize, v: usize): usize {
  if (result != 0 && compare(result, v) != 0) {
    abortWith("eval_conflict_error: complete rules must not produce multiple outputs");
  }
  return v;
}

export function rt_merge_function(result: usize, v: usize): usize {
  if (result != 0 && compare(result, v) != 0) {
    abortWith("eval_conflict_error: functions must not produce multiple outputs for same inputs");
  }
  return v;
}

/**
 * Ref-head rules (`p[x].y := v`, `p[x] contains y`): puts `leaf` at `keys` below `root`, making
 * objects on the way. Mode 0 sets a single value (conflicting values are an error), mode 1 adds
 * the leaf to a set at that path.
 */
export function rt_tree_insert(root: usize, keys: usize, leaf: usize, mode: i32): void {
  let node = root;
  const n = length(keys);
  for (let i: u32 = 0; i + 1 < n; i++) {
    const k = item(keys, i);
    let next = objectGet(node, k);
    if (next == 0) {
      next = newObject(2);
      objectInsert(node, k, next);
    } else if (typeOf(next) != OBJECT) {
      abortWith("eval_conflict_error: object keys must be unique");
    }
    node = next;
  }
  const last = item(keys, n - 1);
  if (mode == 1) {
    let set = objectGet(node, last);
    if (set == 0) {
      set = newSet(4);
      objectInsert(node, last, set);
    }
    setAdd(set, leaf);
    return;
  }
  rt_object_insert_unique(node, last, leaf);
}

/** A default for one key of a ref-head rule, when no rule defined it. */
export function rt_object_insert_absent(o: usize, k: usize, v: usize): void {
  if (objectGet(o, k) == 0) objectInsert(o, k, v);
}

/** A shallow copy of an object, or a fresh one when `v` is not an object. */
export function rt_object_copy(v: usize): usize {
  const copy = newObject(typeOf(v) == OBJECT ? length(v) : 4);
  if (typeOf(v) == OBJECT) {
    const n = length(v);
    consumeMany(n);
    for (let i: u32 = 0; i < n; i++) objectInsert(copy, objectKey(v, i), objectValue(v, i));
  }
  return copy;
}

/** Virtual documents: a rule's value merged into the base document at `key` (objects merge deeply). */
export function rt_object_merge_at(o: usize, k: usize, v: usize): void {
  const existing = objectGet(o, k);
  objectInsert(o, k, existing != 0 ? mergeDeep(existing, v) : v);
}

/** A rule's value at `key` of another rule's object (p[x] := … and p.q := …): keys must agree. */
export function rt_object_merge_rule(o: usize, k: usize, v: usize): void {
  const existing = objectGet(o, k);
  if (existing != 0 && compare(existing, v) != 0 && (typeOf(existing) != OBJECT || typeOf(v) != OBJECT)) {
    abortWith("eval_conflict_error: object keys must be unique");
  }
  objectInsert(o, k, existing != 0 ? mergeDeep(existing, v) : v);
}

function mergeDeep(a: usize, b: usize): usize {
  if (typeOf(a) != OBJECT || typeOf(b) != OBJECT) return b;
  const out = rt_object_copy(a);
  const n = length(b);
  for (let i: u32 = 0; i < n; i++) rt_object_merge_at(out, objectKey(b, i), objectValue(b, i));
  return out;
}

/** `with data.a.b as v`: a copy of `doc` with the path replaced (objects made on the way). */
export function rt_upsert_path(doc: usize, path: usize, at: i32, v: usize): usize {
  if (<u32>at >= length(path)) return v;
  const copy = rt_object_copy(doc);
  const k = item(path, <u32>at);
  const child = typeOf(doc) == OBJECT ? objectGet(doc, k) : 0;
  objectInsert(copy, k, rt_upsert_path(child, path, at + 1, v));
  return copy;
}

// ---- evaluation entry points ---------------------------------------------------------------------

const RESULT: string = "result";

/** `[{"result": v}]`, or `[]` when the entrypoint is undefined. */
function resultSet(v: usize): usize {
  const rows = newArray(1);
  if (v == 0) return rows;
  const key = malloc(6);
  for (let i = 0; i < 6; i++) store<u8>(key + <usize>i, <u8>RESULT.charCodeAt(i));
  const row = newObject(1);
  objectInsert(row, newString(key, 6), v);
  arrayAppend(rows, row);
  return rows;
}

export function eval(ctx: usize): i32 {
  budgetStart();
  const input = <usize>load<u32>(ctx);
  const data = <usize>load<u32>(ctx, 4);
  store<u32>(ctx, <u32>resultSet(policy_entry(load<i32>(ctx, 8), input, data)), 12);
  return 0;
}

/** The one-call fast path (ABI 1.2): input JSON in, result JSON out. */
export function opa_eval(
  _reserved: i32, entrypoint: i32, data: usize, input: usize, inputLen: usize, heap: usize, _format: i32,
): usize {
  budgetStart(); // parsing the input is metered too: hostile input arrives here
  heapSet(heap); // the caller wrote the input just below `heap`
  const parsed = inputLen == 0 ? 0 : parseJson(input, inputLen);
  if (inputLen != 0 && parsed == 0) abortWith("invalid input JSON");
  return dumpJson(resultSet(policy_entry(entrypoint, parsed, data)));
}

export function entrypoints(): usize {
  return policy_entrypoints();
}

export function builtins(): usize {
  return policy_builtins();
}

export function rt_string(bytes: usize, len: u32): usize {
  return newString(bytes, len);
}

export function rt_type(v: usize): i32 {
  return <i32>typeOf(v);
}
