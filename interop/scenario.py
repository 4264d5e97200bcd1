"""Interop scenario: the official MCP Python SDK against a running Agent Hub.

Two agents register, exchange a direct and a broadcast message, and read them with a
cursor: every message exactly once, in order. Runs once per connect mode of the SDK
("legacy": initialize handshake with a session; "auto": the 2026-07-28 discover lifecycle
with fallback). The hub is expected in enforce mode, so every call carries its token.

Usage: python scenario.py http://127.0.0.1:PORT/mcp
Prints one line per check and a closing "N passed, N failed" line; exits 1 on failure.
"""

import asyncio
import json
import sys
import urllib.request

from mcp import Client
from prometheus_client.parser import text_string_to_metric_families

RESULTS: list[tuple[str, bool, str]] = []


def check(name: str, condition: bool, detail: object = "") -> None:
    RESULTS.append((name, bool(condition), "" if condition else str(detail)))


async def call(client: Client, tool: str, args: dict) -> tuple[dict, bool]:
    result = await client.call_tool(tool, args)
    text = result.content[0].text
    return json.loads(text), bool(result.is_error)


async def scenario(url: str, mode: str) -> None:
    async with Client(url, mode=mode) as alice, Client(url, mode=mode) as bob:
        version = alice.session.protocol_version
        expected = "2026-07-28" if mode == "auto" else None
        check(f"{mode}: negotiated protocol {version}",
              version == expected if expected else version < "2026-07-28", version)
        tools = await alice.list_tools()
        names = {tool.name for tool in tools.tools}
        check(f"{mode}: tools/list offers the messaging tools",
              {"register_agent", "send_message", "read_messages"} <= names, names)

        alice_id, bob_id = f"py-alice-{mode}", f"py-bob-{mode}"
        registered, _ = await call(alice, "register_agent",
                                   {"id": alice_id, "name": "Alice", "type": "python-sdk"})
        check(f"{mode}: register_agent succeeds", registered.get("success") is True, registered)
        alice_token = registered["auth"]["token"]
        registered, _ = await call(bob, "register_agent",
                                   {"id": bob_id, "name": "Bob", "type": "python-sdk"})
        bob_token = registered["auth"]["token"]

        refused, is_error = await call(alice, "send_message",
                                       {"from_agent": alice_id, "content": "no token"})
        check(f"{mode}: enforce mode refuses a call without a token",
              is_error and refused.get("error_code") == "AUTH_TOKEN_REQUIRED", refused)

        direct, _ = await call(alice, "send_message", {
            "from_agent": alice_id, "to_agent": bob_id,
            "content": "direct:\n  keeps its newline", "auth_token": alice_token})
        broadcast, _ = await call(alice, "send_message", {
            "from_agent": alice_id, "content": f"broadcast from {mode}",
            "auth_token": alice_token})
        check(f"{mode}: send_message stores content losslessly",
              direct["message"]["content"] == "direct:\n  keeps its newline", direct)

        page, _ = await call(bob, "read_messages", {
            "agent_id": bob_id, "cursor": "0", "response_mode": "nano",
            "limit": 200, "auth_token": bob_token})
        mine = [m["i"] for m in page["m"] if m["i"] in (direct["message"]["id"],
                                                        broadcast["message"]["id"])]
        check(f"{mode}: bob reads the direct and the broadcast message, in order",
              mine == [direct["message"]["id"], broadcast["message"]["id"]], page)

        cursor = page["n"]
        again, _ = await call(bob, "read_messages", {
            "agent_id": bob_id, "cursor": cursor, "response_mode": "nano",
            "auth_token": bob_token})
        check(f"{mode}: reading on from the cursor returns nothing twice",
              again["m"] == [], again)

        later, _ = await call(alice, "send_message", {
            "from_agent": alice_id, "to_agent": bob_id, "content": "later",
            "auth_token": alice_token})
        after, _ = await call(bob, "read_messages", {
            "agent_id": bob_id, "cursor": cursor, "response_mode": "compact",
            "auth_token": bob_token})
        check(f"{mode}: the cursor delivers exactly the new message",
              [m["id"] for m in after["messages"]] == [later["message"]["id"]], after)


def tool_calls(metrics_url: str) -> dict[tuple[str, str], float]:
    """`hub_tool_calls_total` by (tool, outcome), parsed by the Prometheus client parser."""
    text = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
    counts: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "hub_tool_calls_total":
                counts[(sample.labels["tool"], sample.labels["outcome"])] = sample.value
    return counts


async def main(url: str) -> int:
    metrics_url = url.rsplit("/", 1)[0] + "/metrics"
    try:
        before = tool_calls(metrics_url)
    except Exception as error:
        check("/metrics parses with prometheus_client", False, repr(error))
        before = {}
    for mode in ("legacy", "auto"):
        try:
            await scenario(url, mode)
        except Exception as error:  # report, do not hide, an SDK or hub failure
            check(f"{mode}: scenario ran to the end", False, repr(error))
    try:
        after = tool_calls(metrics_url)
        sent = after.get(("send_message", "ok"), 0) - before.get(("send_message", "ok"), 0)
        # Each mode sends a direct, a broadcast and a later message.
        check("/metrics counts the scenario's send_message calls", sent == 6, after)
    except Exception as error:
        check("/metrics parses with prometheus_client", False, repr(error))
    for name, passed, detail in RESULTS:
        print(f"{'PASS' if passed else 'FAIL'} {name}" + (f" -- {detail}" if detail else ""))
    failed = sum(1 for _, passed, _ in RESULTS if not passed)
    print(f"{len(RESULTS) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: scenario.py <mcp-url>")
    sys.exit(asyncio.run(main(sys.argv[1])))
