#!/usr/bin/env bash
# Interop test: starts a fresh hub-server (enforce mode, temporary data dir) and runs the
# scenario in scenario.py with the official MCP Python SDK, installed into interop/.venv, and
# sdk_ts.mjs with the official TypeScript SDK, installed into interop/.npm;
# then launcher_clis.py checks that the real claude and codex CLIs (when installed) accept
# the MCP config hub-launch gives them (`claude mcp list` / `codex mcp list`).
# Usage: interop/run.sh        (from anywhere; needs python3 >= 3.10 and cargo)
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
venv=interop/.venv
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r interop/requirements.txt

cargo build --quiet -p hub-server -p hub-launch
# Where cargo put the binary: CARGO_TARGET_DIR when set (relative to the repo root, as for
# cargo), else target/.
target_dir=${CARGO_TARGET_DIR:-target}
data=$(mktemp -d)
port=$("$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# Messages up to 16 KB: the cursor-loop check sends a 10 KB one (the default cap is 1,024).
MCP_HUB_DATA="$data" MCP_HUB_PORT="$port" MCP_HUB_AUTH_MODE=enforce \
  MCP_HUB_MAX_MESSAGE_CONTENT_CHARS=16384 \
  "$target_dir/debug/hub-server" >"$data/hub.log" 2>&1 &
hub_pid=$!
cleanup() {
  kill "$hub_pid" 2>/dev/null || true
  wait "$hub_pid" 2>/dev/null || true
  rm -rf "$data"
}
trap cleanup EXIT

# Wait (up to 10 s) until /health answers.
if ! "$venv/bin/python" - "$port" <<'PY'
import sys, time, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}/health"
for _ in range(100):
    try:
        urllib.request.urlopen(url, timeout=1).read()
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit(1)
PY
then
  echo "hub-server did not become healthy; its log:" >&2
  cat "$data/hub.log" >&2
  exit 1
fi

"$venv/bin/python" interop/scenario.py "http://127.0.0.1:$port/mcp"

# The official TypeScript SDK (pinned), installed into interop/.npm like the CLIs; skipped
# (with a note) where node/npm are missing.
ts_sdk=@modelcontextprotocol/sdk@1.32.2
if command -v node >/dev/null && command -v npm >/dev/null; then
  if [ ! -f interop/.npm/node_modules/@modelcontextprotocol/sdk/package.json ]; then
    npm install --silent --prefix interop/.npm "$ts_sdk"
  fi
  node interop/sdk_ts.mjs "http://127.0.0.1:$port/mcp"
else
  echo "node/npm not found: skipping the TypeScript SDK check ($ts_sdk)"
fi
"$venv/bin/python" interop/launcher_clis.py "$target_dir/debug/hub-launch" "http://127.0.0.1:$port/mcp"
