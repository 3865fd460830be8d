// A call to a Mandate process that is going away. An HTTP/2 server that stops taking new streams
// resets the ones it will not serve with REFUSED_STREAM, which guarantees they were not processed and
// may be retried as they are (RFC 9113 §8.1.4, §8.7). Node reports that reset as a stream error
// ("Stream closed with error code NGHTTP2_REFUSED_STREAM") which connect-node turns into INTERNAL, so
// a rolling restart failed calls that had never reached the server. A unary call is retried once on a
// new stream (connect-node opens a new session once the old one is going away); a refused stream, or a
// second refusal, ends as UNAVAILABLE, which callers and the edge's clients treat as retryable.
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";

export const retryRefusedStreams: Interceptor = (next) => async (request) => {
  let refusal: unknown;
  try {
    return await next(request);
  } catch (error) {
    if (!wasRefused(error)) throw error;
    refusal = error;
  }
  if (!request.stream && !request.signal.aborted) {
    try {
      return await next(request);
    } catch (error) {
      if (!wasRefused(error)) throw error;
      refusal = error;
    }
  }
  throw new ConnectError(
    "the service refused the call before processing it (it is shutting down or restarting): retry",
    Code.Unavailable,
    undefined,
    undefined,
    refusal,
  );
};

/** Whether `error`, or an error it wraps, is an HTTP/2 REFUSED_STREAM reset. */
export function wasRefused(error: unknown): boolean {
  for (let cause = error, depth = 0; cause instanceof Error && depth < 5; cause = cause.cause, depth++) {
    if (/\bNGHTTP2_REFUSED_STREAM\b|\bREFUSED_STREAM \(0x7\)/.test(cause.message)) return true;
  }
  return false;
}
