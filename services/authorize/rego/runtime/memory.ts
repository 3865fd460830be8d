// The runtime's heap: one bump allocator over the imported memory. opa_heap_ptr_get/set save and
// reset it between evaluations (the ABI's way to free everything an evaluation allocated). No
// AssemblyScript managed objects are used at run time (the stub runtime's allocator would overlap).

let heapTop: usize = 0;

export function heapStart(): void {
  if (heapTop == 0) heapTop = (__heap_base + 7) & ~(<usize>7);
}

export function malloc(size: usize): usize {
  heapStart();
  const p = heapTop;
  heapTop = (heapTop + size + 7) & ~(<usize>7);
  const needed = (heapTop + 0xffff) >> 16;
  const pages = <usize>memory.size();
  if (needed > pages) {
    if (memory.grow(<i32>(needed - pages)) < 0) unreachable();
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
