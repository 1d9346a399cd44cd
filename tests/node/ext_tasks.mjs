// MCP tasks through the official @modelcontextprotocol/ext-tasks client (0.2) on the SDK v2 client, for
// tests/test_node_clients.py.
//   node ext_tasks.mjs URL [VERSION]
// URL: the server's Streamable HTTP endpoint; VERSION: "2026-07-28" (the default: the io.modelcontextprotocol/tasks
// extension, negotiated by server/discover) or "2025-11-25" (initialize; the core tasks). The server serves "count"
// (prints, then exits 3) and "up" (runs until stopped), both background tools. Prints one JSON object: what the client
// negotiated, the session's task capabilities, the settled execution of "count" (its kind, task, events, outcome,
// result), an execution of "up" cancelled (its task, the server's view of it after, the outcome), and at 2026-07-28
// the raw exchanges (request, Mcp-* headers, response).
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { createTaskSessionFromClient } from "@modelcontextprotocol/ext-tasks/client";

const [url, version = "2026-07-28"] = process.argv.slice(2);
const modern = version !== "2025-11-25";
const clientInfo = { name: "trio-exec-tests-ext-tasks", version: "1.0.0" };
const clientCapabilities = {};
const client = new Client(clientInfo, {
  capabilities: clientCapabilities,
  ...(modern ? { versionNegotiation: { mode: { pin: version } } } : {}),
});
const transport = new StreamableHTTPClientTransport(new URL(url));
await client.connect(transport);
const negotiated = { era: client.getProtocolEra(), version: client.getNegotiatedProtocolVersion() };

// The SDK's request path rejects a 2026 task answer (resultType "task"), so ext-tasks sends tools/call and tasks/*
// through a "raw dispatch" the host owns. This one has its own transport to the same URL (2026-07-28 over HTTP has
// no session to share), which derives MCP-Protocol-Version, Mcp-Method and Mcp-Name from the framed body; it
// numbers its requests and matches the responses itself.
const wire = []; // each raw exchange: {request, headers (the Mcp-* ones sent), response}
const sent = new Map(); // request id -> its Mcp-* headers
const raw = new StreamableHTTPClientTransport(new URL(url), {
  fetch: (input, init) => {
    const headers = Object.fromEntries([...new Headers(init?.headers)].filter(([name]) => name.startsWith("mcp-")));
    if (typeof init?.body === "string") sent.set(JSON.parse(init.body).id, headers);
    return fetch(input, init);
  },
});
const pending = new Map();
raw.onmessage = (message) => pending.get(message.id)?.(message);
await raw.start();
let lastId = 0;
async function rawDispatch(request, options = {}) {
  const message = { jsonrpc: "2.0", id: ++lastId, ...request };
  const answered = new Promise((resolve, reject) => {
    pending.set(message.id, resolve);
    options.signal?.addEventListener("abort", () => reject(options.signal.reason), { once: true });
  });
  try {
    await raw.send(message, { requestSignal: options.signal, headers: options.context?.headers });
    const response = await answered;
    wire.push({ request: message, headers: sent.get(message.id), response });
    return "error" in response ? { kind: "error", error: response.error } : { kind: "result", result: response.result };
  } finally {
    pending.delete(message.id);
  }
}

const session = createTaskSessionFromClient(client, {
  endpointId: url,
  ...(modern
    ? {
        rawDispatch,
        v2RequestFraming: { protocolVersion: negotiated.version, clientInfo, clientCapabilities },
      }
    : {}),
});
const view = (task) => task && { taskId: task.taskId, status: task.status, statusMessage: task.statusMessage };
const outcomeOf = ({ outcome, lastTask }) => ({
  status: outcome.status,
  ...(outcome.status === "completed" ? { result: outcome.result } : {}),
  ...(outcome.status === "failed" ? { error: String(outcome.error?.message) } : {}),
  lastTask: view(lastTask),
});

const events = [];
const count = await session.callTool("count", {}, { task: { preference: "prefer" } });
const counted = await count.settle({
  onEvent: (event) => events.push(event.type === "task" ? { type: "task", ...view(event.task) } : { type: "outcome" }),
});

const up = await session.callTool("up", {}, { task: { preference: "require" } });
await up.cancel();
const cancelled = await up.settle();
const after = await session.task(up.handle.taskId).snapshot();

await session.close();
await raw.close();
await client.close();
process.stdout.write(
  JSON.stringify({
    negotiated,
    capabilities: session.capabilities,
    count: { kind: count.kind, taskId: count.handle?.taskId ?? null, events, ...outcomeOf(counted) },
    up: { kind: up.kind, taskId: up.handle.taskId, after: view(after), ...outcomeOf(cancelled) },
    wire,
  }) + "\n",
);
