// Unicode as Go's unicode and strconv packages see it (tables: unicode-tables.ts, generated).
import {
  CASE_RANGES, CASE_RANGES_ROWS, PRINT_RANGES, PRINT_RANGES_ROWS, PRINT_UNKNOWN, PRINT_UNKNOWN_ROWS, UPPER_LOWER,
} from "./unicode-tables";

/** The row of `table` (rows of `width` i32s starting [lo, hi]) holding `r`, or 0. */
function findRow(table: usize, rows: i32, width: i32, r: i32): usize {
  let lo = 0;
  let hi = rows - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const row = table + <usize>(mid * width * 4);
    if (r < load<i32>(row)) hi = mid - 1;
    else if (r > load<i32>(row, 4)) lo = mid + 1;
    else return row;
  }
  return 0;
}

/** Go's unicode.ToUpper (upper) or unicode.ToLower: the simple mapping of one rune. */
export function mapRune(r: i32, upper: bool): i32 {
  if (r < 0x80) {
    if (upper && r >= 0x61 && r <= 0x7a) return r - 32;
    if (!upper && r >= 0x41 && r <= 0x5a) return r + 32;
    return r;
  }
  const row = findRow(CASE_RANGES, CASE_RANGES_ROWS, 4, r);
  if (row == 0) return r;
  const delta = upper ? load<i32>(row, 8) : load<i32>(row, 12);
  if (delta != UPPER_LOWER) return r + delta;
  // Alternating pairs: the upper case at even offsets from the range's start, the lower at odd.
  const start = load<i32>(row);
  return start + (((r - start) & ~1) | (upper ? 0 : 1));
}

/** strconv.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII space. */
export function isPrint(r: i32): bool {
  if (r < 0x80) return r >= 0x20 && r < 0x7f;
  return findRow(PRINT_RANGES, PRINT_RANGES_ROWS, 2, r) != 0;
}

/** Whether isPrint answers as Go (Unicode 15.1.0) does: not for runes assigned after Unicode 14.0. */
export function isPrintKnown(r: i32): bool {
  return findRow(PRINT_UNKNOWN, PRINT_UNKNOWN_ROWS, 2, r) == 0;
}
