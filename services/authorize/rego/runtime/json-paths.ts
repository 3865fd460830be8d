// json.filter, json.remove and json.patch as OPA (v1/topdown/json.go, internal/edittree): paths
// are JSON pointers ("/a/0", "~1" for "/", "~0" for "~"; "" is the root) or arrays of segments;
// sets are addressed by their elements. A patch that cannot be applied makes json.patch undefined,
// as in OPA (which drops its errors).
import { consume, consumeBytes, consumeMany } from "./budget";
import { abortWith } from "./eval";
import { malloc } from "./memory";
import { operandError, operandTypeError } from "./operands";
import { int64Of, integerText, isInt64, lastParsedInt, parseInt64 } from "./numbers";
import {
  ARRAY, NULL, OBJECT, SET, STRING,
  arrayAppend, compare, item, length, newArray, newNull, newObject, newSet, newString, objectGet, objectInsert,
  objectKey, objectValue, setAdd, setContains, stringBytes, stringLen, typeOf,
} from "./value";

// ---- paths ---------------------------------------------------------------------------------------

/** Copies `n` bytes replacing "~<digit>" by `by` (OPA replaces ~1 first, then ~0). Returns the new length. */
function replaceEscape(from: usize, n: usize, to: usize, digit: u8, by: u8): usize {
  let w: usize = 0;
  for (let i: usize = 0; i < n; i++) {
    const c = load<u8>(from + i);
    if (c == 0x7e && i + 1 < n && load<u8>(from + i + 1) == digit) {
      store<u8>(to + w++, by);
      i++;
    } else store<u8>(to + w++, c);
  }
  return w;
}

function segment(bytes: usize, n: usize): usize {
  const once = malloc(n);
  const twice = malloc(n);
  const m = replaceEscape(bytes, n, once, 0x31, 0x2f);
  return newString(twice, <u32>replaceEscape(once, m, twice, 0x30, 0x7e));
}

/**
 * OPA's parsePath: a string is a JSON pointer ("" the root; leading slashes dropped, then split on
 * "/"), an array is the segments themselves. 0 for any other value.
 */
function parsePath(p: usize): usize {
  const t = typeOf(p);
  if (t == ARRAY) return p;
  if (t != STRING) return 0;
  const bytes = stringBytes(p);
  const n = <usize>stringLen(p);
  consumeBytes(n);
  const out = newArray(4);
  if (n == 0) return out;
  let start: usize = 0;
  while (start < n && load<u8>(bytes + start) == 0x2f) start++;
  for (let i = start; i <= n; i++) {
    if (i == n || load<u8>(bytes + i) == 0x2f) {
      arrayAppend(out, segment(bytes + start, i - start));
      start = i + 1;
    }
  }
  return out;
}

/**
 * OPA's pathsToObject: the paths as a tree of objects whose leaves are null; a shorter path wins
 * over the longer ones below it. 0 after an operand error.
 */
function pathTree(paths: usize, name: string): usize {
  const t = typeOf(paths);
  if (t != ARRAY && t != SET) return operandTypeError(name, 2, "must be one of {set, array} but got ", paths);
  const root = newObject(4);
  const n = length(paths);
  for (let i: u32 = 0; i < n; i++) {
    const path = parsePath(item(paths, i));
    if (path == 0) {
      return operandError(
        name,
        "operand 2 must be one of {set, array} containing string paths or array of path segments but got ",
        item(paths, i),
      );
    }
    const segments = length(path);
    consumeMany(segments);
    if (segments == 0) continue;
    let node = root;
    let done = false;
    for (let s: u32 = 0; s + 1 < segments && !done; s++) {
      const key = item(path, s);
      const child = objectGet(node, key);
      if (child == 0) {
        const fresh = newObject(2);
        objectInsert(node, key, fresh);
        node = fresh;
      } else if (typeOf(child) == NULL) done = true;
      else node = child;
    }
    if (!done) objectInsert(node, item(path, segments - 1), newNull());
  }
  return root;
}

// ---- json.filter and json.remove -----------------------------------------------------------------

/**
 * A collection rebuilt from what `keep(child, subtree)` returns for each child (its subtree: the
 * tree's entry for the child's index as a string, set element or key; 0 when none), leaving out the
 * children it returns 0 for. Scalars are kept as they are: json.filter and json.remove walk alike.
 */
function rebuildChildren(v: usize, tree: usize, keep: (child: usize, subtree: usize) => usize): usize {
  const t = typeOf(v);
  if (t != ARRAY && t != OBJECT && t != SET) return v;
  const n = length(v);
  consumeMany(n);
  if (t == ARRAY) {
    const out = newArray(4);
    for (let i: u32 = 0; i < n; i++) {
      const kept = keep(item(v, i), objectGet(tree, integerText(i)));
      if (kept != 0) arrayAppend(out, kept);
    }
    return out;
  }
  if (t == SET) {
    const out = newSet(4);
    for (let i: u32 = 0; i < n; i++) {
      const kept = keep(item(v, i), objectGet(tree, item(v, i)));
      if (kept != 0) setAdd(out, kept);
    }
    return out;
  }
  const out = newObject(4);
  for (let i: u32 = 0; i < n; i++) {
    const kept = keep(objectValue(v, i), objectGet(tree, objectKey(v, i)));
    if (kept != 0) objectInsert(out, objectKey(v, i), kept);
  }
  return out;
}

/** OPA's filterObject: keeps what the tree names (array elements by their index as a string). */
function filterValue(v: usize, tree: usize): usize {
  if (typeOf(tree) == NULL) return v;
  return rebuildChildren(v, tree, filterChild);
}

/** A child the tree does not name is left out. */
function filterChild(child: usize, subtree: usize): usize {
  return subtree == 0 ? 0 : filterValue(child, subtree);
}

export function b_json_filter(o: usize, paths: usize): usize {
  if (typeOf(o) != OBJECT) return operandTypeError("json.filter", 1, "must be object but got ", o);
  const tree = pathTree(paths, "json.filter");
  return tree == 0 ? 0 : filterValue(o, tree);
}

/** OPA's jsonRemove: drops what the tree's null leaves name; 0 when `v` itself is dropped. */
function removeValue(v: usize, tree: usize): usize {
  if (tree == 0) return v;
  if (typeOf(tree) == NULL) return 0;
  if (typeOf(tree) != OBJECT) return v;
  return rebuildChildren(v, tree, removeValue);
}

export function b_json_remove(o: usize, paths: usize): usize {
  if (typeOf(o) != OBJECT) return operandTypeError("json.remove", 1, "must be object but got ", o);
  const tree = pathTree(paths, "json.remove");
  return tree == 0 ? 0 : removeValue(o, tree);
}

/**
 * The edit tree's toIndex: an array index from a number whose text is an int64, or from a string
 * ("-" is the end; strconv.ParseInt's syntax, no leading zeros). -1 when it is none.
 */
function numberIndex(key: usize, len: u32): i64 {
  if (isInt64(key)) return int64Of(key);
  if (typeOf(key) != STRING) return -1;
  const bytes = stringBytes(key);
  const n = stringLen(key);
  if (n == 1 && load<u8>(bytes) == 0x2d) return <i64>len;
  if (!parseInt64(bytes, n)) return -1;
  if (n > 1 && load<u8>(bytes) == 0x30) return -1;
  return lastParsedInt();
}

// ---- json.patch ----------------------------------------------------------------------------------

/** Set when a patch operation cannot be applied (the whole patch is then undefined). */
let failed = false;

function fail(): usize {
  failed = true;
  return 0;
}

/** The child of a composite value at one path segment, or 0. */
function childAt(c: usize, key: usize): usize {
  const t = typeOf(c);
  if (t == OBJECT) return objectGet(c, key);
  if (t == SET) return setContains(c, key) ? key : 0;
  if (t == ARRAY) {
    const i = numberIndex(key, length(c));
    return i >= 0 && i < <i64>length(c) ? item(c, <u32>i) : 0;
  }
  return 0;
}

/** A copy of a composite value with the child at `key` replaced by `child`. */
function withChild(c: usize, key: usize, old: usize, child: usize): usize {
  const t = typeOf(c);
  const n = length(c);
  consumeMany(n);
  if (t == OBJECT) {
    const out = newObject(n);
    for (let i: u32 = 0; i < n; i++) objectInsert(out, objectKey(c, i), objectValue(c, i));
    objectInsert(out, key, child);
    return out;
  }
  if (t == SET) {
    const out = newSet(n);
    for (let i: u32 = 0; i < n; i++) if (compare(item(c, i), old) != 0) setAdd(out, item(c, i));
    setAdd(out, child);
    return out;
  }
  const at = <u32>numberIndex(key, n);
  const out = newArray(n);
  for (let i: u32 = 0; i < n; i++) arrayAppend(out, i == at ? child : item(c, i));
  return out;
}

/** Adds `v` under `key` of a composite value (the edit tree's Insert). */
function inserted(c: usize, key: usize, v: usize): usize {
  const t = typeOf(c);
  const n = length(c);
  if (t == OBJECT) return withChild(c, key, 0, v);
  if (t == SET) return compare(key, v) == 0 ? withChild(c, key, v, v) : fail();
  if (t != ARRAY) return fail();
  const at = numberIndex(key, n);
  if (at < 0 || at > <i64>n) return fail();
  consumeMany(n);
  const out = newArray(n + 1);
  for (let i: u32 = 0; i <= n; i++) {
    if (<i64>i == at) arrayAppend(out, v);
    if (i < n) arrayAppend(out, item(c, i));
  }
  return out;
}

/** Removes the child under `key` of a composite value, which must exist (the edit tree's Delete). */
function removed(c: usize, key: usize): usize {
  const t = typeOf(c);
  const n = length(c);
  if (t != OBJECT && t != SET && t != ARRAY) return fail();
  const at = t == ARRAY ? numberIndex(key, n) : 0;
  if (t == ARRAY ? at < 0 || at >= <i64>n : childAt(c, key) == 0) return fail();
  consumeMany(n);
  if (t == OBJECT) {
    const out = newObject(n);
    for (let i: u32 = 0; i < n; i++) {
      if (compare(objectKey(c, i), key) != 0) objectInsert(out, objectKey(c, i), objectValue(c, i));
    }
    return out;
  }
  if (t == SET) {
    const out = newSet(n);
    for (let i: u32 = 0; i < n; i++) if (compare(item(c, i), key) != 0) setAdd(out, item(c, i));
    return out;
  }
  const out = newArray(n);
  for (let i: u32 = 0; i < n; i++) if (<i64>i != at) arrayAppend(out, item(c, i));
  return out;
}

/** `doc` with the edit applied at the end of `path` (from segment `depth` on): insert `v`, or delete when v is 0. */
function edited(doc: usize, path: usize, depth: u32, v: usize): usize {
  consume(1);
  const key = item(path, depth);
  if (depth + 1 == length(path)) return v != 0 ? inserted(doc, key, v) : removed(doc, key);
  const child = childAt(doc, key);
  if (child == 0) return fail();
  const changed = edited(child, path, depth + 1, v);
  return failed ? 0 : withChild(doc, key, child, changed);
}

function valueAt(doc: usize, path: usize): usize {
  let node = doc;
  for (let i: u32 = 0; i < length(path) && node != 0; i++) {
    consume(1);
    node = childAt(node, item(path, i));
  }
  return node != 0 ? node : fail();
}

/** The document after inserting `v` at `path` ("" replaces the document, even a removed one). */
function insertAt(doc: usize, path: usize, v: usize): usize {
  if (length(path) == 0) return v;
  return doc == 0 ? fail() : edited(doc, path, 0, v);
}

/** The document after deleting at `path`; 0 (removed) for the root. */
function deleteAt(doc: usize, path: usize): usize {
  if (doc == 0) return fail();
  return length(path) == 0 ? 0 : edited(doc, path, 0, 0);
}

function field(op: usize, name: string): usize {
  const n = name.length;
  const at = malloc(<usize>n);
  for (let i = 0; i < n; i++) store<u8>(at + <usize>i, <u8>name.charCodeAt(i));
  return objectGet(op, newString(at, <u32>n));
}

function isOp(op: usize, name: string): bool {
  const n = name.length;
  if (stringLen(op) != <u32>n) return false;
  for (let i = 0; i < n; i++) if (<i32>load<u8>(stringBytes(op) + <usize>i) != name.charCodeAt(i)) return false;
  return true;
}

/** One RFC 6902 operation on `doc` (0: the document was removed); `failed` when it cannot apply. */
function applyOperation(doc: usize, operation: usize): usize {
  if (typeOf(operation) != OBJECT) return fail();
  const op = field(operation, "op");
  if (op == 0 || typeOf(op) != STRING) return fail();
  const isAdd = isOp(op, "add");
  const isRemove = isOp(op, "remove");
  const isReplace = isOp(op, "replace");
  const isMove = isOp(op, "move");
  const isCopy = isOp(op, "copy");
  const isTest = isOp(op, "test");
  if (!isAdd && !isRemove && !isReplace && !isMove && !isCopy && !isTest) return fail();
  const pathValue = field(operation, "path");
  const fromValue = isMove || isCopy ? field(operation, "from") : 1;
  const value = isAdd || isReplace || isTest ? field(operation, "value") : 1;
  if (pathValue == 0 || fromValue == 0 || value == 0) return fail();
  const path = parsePath(pathValue);
  if (path == 0) return fail();
  if (isAdd) return insertAt(doc, path, value);
  if (isRemove) return deleteAt(doc, path);
  if (isReplace) {
    const without = deleteAt(doc, path);
    return failed ? 0 : insertAt(without, path, value);
  }
  if (isTest) {
    const found = doc == 0 ? fail() : valueAt(doc, path);
    return failed || compare(found, value) != 0 ? fail() : doc;
  }
  const from = parsePath(fromValue);
  if (from == 0 || doc == 0) return fail();
  const chunk = valueAt(doc, from);
  if (failed) return 0;
  const rest = isMove ? deleteAt(doc, from) : doc;
  return failed ? 0 : insertAt(rest, path, chunk);
}

export function b_json_patch(target: usize, operations: usize): usize {
  if (typeOf(operations) != ARRAY) return operandTypeError("json.patch", 2, "must be array but got ", operations);
  failed = false;
  let doc = target;
  const n = length(operations);
  for (let i: u32 = 0; i < n && !failed; i++) doc = applyOperation(doc, item(operations, i));
  if (failed) return 0;
  // OPA hands a removed document (no value at all) on as the result: not reproducible, so an error.
  if (doc == 0) abortWith("eval_builtin_error: json.patch: a patch that removes the whole document is not supported");
  return doc;
}
