#!/usr/bin/env bash
# Try mcp-warden in one command: starts the MCP "everything" server on 127.0.0.1:3001,
# then mcp-warden on 127.0.0.1:8080 in front of it with config/example.toml, and prints
# tokens to try. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cmake >/dev/null || { echo "cmake is required to build pingora (apt-get install cmake)"; exit 1; }
command -v npm >/dev/null || { echo "Node.js and npm are required for the example MCP server"; exit 1; }

[ -d tests/interop/node_modules ] || npm ci --silent --prefix tests/interop
cargo build --release --quiet
bin=target/release/mcp-warden

# server-everything has a `get-env` tool that prints the server's whole environment, and the
# example policy lets staff call it (it is the taint demo's sensitive source). So the server
# gets a minimal environment (`env -i`: PATH and HOME only), never this shell's, which may
# hold credentials anyone with the example's dev secret could then read.
env -i PATH="$PATH" HOME="$HOME" PORT=3001 \
  node tests/interop/node_modules/@modelcontextprotocol/server-everything/dist/index.js streamableHttp \
  >/tmp/mcp-warden-upstream.log 2>&1 &
upstream=$!
trap 'kill $upstream 2>/dev/null || true' EXIT
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/3001) 2>/dev/null && break; sleep 0.2; done

staff=$($bin dev-jwt --config config/example.toml --sub sam --role staff --scope mcp:tools)
admin=$($bin dev-jwt --config config/example.toml --sub ada --role admin)
cat <<MSG

  MCP server (everything):  http://127.0.0.1:3001/mcp   (log: /tmp/mcp-warden-upstream.log)
  mcp-warden:               http://127.0.0.1:8080/mcp   (policies: policies/example)
  metrics and probes:       http://127.0.0.1:9090/metrics, /healthz, /readyz
  audit log:                this terminal (standard output); diagnostics on standard error

  Tokens (valid 1h):
    export STAFF=$staff
    export ADMIN=$admin

  Then follow "A worked example" in docs/src/getting-started.md.

MSG
"$bin" run --config config/example.toml
