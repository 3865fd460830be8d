// walk(x): every [path, value] pair of a value, as OPA's topdown walk yields them: the value
// itself first (path []), then depth first into array elements by index, object values by key and
// set elements (each its own key), all in Rego order. Walk is a relation: the planner iterates
// the pairs rt_walk_pairs returns.
import { consume } from "./budget";
import { newInt } from "./numbers";
import {
  ARRAY, OBJECT, SET,
  arrayAppend, item, length, newArray, objectKey, objectValue, typeOf,
} from "./value";

function pathWith(path: usize, key: usize): usize {
  const n = length(path);
  const out = newArray(n + 1);
  for (let i: u32 = 0; i < n; i++) arrayAppend(out, item(path, i));
  arrayAppend(out, key);
  return out;
}

function visit(pairs: usize, path: usize, v: usize): void {
  // Each pair copies its path: the work is the path's length.
  consume(1 + <i32>length(path));
  const entry = newArray(2);
  arrayAppend(entry, path);
  arrayAppend(entry, v);
  arrayAppend(pairs, entry);
  const t = typeOf(v);
  const n = t == ARRAY || t == OBJECT || t == SET ? length(v) : 0;
  for (let i: u32 = 0; i < n; i++) {
    if (t == ARRAY) visit(pairs, pathWith(path, newInt(<i64>i)), item(v, i));
    else if (t == OBJECT) visit(pairs, pathWith(path, objectKey(v, i)), objectValue(v, i));
    else visit(pairs, pathWith(path, item(v, i)), item(v, i));
  }
}

export function rt_walk_pairs(x: usize): usize {
  const pairs = newArray(8);
  visit(pairs, newArray(0), x);
  return pairs;
}
