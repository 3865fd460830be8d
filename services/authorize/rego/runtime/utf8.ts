// UTF-8 decoding and encoding as Go's unicode/utf8: an invalid or truncated sequence, an overlong
// form, a surrogate or a code point above U+10FFFF decodes as RuneError (U+FFFD) of width 1.

export const RUNE_ERROR: i32 = 0xfffd;

/** The width in bytes of the rune decodeRune last read. */
export let decodedWidth: usize = 0;

function continuation(at: usize, end: usize): i32 {
  if (at >= end) return -1;
  const c = <i32>load<u8>(at);
  return (c & 0xc0) == 0x80 ? c & 0x3f : -1;
}

function invalid(): i32 {
  decodedWidth = 1;
  return RUNE_ERROR;
}

/** The rune at `at` (before `end`); its width in decodedWidth. */
export function decodeRune(at: usize, end: usize): i32 {
  const c0 = <i32>load<u8>(at);
  if (c0 < 0x80) {
    decodedWidth = 1;
    return c0;
  }
  if (c0 < 0xc2 || c0 > 0xf4) return invalid();
  const c1 = continuation(at + 1, end);
  if (c1 < 0) return invalid();
  if (c0 < 0xe0) {
    decodedWidth = 2;
    return ((c0 & 0x1f) << 6) | c1;
  }
  const c2 = continuation(at + 2, end);
  if (c2 < 0) return invalid();
  if (c0 < 0xf0) {
    const r = ((c0 & 0x0f) << 12) | (c1 << 6) | c2;
    if (r < 0x800 || (r >= 0xd800 && r <= 0xdfff)) return invalid();
    decodedWidth = 3;
    return r;
  }
  const c3 = continuation(at + 3, end);
  if (c3 < 0) return invalid();
  const r = ((c0 & 0x07) << 18) | (c1 << 12) | (c2 << 6) | c3;
  if (r < 0x10000 || r > 0x10ffff) return invalid();
  decodedWidth = 4;
  return r;
}

/** Writes `r` as UTF-8 at `at`; returns its width. */
export function encodeRune(at: usize, r: i32): usize {
  if (r < 0x80) {
    store<u8>(at, <u8>r);
    return 1;
  }
  if (r < 0x800) {
    store<u8>(at, <u8>(0xc0 | (r >> 6)));
    store<u8>(at + 1, <u8>(0x80 | (r & 0x3f)));
    return 2;
  }
  if (r < 0x10000) {
    store<u8>(at, <u8>(0xe0 | (r >> 12)));
    store<u8>(at + 1, <u8>(0x80 | ((r >> 6) & 0x3f)));
    store<u8>(at + 2, <u8>(0x80 | (r & 0x3f)));
    return 3;
  }
  store<u8>(at, <u8>(0xf0 | (r >> 18)));
  store<u8>(at + 1, <u8>(0x80 | ((r >> 12) & 0x3f)));
  store<u8>(at + 2, <u8>(0x80 | ((r >> 6) & 0x3f)));
  store<u8>(at + 3, <u8>(0x80 | (r & 0x3f)));
  return 4;
}
