// Unicode properties as Go's unicode and strconv packages see them.

/** strconv.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII space. */
export function isPrint(r: i32): bool {
  if (r < 0x80) return r >= 0x20 && r < 0x7f;
  return false;
}

/** Whether isPrint knows the answer for `r` (only ASCII until the tables are generated). */
export function isPrintKnown(r: i32): bool {
  return r < 0x80;
}
