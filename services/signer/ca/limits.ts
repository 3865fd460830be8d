/** SPIFFE X509-SVIDs are short-lived; issue 17: an agent certificate lives at most 24 hours. */
export const LONGEST_AGENT_CERTIFICATE_MS = 24 * 3_600_000;
