// Unary calls to a service hosted in this process, handed to its wrapped implementation (the same
// one the network reaches: access gate, validation, deadline, errors) as messages, without a wire
// protocol in between. Connect's in-memory router transport serialises every request and response
// to bytes and back through a chain of async iterables: for a decision asked per MCP tool call that
// was most of the call's garbage and a tenth of its CPU. The request is a copy, so the caller may
// reuse or change what it passed; streaming calls keep the router transport.
import { clone, create, type DescMessage, type DescService, isMessage, type MessageShape } from "@bufbuild/protobuf";
import { ConnectError, createHandlerContext, type HandlerContext, type Transport } from "@connectrpc/connect";

type UnaryImpl = (request: unknown, context: HandlerContext) => unknown;

export function directTransport(service: DescService, impl: object, streams: Transport): Transport {
  const methods = impl as Record<string, UnaryImpl | undefined>;
  return {
    async unary(method, signal, timeoutMs, header, input, contextValues) {
      const handler = methods[method.localName];
      if (method.methodKind !== "unary" || !handler) {
        // A method without a unary handler here: the router transport answers it (UNIMPLEMENTED), as before.
        return streams.unary(method, signal, timeoutMs, header, input, contextValues);
      }
      const context = createHandlerContext({
        service,
        method,
        protocolName: "in-process",
        requestMethod: "POST",
        url: `/${service.typeName}/${method.name}`,
        timeoutMs,
        requestSignal: signal ?? new AbortController().signal,
        requestHeader: header,
        contextValues,
      });
      const request = isMessage(input, method.input)
        ? clone(method.input, input)
        : create(method.input, input as Parameters<typeof create<typeof method.input>>[1]);
      let output: unknown;
      try {
        output = await handler(request, context);
      } catch (error) {
        throw ConnectError.from(error); // as the router transport's client sees it: always a ConnectError
      }
      return {
        stream: false,
        service,
        method,
        header: context.responseHeader,
        message: asMessage(method.output, output),
        trailer: context.responseTrailer,
      };
    },
    stream: (method, signal, timeoutMs, header, input, contextValues) =>
      streams.stream(method, signal, timeoutMs, header, input, contextValues),
  };
}

function asMessage<O extends DescMessage>(schema: O, output: unknown): MessageShape<O> {
  return isMessage(output, schema) ? output : create(schema, output as Parameters<typeof create<O>>[1]);
}
