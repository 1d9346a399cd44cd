// MCP tasks (revision 2025-11-25) with the TypeScript SDK v1's tasks API, for tests/test_node_clients.py.
//   node tasks.mjs TRANSPORT TARGET
// TRANSPORT: "stdio" (TARGET is a JSON argv) or "http" (TARGET is the URL). The server serves "count" (prints,
// then exits 3) and "up" (runs until stopped), both background tools. Prints one JSON object: what
// callToolStream yielded for "count", and a task of "up" listed, cancelled, read and cancelled again.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CreateTaskResultSchema } from "@modelcontextprotocol/sdk/types.js";

const [transportName, target] = process.argv.slice(2);
let transport;
if (transportName === "stdio") {
  const [command, ...args] = JSON.parse(target);
  transport = new StdioClientTransport({ command, args, stderr: "inherit" });
} else {
  transport = new StreamableHTTPClientTransport(new URL(target));
}
const client = new Client({ name: "trio-exec-tests-tasks", version: "1.0.0" });
await client.connect(transport);
const tools = (await client.listTools()).tools; // the client learns which tools run as tasks
const tasks = client.experimental.tasks;
const streamed = [];
for await (const message of tasks.callToolStream({ name: "count", arguments: {} })) {
  if (message.type === "result") streamed.push({ type: "result", result: message.result });
  else if (message.type === "error") streamed.push({ type: "error", error: String(message.error?.message) });
  else streamed.push({ type: message.type, taskId: message.task.taskId, status: message.task.status });
}
const created = await client.request(
  { method: "tools/call", params: { name: "up", arguments: {} } },
  CreateTaskResultSchema,
  { task: { ttl: 60000 } },
);
const id = created.task.taskId;
const listed = (await tasks.listTasks()).tasks.map((t) => [t.taskId, t.status]);
const cancelled = await tasks.cancelTask(id);
const after = await tasks.getTask(id);
let twice = null;
try {
  await tasks.cancelTask(id);
} catch (error) {
  twice = { code: error?.code, message: String(error?.message) };
}
await client.close();
process.stdout.write(JSON.stringify({ tools, streamed, created, listed, cancelled, after, twice }) + "\n");
