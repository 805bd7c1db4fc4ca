// An MCP client built on the official TypeScript SDK (@modelcontextprotocol/sdk), talking to
// `steward mcp --transport http` over Streamable HTTP. Used by crates/steward-cli/tests/it/mcp.rs.
//
//   node mcp_http_client.mjs PLAN_JSON
//
// PLAN_JSON: {"url": "http://127.0.0.1:PORT/mcp", "token": "stw_gw_…" | null,
//             "calls": [{"tool": "...", "arguments": {...}}], "await_list_changed_seconds": N?}
//
// With await_list_changed_seconds, after the calls it prints {"ready": true} on a line of its own,
// waits that long for notifications/tools/list_changed, and lists the tools again (tools_after).
//
// Prints one JSON document: the negotiated protocol version, the tools, and per call
// {is_error, text, structured}. A failed connection prints {"connect_error": "..."} (the test checks
// the 401 without a token that way) and exits 0.

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ToolListChangedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";

const plan = JSON.parse(process.argv[2]);
const headers = plan.token ? { authorization: `Bearer ${plan.token}` } : {};
const transport = new StreamableHTTPClientTransport(new URL(plan.url), { requestInit: { headers } });
const client = new Client({ name: "steward-test", version: "1.0.0" });
let listChanged;
const listChangedSeen = new Promise((resolve) => (listChanged = resolve));
client.setNotificationHandler(ToolListChangedNotificationSchema, () => listChanged(true));

const report = { tools: [], results: [] };
try {
  await client.connect(transport);
} catch (error) {
  report.connect_error = String(error && error.message ? error.message : error);
  if (error && error.code !== undefined) report.connect_error_code = error.code;
  console.log(JSON.stringify(report));
  process.exit(0);
}
report.protocol_version = transport.protocolVersion ?? null;
report.session_id = transport.sessionId ? "present" : null;
const listed = await client.listTools();
report.tools = listed.tools;
for (const step of plan.calls ?? []) {
  const result = await client.callTool({ name: step.tool, arguments: step.arguments ?? {} });
  report.results.push({
    is_error: Boolean(result.isError),
    text: result.content.filter((c) => c.type === "text").map((c) => c.text).join("\n"),
    structured: result.structuredContent ?? null,
  });
}
if (plan.await_list_changed_seconds) {
  console.log(JSON.stringify({ ready: true }));
  let timer;
  const timeout = new Promise((resolve) => (timer = setTimeout(() => resolve(false), plan.await_list_changed_seconds * 1000)));
  report.list_changed = await Promise.race([listChangedSeen, timeout]);
  clearTimeout(timer); // a pending timer would keep node running
  report.tools_after = (await client.listTools()).tools;
}
await transport.terminateSession().catch(() => {});
await client.close();
console.log(JSON.stringify(report));
