"""Interop: the real `claude` and `codex` CLIs accept the MCP config hub-launch gives them.

For each backend, takes the configuration from `hub-launch --dry-run` (the command line for
codex, the MCP config JSON for claude) and asks the real CLI to list its MCP servers:
`claude mcp list` (in a throwaway CLAUDE_CONFIG_DIR, so user settings are untouched) must
show agent-hub connected — it health-checks the hub with the token header expanded from
AGENT_HUB_TOKEN; `codex mcp list --json` (throwaway CODEX_HOME) must show agent-hub enabled
with the bearer token read from AGENT_HUB_TOKEN (codex does not probe servers in `mcp list`).
A CLI that is not installed is skipped with a line saying so. Standard library only.

Usage: python launcher_clis.py <hub-launch binary> <hub MCP URL>
"""
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import urllib.request

launcher, url = os.path.abspath(sys.argv[1]), sys.argv[2]


def dry_run(backend):
    out = subprocess.run(
        [launcher, "--backend", backend, "--endpoint", url, "--dry-run"],
        check=True, capture_output=True, text=True, cwd=tempfile.gettempdir(),
    ).stdout
    return out.splitlines()


def register(agent_id):
    """A real token for the header (the hub runs in enforce mode)."""
    session = None

    def post(message):
        nonlocal session
        headers = {"content-type": "application/json",
                   "accept": "application/json, text/event-stream"}
        if session:
            headers["mcp-session-id"] = session
        request = urllib.request.Request(url, json.dumps(message).encode(), headers)
        with urllib.request.urlopen(request) as response:
            session = response.headers.get("mcp-session-id") or session
            return response.read().decode()

    post({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "interop-launcher", "version": "0"}}})
    post({"jsonrpc": "2.0", "method": "notifications/initialized"})
    body = post({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "register_agent",
        "arguments": {"id": agent_id, "name": agent_id, "type": "interop",
                      "onboarding_mode": "none"}}})
    if body.startswith("event:") or body.startswith("data:"):
        body = [line[5:] for line in body.splitlines() if line.startswith("data:")][-1]
    return json.loads(json.loads(body)["result"]["content"][0]["text"])["auth"]["token"]


def check_claude(token):
    lines = dry_run("claude")
    start = lines.index(next(l for l in lines if l.startswith("# <private-temp-dir>/mcp.json")))
    end = lines.index("# prompt")
    server = json.loads("\n".join(lines[start + 1:end]))["mcpServers"]["agent-hub"]
    with tempfile.TemporaryDirectory() as home:
        env = dict(os.environ, CLAUDE_CONFIG_DIR=home, AGENT_HUB_TOKEN=token)
        subprocess.run(["claude", "mcp", "add-json", "--scope", "user", "agent-hub",
                        json.dumps(server)], check=True, env=env, capture_output=True)
        listed = subprocess.run(["claude", "mcp", "list"], env=env, capture_output=True,
                                text=True, timeout=120).stdout
    line = next((l for l in listed.splitlines() if l.startswith("agent-hub:")), "")
    assert "Connected" in line, f"claude mcp list: agent-hub not connected:\n{listed}"
    print(f"ok: claude mcp list -> {line.strip()}")


def check_codex(token):
    lines = dry_run("codex")
    command = shlex.split(lines[lines.index("# command (the prompt below goes to its stdin)") + 1])
    # The global `-c` overrides, as the launcher passes them, in front of `mcp list`.
    overrides = command[1:command.index("exec")]
    with tempfile.TemporaryDirectory() as home:
        env = dict(os.environ, CODEX_HOME=home, AGENT_HUB_TOKEN=token)
        listed = subprocess.run(["codex", *overrides, "mcp", "list", "--json"], env=env,
                                capture_output=True, text=True, check=True, timeout=120).stdout
    servers = {server["name"]: server for server in json.loads(listed)}
    server = servers.get("agent-hub")
    assert server and server["enabled"], f"codex mcp list: agent-hub missing:\n{listed}"
    # The launcher hands the CLI the role's tool profile (assistant: worker).
    assert server["transport"]["url"] == f"{url}?tools=worker", server
    assert server["transport"]["bearer_token_env_var"] == "AGENT_HUB_TOKEN", server
    assert server["auth_status"] == "bearer_token", server
    print(f"ok: codex mcp list -> agent-hub enabled at {url}?tools=worker, bearer from "
          "AGENT_HUB_TOKEN")


for cli, check in [("claude", check_claude), ("codex", check_codex)]:
    if shutil.which(cli) is None:
        print(f"SKIP: {cli} CLI not installed (npm install -g @anthropic-ai/claude-code "
              f"@openai/codex); launcher wiring for {cli} not checked against the real CLI")
        continue
    check(register(f"interop-launcher-{cli}-{os.getpid()}"))
