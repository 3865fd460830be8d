// Moved to services/shared/mandates/usage.ts (Authorize counts usage per decision too). This
// re-export keeps modules written against the old path compiling; import from the shared module instead.
export * from "../../shared/mandates/usage.ts";
