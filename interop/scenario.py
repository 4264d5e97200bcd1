"""Interop scenario: the official MCP Python SDK against a running Agent Hub.

Two agents register, exchange a direct and a broadcast message, and read them with a
cursor: every message exactly once, in order. Then alice uploads an artifact and bob
downloads it (whole, and one Range) with a plain HTTP client (urllib), as an agent's
tooling would; a spent ticket is refused with 401. Then five workers vote on a proposal,
each in its own context entry, and a reviewer settles the ballot in one call (a forged vote
is refused, a listed non-voter comes back in missing_voters). Then the surface: tool counts per
profile, resources (list, read, a foreign inbox refused, subscribe -> update on the session
protocol) and a cursor loop that receives a 10 KB message whole. Runs once per connect mode of
the SDK ("legacy": initialize handshake with a session; "auto": the 2026-07-28 discover
lifecycle with fallback). The hub is expected in enforce mode, so every call carries its
token.

Usage: python scenario.py http://127.0.0.1:PORT/mcp
Prints one line per check and a closing "N passed, N failed" line; exits 1 on failure.
"""

import asyncio
import hashlib
import json
import sys
import urllib.error
import urllib.request
import warnings

from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from prometheus_client.parser import text_string_to_metric_families

RESULTS: list[tuple[str, bool, str]] = []


def check(name: str, condition: bool, detail: object = "") -> None:
    RESULTS.append((name, bool(condition), "" if condition else str(detail)))


async def call(client: Client, tool: str, args: dict) -> tuple[dict, bool]:
    result = await client.call_tool(tool, args)
    text = result.content[0].text
    return json.loads(text), bool(result.is_error)


def http(url: str, data: bytes | None = None,
         headers: dict | None = None) -> tuple[int, object, bytes]:
    """One plain HTTP request: (status, headers (case-insensitive), body), also on errors."""
    request = urllib.request.Request(url, data=data, headers=headers or {},
                                     method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


async def artifacts(mode: str, alice: Client, alice_id: str, alice_token: str,
                    bob: Client, bob_id: str, bob_token: str) -> None:
    created, _ = await call(alice, "create_artifact_upload", {
        "agent_id": alice_id, "name": f"report-{mode}.json", "auth_token": alice_token})
    check(f"{mode}: create_artifact_upload returns a POST ticket",
          created.get("upload", {}).get("method") == "POST", created)
    artifact_id = created["artifact"]["id"]
    data = json.dumps({"mode": mode, "rows": list(range(2000))}).encode()
    status, _, body = await asyncio.to_thread(
        http, created["upload"]["url"], data, {"Content-Type": "application/json"})
    uploaded = json.loads(body)
    check(f"{mode}: the upload stores the bytes with their sha256",
          status == 200 and uploaded.get("sha256") == hashlib.sha256(data).hexdigest(),
          (status, uploaded))

    denied, is_error = await call(bob, "create_artifact_download", {
        "agent_id": bob_id, "artifact_id": artifact_id, "auth_token": bob_token})
    check(f"{mode}: bob needs a share first",
          is_error and denied.get("error_code") == "ARTIFACT_ACCESS_DENIED", denied)
    await call(alice, "share_artifact", {
        "from_agent": alice_id, "artifact_id": artifact_id, "to_agent": bob_id,
        "notify": False, "auth_token": alice_token})

    async def ticket() -> str:
        issued, _ = await call(bob, "create_artifact_download", {
            "agent_id": bob_id, "artifact_id": artifact_id, "auth_token": bob_token})
        return issued["download"]["url"]

    first = await ticket()
    status, headers, body = await asyncio.to_thread(http, first, None, {"Range": "bytes=0-99"})
    check(f"{mode}: a Range download returns 206 and those bytes",
          status == 206 and body == data[:100], (status, headers))
    status, headers, body = await asyncio.to_thread(http, await ticket())
    check(f"{mode}: a download returns the bytes, MIME type and ETag",
          status == 200 and body == data
          and headers.get("Content-Type") == "application/json"
          and headers.get("ETag") == f'"{hashlib.sha256(data).hexdigest()}"', (status, headers))
    status, _, _ = await asyncio.to_thread(http, first)
    check(f"{mode}: a spent ticket is refused with 401", status == 401, status)


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

        await artifacts(mode, alice, alice_id, alice_token, bob, bob_id, bob_token)


async def register(client: Client, agent_id: str) -> str:
    registered, _ = await call(client, "register_agent",
                               {"id": agent_id, "name": agent_id, "type": "python-sdk"})
    return registered["auth"]["token"]


async def ballot(url: str, mode: str) -> None:
    """Five workers vote under vote:<proposal>; a reviewer resolves them in one call."""
    proposal = f"py-proposal-{mode}"
    key = f"vote:{proposal}"
    worker_ids = [f"py-w{i}-{mode}" for i in range(1, 7)]
    reviewer_id = f"py-reviewer-{mode}"
    votes = [("accept", 0.9), ("accept", 0.8), ("reject", 0.4), ("accept", 0.7),
             ("abstain", 1.0)]
    async with Client(url, mode=mode) as reviewer, Client(url, mode=mode) as w6:
        reviewer_token = await register(reviewer, reviewer_id)
        w6_token = await register(w6, worker_ids[5])  # listed, votes only by forgery
        # Each worker is its own client and votes with its own token, all at once.
        async def vote(worker_id: str, decision: str, confidence: float) -> None:
            async with Client(url, mode=mode) as worker:
                token = await register(worker, worker_id)
                value = json.dumps({"decision": decision, "confidence": confidence})
                shared, is_error = await call(worker, "share_context", {
                    "agent_id": worker_id, "key": key, "value": value, "auth_token": token})
                check(f"{mode}: {worker_id} shares its vote", not is_error, shared)

        await asyncio.gather(*(vote(w, d, c) for w, (d, c) in zip(worker_ids, votes)))

        resolved, is_error = await call(reviewer, "resolve_consensus_from_context", {
            "requesting_agent": reviewer_id, "proposal_id": proposal,
            "agent_ids": worker_ids, "min_votes": 5, "quality_weighting": "off",
            "auth_token": reviewer_token})
        check(f"{mode}: the reviewer resolves five workers' votes in one call",
              not is_error and resolved.get("outcome") == "accept", resolved)
        stats = resolved.get("stats", {})
        check(f"{mode}: weights are each voter's confidence",
              (stats.get("weighted_accept"), stats.get("weighted_reject"),
               stats.get("abstain_count")) == (2.4, 0.4, 1), stats)
        check(f"{mode}: the listed non-voter is reported",
              resolved.get("missing_voters") == [worker_ids[5]], resolved)
        sources = [v["source"] for v in resolved.get("votes", []) if v.get("proven")]
        check(f"{mode}: every vote is proven by its voter's own context entry",
              len(sources) == 5 and all(s.startswith("context_id:") for s in sources),
              resolved)

        await call(w6, "share_context", {
            "agent_id": worker_ids[5], "key": key, "auth_token": w6_token,
            "value": json.dumps({"agent_id": worker_ids[0], "decision": "reject"})})
        forged, is_error = await call(reviewer, "resolve_consensus_from_context", {
            "requesting_agent": reviewer_id, "proposal_id": proposal,
            "agent_ids": worker_ids, "auth_token": reviewer_token})
        check(f"{mode}: a vote in another worker's name is refused",
              is_error and forged.get("error_code") == "VOTE_AUTHOR_MISMATCH"
              and forged["entries"][0]["claimed_voter"] == worker_ids[0], forged)


def bearer_client(url: str, token: str, mode: str, **kwargs) -> Client:
    """A client whose every request carries `Authorization: Bearer <token>`."""
    http_client = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    return Client(streamable_http_client(url, http_client=http_client), mode=mode, **kwargs)


async def surface(url: str, mode: str) -> None:
    """Tool profiles, resources (read; subscribe on the session protocol) and a cursor loop
    that receives a 10 KB message whole."""
    for profile, limit in (("worker", 12), ("orchestrator", 46), ("observer", 46), ("full", 46)):
        async with Client(f"{url}?tools={profile}", mode=mode) as client:
            tools = (await client.list_tools()).tools
            names = {tool.name for tool in tools}
            check(f"{mode}: profile {profile} lists {len(tools)} tools (<= {limit})",
                  0 < len(tools) <= limit and "register_agent" in names, sorted(names))
            if profile == "worker":
                check(f"{mode}: the worker profile has the claim loop",
                      {"poll_and_claim", "renew_task_claim", "release_task_claim",
                       "wait_for_updates"} <= names, sorted(names))
            if profile == "full":
                check(f"{mode}: full lists every tool", len(tools) == 46, len(tools))

    sender_id, reader_id = f"py-sender-{mode}", f"py-reader-{mode}"
    async with Client(url, mode=mode) as plain:
        sender_token = await register(plain, sender_id)
        reader_token = await register(plain, reader_id)

    updates: asyncio.Queue[str] = asyncio.Queue()

    async def on_message(message: object) -> None:
        message = getattr(message, "root", message)
        if getattr(message, "method", None) == "notifications/resources/updated":
            updates.put_nowait(message.params.uri)

    async with bearer_client(url, reader_token, mode, message_handler=on_message) as reader, \
            bearer_client(url, sender_token, mode) as sender:
        listed = [str(r.uri) for r in (await reader.list_resources()).resources]
        check(f"{mode}: resources/list names hub://agents and hub://tasks",
              listed == ["hub://agents", "hub://tasks"], listed)
        inbox_uri = f"hub://inbox/{reader_id}"
        subscribed = mode == "legacy"  # 2026-07-28 has subscriptions/listen instead
        if subscribed:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                await reader.subscribe_resource(inbox_uri)
        long = "".join(f"line {i:05d} of a long report\n" for i in range(400))[:10240]
        sent, _ = await call(sender, "send_message", {
            "from_agent": sender_id, "to_agent": reader_id, "content": long})
        if subscribed:
            try:
                uri = await asyncio.wait_for(updates.get(), timeout=20)
            except asyncio.TimeoutError:
                uri = None
            check(f"{mode}: a subscribed inbox gets notifications/resources/updated",
                  uri == inbox_uri, uri)
        read = await reader.read_resource(inbox_uri)
        inbox = json.loads(read.contents[0].text)
        # Earlier broadcasts are in this inbox too; the sender's message is the one checked.
        mine = [m["content"] for m in inbox["messages"] if m["from_agent"] == sender_id]
        check(f"{mode}: hub://inbox carries the 10 KB message whole",
              mine == [long], [len(c) for c in mine])
        foreign = f"hub://inbox/{sender_id}"
        try:
            await reader.read_resource(foreign)
            check(f"{mode}: another agent's inbox is refused", False, "read succeeded")
        except Exception as error:  # the SDK raises on a JSON-RPC error
            check(f"{mode}: another agent's inbox is refused",
                  "AUTH_TOKEN_INVALID" in repr(error) or "invalid" in str(error), repr(error))

        # The documented loop: cursor reads in compact with include_content, each page
        # continued from next_cursor until has_more is false.
        cursor, received = "0", []
        while True:
            page, is_error = await call(reader, "read_messages", {
                "agent_id": reader_id, "cursor": cursor, "response_mode": "compact",
                "include_content": True})
            if is_error:
                check(f"{mode}: the cursor loop reads", False, page)
                break
            received += [m["content"] for m in page["messages"]
                         if m["from_agent"] == sender_id]
            cursor = page["next_cursor"] or cursor
            if not page["has_more"]:
                break
        check(f"{mode}: a cursor loop receives the 10 KB message whole",
              received == [long] and sent["message"]["id"] > 0, [len(c) for c in received])


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
        for run in (scenario, ballot, surface):
            try:
                await run(url, mode)
            except Exception as error:  # report, do not hide, an SDK or hub failure
                check(f"{mode}: {run.__name__} ran to the end", False, repr(error))
    try:
        after = tool_calls(metrics_url)
        sent = after.get(("send_message", "ok"), 0) - before.get(("send_message", "ok"), 0)
        # Each mode sends a direct, a broadcast and a later message, and the 10 KB one.
        check("/metrics counts the scenario's send_message calls", sent == 8, after)
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
