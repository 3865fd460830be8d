// The runtime's heap: one bump allocator over the imported memory. opa_heap_ptr_get/set save and
// reset it between evaluations (the ABI's way to free everything an evaluation allocated). No
// AssemblyScript managed objects are used at run time (the stub runtime's allocator would overlap).
// A runaway evaluation stops at the heap limit with an error instead of exhausting the host.

@external("env", "opa_abort") declare function opa_abort(addr: usize): void;

let heapTop: usize = 0;
let heapLimit: usize = 256 << 20;
const LIMIT_MESSAGE: string = "eval_memory_limit_error: policy evaluation exceeded its memory limit";
const messageBuffer: usize = memory.data(80);

export function heapStart(): void {
  if (heapTop == 0) heapTop = (__heap_base + 7) & ~(<usize>7);
}

/** The most memory an instance may use; set by the compiled policy's start function. */
export function setHeapLimit(bytes: usize): void {
  heapLimit = bytes;
}

function outOfMemory(): void {
  for (let i = 0; i < LIMIT_MESSAGE.length; i++) store<u8>(messageBuffer + <usize>i, <u8>LIMIT_MESSAGE.charCodeAt(i));
  store<u8>(messageBuffer + <usize>LIMIT_MESSAGE.length, 0);
  opa_abort(messageBuffer);
  unreachable();
}

export function malloc(size: usize): usize {
  heapStart();
  const p = heapTop;
  const next = (heapTop + size + 7) & ~(<usize>7);
  if (next > heapLimit || next < p) outOfMemory();
  heapTop = next;
  const needed = (heapTop + 0xffff) >> 16;
  const pages = <usize>memory.size();
  if (needed > pages) {
    if (memory.grow(<i32>(needed - pages)) < 0) outOfMemory();
  }
  return p;
}

export function heapGet(): usize {
  heapStart();
  return heapTop;
}

export function heapSet(p: usize): void {
  heapTop = p;
}
