// One MCP session with an official TypeScript client, for tests/test_node_clients.py.
//   node call.mjs SDK TRANSPORT TARGET CALLS
// SDK: "v1" (@modelcontextprotocol/sdk) or "v2" (@modelcontextprotocol/client); TRANSPORT: "stdio" (TARGET is
// a JSON argv), "http" or "ws" (v1 only; TARGET is the URL); CALLS: a JSON list of [tool, arguments, options?].
// {"tools": [...listed tools...], "results": [...one CallToolResult, or {"thrown": message}, per call...]}.
const [sdk, transportName, target, calls] = process.argv.slice(2);

const modules =
  sdk === "v1"
    ? {
        client: "@modelcontextprotocol/sdk/client/index.js",
        stdio: "@modelcontextprotocol/sdk/client/stdio.js",
        http: "@modelcontextprotocol/sdk/client/streamableHttp.js",
        ws: "@modelcontextprotocol/sdk/client/websocket.js",
      }
    : { client: "@modelcontextprotocol/client", stdio: "@modelcontextprotocol/client/stdio", http: "@modelcontextprotocol/client" };

const { Client } = await import(modules.client);
let transport;
if (transportName === "stdio") {
  const { StdioClientTransport } = await import(modules.stdio);
  const [command, ...args] = JSON.parse(target);
  transport = new StdioClientTransport({ command, args, stderr: "inherit" });
} else if (transportName === "ws") {
  const { WebSocketClientTransport } = await import(modules.ws);
  transport = new WebSocketClientTransport(new URL(target));
} else {
  const { StreamableHTTPClientTransport } = await import(modules.http);
  transport = new StreamableHTTPClientTransport(new URL(target));
}
const client = new Client({ name: `trio-exec-tests-${sdk}`, version: "1.0.0" });
await client.connect(transport);
const tools = (await client.listTools()).tools;
const results = [];
for (const [name, args, options] of JSON.parse(calls)) {
  // options (optional): the SDK's RequestOptions (timeout, resetTimeoutOnProgress, maxTotalTimeout), and
  // "progress": true to pass an onprogress callback (the SDK sends a progressToken only with one).
  const { progress, ...requestOptions } = options ?? {};
  let seen = 0;
  if (progress) requestOptions.onprogress = () => (seen += 1);
  try {
    const params = { name, arguments: args };
    const result = await (sdk === "v1"  // v1: callTool(params, resultSchema, options); v2: callTool(params, options)
      ? client.callTool(params, undefined, requestOptions)
      : client.callTool(params, requestOptions));
    results.push({ ...result, progressSeen: seen });
  } catch (error) {
    results.push({ thrown: String(error?.message ?? error), progressSeen: seen });
  }
}
await client.close();
process.stdout.write(JSON.stringify({ tools, results }) + "\n");
