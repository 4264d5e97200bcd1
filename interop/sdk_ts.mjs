// Interop: the official MCP TypeScript SDK (@modelcontextprotocol/sdk, installed into
// interop/.npm) against a running Agent Hub in enforce mode. Lists the tools of each profile,
// reads and subscribes to a resource and receives the update, and runs a cursor loop that
// receives a 10 KB message whole.
// Usage: node interop/sdk_ts.mjs http://127.0.0.1:PORT/mcp   (exits 1 on a failed check)

import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

// The SDK lives in interop/.npm, not next to this file's package scope.
const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, ".npm", "package.json"));
const sdk = (subpath) => import(require.resolve(`@modelcontextprotocol/sdk/${subpath}`));
const { Client } = await sdk("client/index.js");
const { StreamableHTTPClientTransport } = await sdk("client/streamableHttp.js");
const { ResourceUpdatedNotificationSchema } = await sdk("types.js");

const url = process.argv[2];
if (!url) {
  console.error("usage: node sdk_ts.mjs <mcp-url>");
  process.exit(2);
}
const results = [];
const check = (name, ok, detail = "") => results.push([name, Boolean(ok), ok ? "" : detail]);

async function connect(target, token) {
  const client = new Client({ name: "hub-interop-ts", version: "1.0.0" });
  const requestInit = token ? { headers: { Authorization: `Bearer ${token}` } } : undefined;
  await client.connect(new StreamableHTTPClientTransport(new URL(target), { requestInit }));
  return client;
}

async function call(client, name, args) {
  const result = await client.callTool({ name, arguments: args });
  return [JSON.parse(result.content[0].text), Boolean(result.isError)];
}

const withTimeout = (promise, ms) =>
  Promise.race([promise, new Promise((resolve) => setTimeout(() => resolve(null), ms))]);

async function main() {
  for (const [profile, limit] of [["worker", 12], ["orchestrator", 46], ["observer", 46], ["full", 46]]) {
    const client = await connect(`${url}?tools=${profile}`);
    const { tools } = await client.listTools();
    const names = tools.map((t) => t.name);
    check(`ts: profile ${profile} lists ${tools.length} tools (<= ${limit})`,
      tools.length > 0 && tools.length <= limit && names.includes("register_agent"), names);
    if (profile === "worker") {
      check("ts: the worker profile has the claim loop",
        ["poll_and_claim", "renew_task_claim", "release_task_claim", "wait_for_updates"]
          .every((n) => names.includes(n)), names);
    }
    await client.close();
  }

  const senderId = "ts-sender";
  const readerId = "ts-reader";
  const plain = await connect(url);
  const [sender] = await call(plain, "register_agent", { id: senderId, name: senderId, type: "ts-sdk" });
  const [reader] = await call(plain, "register_agent", { id: readerId, name: readerId, type: "ts-sdk" });
  await plain.close();

  const senderClient = await connect(url, sender.auth.token);
  const readerClient = await connect(url, reader.auth.token);
  let notified;
  const update = new Promise((resolve) => { notified = resolve; });
  readerClient.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => notified(n.params.uri));

  const { resources } = await readerClient.listResources();
  check("ts: resources/list names hub://agents and hub://tasks",
    resources.map((r) => r.uri).join(",") === "hub://agents,hub://tasks", resources);
  const inboxUri = `hub://inbox/${readerId}`;
  await readerClient.subscribeResource({ uri: inboxUri });

  let long = "";
  for (let i = 0; long.length < 10240; i++) long += `line ${String(i).padStart(5, "0")} of a long report\n`;
  long = long.slice(0, 10240);
  const [sent, sendError] = await call(senderClient, "send_message",
    { from_agent: senderId, to_agent: readerId, content: long });
  check("ts: the 10 KB message is sent", !sendError, sent);
  check("ts: a subscribed inbox gets notifications/resources/updated",
    (await withTimeout(update, 20000)) === inboxUri, "no notification within 20 s");

  const read = await readerClient.readResource({ uri: inboxUri });
  const inbox = JSON.parse(read.contents[0].text);
  // Earlier broadcasts (the Python run's) are in this inbox too: check the sender's message.
  const mine = inbox.messages.filter((m) => m.from_agent === senderId).map((m) => m.content);
  check("ts: hub://inbox carries the 10 KB message whole",
    mine.length === 1 && mine[0] === long, mine.map((c) => c.length));
  try {
    await readerClient.readResource({ uri: `hub://inbox/${senderId}` });
    check("ts: another agent's inbox is refused", false, "read succeeded");
  } catch (error) {
    check("ts: another agent's inbox is refused", /AUTH_TOKEN_INVALID|invalid/.test(String(error)), String(error));
  }

  // The documented loop: compact cursor reads with include_content until has_more is false.
  let cursor = "0";
  const received = [];
  for (;;) {
    const [page, isError] = await call(readerClient, "read_messages",
      { agent_id: readerId, cursor, response_mode: "compact", include_content: true });
    if (isError) {
      check("ts: the cursor loop reads", false, page);
      break;
    }
    received.push(...page.messages.filter((m) => m.from_agent === senderId).map((m) => m.content));
    cursor = page.next_cursor ?? cursor;
    if (!page.has_more) break;
  }
  check("ts: a cursor loop receives the 10 KB message whole",
    received.length === 1 && received[0] === long, received.map((c) => c.length));

  await senderClient.close();
  await readerClient.close();
}

try {
  await main();
} catch (error) {
  check("ts: scenario ran to the end", false, error?.stack ?? String(error));
}
for (const [name, ok, detail] of results) {
  console.log(`${ok ? "PASS" : "FAIL"} ${name}${detail ? ` -- ${JSON.stringify(detail)}` : ""}`);
}
const failed = results.filter(([, ok]) => !ok).length;
console.log(`${results.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
