// Moved to services/shared/mandates/mandate-store.ts (Authorize reads mandates too). This re-export
// keeps modules written against the old path compiling; import from the shared module instead.
export * from "../../shared/mandates/mandate-store.ts";
