// The MCP server the conformance suite's server scenarios expect (tools, resources, prompts,
// logging, progress, completion, sampling and elicitation by the names and shapes each scenario of
// @modelcontextprotocol/conformance 0.1.16 checks), written with the MCP SDK's McpServer. It knows
// nothing of authorization: the conformance test serves it behind the kit, so the suite's verdicts
// are about what the kit lets through.

import { completable } from "@modelcontextprotocol/sdk/server/completable.js";
import { McpServer, ResourceTemplate } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { RequestHandlerExtra } from "@modelcontextprotocol/sdk/shared/protocol.js";
import {
  type CallToolResult,
  CreateMessageResultSchema,
  type ElicitRequestFormParams,
  ElicitResultSchema,
  type ServerNotification,
  type ServerRequest,
  SubscribeRequestSchema,
  UnsubscribeRequestSchema,
} from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";

/** A 1×1 transparent PNG. */
const PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=";
/** A WAV header and one silent 8-bit sample. */
const WAV = Buffer.concat([
  Buffer.from("RIFF"),
  Buffer.from([37, 0, 0, 0]),
  Buffer.from("WAVEfmt "),
  Buffer.from([16, 0, 0, 0, 1, 0, 1, 0, 0x40, 0x1f, 0, 0, 0x40, 0x1f, 0, 0, 1, 0, 8, 0]),
  Buffer.from("data"),
  Buffer.from([1, 0, 0, 0, 0x80]),
]).toString("base64");

const text = (value: string) => ({ type: "text" as const, text: value });
const image = { type: "image" as const, data: PNG, mimeType: "image/png" };
const embedded = {
  type: "resource" as const,
  resource: { uri: "test://embedded-resource", mimeType: "text/plain", text: "An embedded resource." },
};

/** One McpServer (one per session: the SDK binds a server to one transport). */
export function everythingServer(): McpServer {
  const server = new McpServer(
    { name: "mandate-conformance-server", version: "1.0.0" },
    { capabilities: { logging: {}, resources: { subscribe: true, listChanged: true } } },
  );
  const tool = (name: string, description: string, run: () => CallToolResult | Promise<CallToolResult>) =>
    server.registerTool(name, { description }, run);

  tool("test_simple_text", "Returns simple text", () => ({ content: [text("This is a simple text response.")] }));
  tool("test_image_content", "Returns an image", () => ({ content: [image] }));
  tool("test_audio_content", "Returns audio", () => ({
    content: [{ type: "audio", data: WAV, mimeType: "audio/wav" }],
  }));
  tool("test_embedded_resource", "Returns an embedded resource", () => ({ content: [embedded] }));
  tool("test_multiple_content_types", "Returns text, an image and a resource", () => ({
    content: [text("Several content types:"), image, embedded],
  }));
  tool("test_error_handling", "Always fails, as a tool error (isError)", () => ({
    isError: true,
    content: [text("This tool always fails.")],
  }));

  server.registerTool("test_tool_with_logging", { description: "Logs three messages while it runs" }, async (extra) => {
    for (const step of ["started", "working", "done"]) {
      await extra.sendNotification({
        method: "notifications/message",
        params: { level: "info", logger: "conformance", data: `tool ${step}` },
      });
    }
    return { content: [text("Logged three messages.")] };
  });
  server.registerTool("test_tool_with_progress", { description: "Reports progress three times" }, async (extra) => {
    const progressToken = extra._meta?.progressToken;
    if (progressToken !== undefined) {
      for (const progress of [0, 50, 100]) {
        await extra.sendNotification({
          method: "notifications/progress",
          params: { progressToken, progress, total: 100 },
        });
      }
    }
    return { content: [text("Progress reported.")] };
  });
  server.registerTool(
    "test_sampling",
    { description: "Asks the client's model", inputSchema: { prompt: z.string() } },
    async ({ prompt }, extra) => {
      const answer = await extra.sendRequest(
        {
          method: "sampling/createMessage",
          params: { messages: [{ role: "user", content: text(prompt) }], maxTokens: 100 },
        },
        CreateMessageResultSchema,
      );
      const content = answer.content;
      return { content: [text(`The model said: ${"text" in content ? content.text : JSON.stringify(content)}`)] };
    },
  );
  const elicit =
    (message: string, requestedSchema: ElicitRequestFormParams["requestedSchema"]) => async (extra: ElicitExtra) => {
      const answer = await extra.sendRequest(
        { method: "elicitation/create", params: { message, requestedSchema } },
        ElicitResultSchema,
      );
      return { content: [text(`Elicitation ${answer.action}: ${JSON.stringify(answer.content ?? {})}`)] };
    };
  server.registerTool(
    "test_elicitation",
    { description: "Asks the user for input", inputSchema: { message: z.string() } },
    ({ message }, extra) =>
      elicit(message, {
        type: "object",
        properties: { username: { type: "string" }, email: { type: "string", format: "email" } },
        required: ["username", "email"],
      })(extra),
  );
  server.registerTool(
    "test_elicitation_sep1034_defaults",
    { description: "Elicitation with a default for each primitive type (SEP-1034)" },
    (extra) =>
      elicit("Defaults for each type", {
        type: "object",
        properties: {
          name: { type: "string", default: "John Doe" },
          age: { type: "integer", default: 30 },
          score: { type: "number", default: 95.5 },
          status: { type: "string", enum: ["active", "inactive", "pending"], default: "active" },
          verified: { type: "boolean", default: true },
        },
      })(extra),
  );
  const titled = [
    { const: "value1", title: "First" },
    { const: "value2", title: "Second" },
  ];
  server.registerTool(
    "test_elicitation_sep1330_enums",
    { description: "Elicitation with each enum form (SEP-1330)" },
    (extra) =>
      elicit("Enums of each form", {
        type: "object",
        properties: {
          untitledSingle: { type: "string", enum: ["option1", "option2", "option3"] },
          titledSingle: { type: "string", oneOf: titled },
          legacyEnum: { type: "string", enum: ["opt1", "opt2"], enumNames: ["Option 1", "Option 2"] },
          untitledMulti: { type: "array", items: { type: "string", enum: ["option1", "option2", "option3"] } },
          titledMulti: { type: "array", items: { anyOf: titled } },
        },
      })(extra),
  );

  server.registerResource(
    "static-text",
    "test://static-text",
    { description: "A text resource", mimeType: "text/plain" },
    (uri) => ({ contents: [{ uri: uri.href, mimeType: "text/plain", text: "Static text content." }] }),
  );
  server.registerResource(
    "static-binary",
    "test://static-binary",
    { description: "A binary resource", mimeType: "image/png" },
    (uri) => ({ contents: [{ uri: uri.href, mimeType: "image/png", blob: PNG }] }),
  );
  server.registerResource(
    "watched-resource",
    "test://watched-resource",
    { description: "A resource to subscribe to", mimeType: "text/plain" },
    (uri) => ({ contents: [{ uri: uri.href, mimeType: "text/plain", text: "Watched." }] }),
  );
  server.registerResource(
    "template",
    new ResourceTemplate("test://template/{id}/data", { list: undefined }),
    { description: "A resource per id", mimeType: "application/json" },
    (uri, { id }) => ({
      contents: [{ uri: uri.href, mimeType: "application/json", text: JSON.stringify({ id, data: `data of ${id}` }) }],
    }),
  );
  // Subscriptions are acknowledged; nothing here changes, so no update is ever sent.
  server.server.setRequestHandler(SubscribeRequestSchema, () => ({}));
  server.server.setRequestHandler(UnsubscribeRequestSchema, () => ({}));

  server.registerPrompt("test_simple_prompt", { description: "A prompt without arguments" }, () => ({
    messages: [{ role: "user", content: text("A simple prompt.") }],
  }));
  server.registerPrompt(
    "test_prompt_with_arguments",
    {
      description: "A prompt with two arguments",
      argsSchema: {
        arg1: completable(z.string(), (value) => ["paris", "park", "party"].filter((v) => v.startsWith(value))),
        arg2: z.string(),
      },
    },
    ({ arg1, arg2 }) => ({ messages: [{ role: "user", content: text(`Prompt with ${arg1} and ${arg2}.`) }] }),
  );
  server.registerPrompt(
    "test_prompt_with_embedded_resource",
    { description: "A prompt embedding a resource", argsSchema: { resourceUri: z.string() } },
    ({ resourceUri }) => ({
      messages: [
        {
          role: "user",
          content: { type: "resource", resource: { uri: resourceUri, mimeType: "text/plain", text: "Embedded." } },
        },
      ],
    }),
  );
  server.registerPrompt("test_prompt_with_image", { description: "A prompt with an image" }, () => ({
    messages: [{ role: "user", content: image }],
  }));
  return server;
}

type ElicitExtra = RequestHandlerExtra<ServerRequest, ServerNotification>;
