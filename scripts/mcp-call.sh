#!/usr/bin/env bash
# One MCP request through mcp-warden with curl, for trying things out:
#   scripts/mcp-call.sh TOKEN METHOD [PARAMS-JSON]
# Opens a session (initialize, notifications/initialized), lists the tools (which also
# tells the proxy the tools' annotations), sends METHOD with PARAMS, and prints the HTTP
# status and the JSON-RPC answer (for tools/list, the tool names). MCP_URL overrides
# http://127.0.0.1:8080/mcp.
set -euo pipefail
token=$1 method=$2 params=${3:-"{}"}
url=${MCP_URL:-http://127.0.0.1:8080/mcp}
H=(-H 'content-type: application/json' -H 'accept: application/json, text/event-stream'
   -H "authorization: Bearer $token")
# The answer's JSON: the body, or the `data:` of its SSE event (not the empty priming event).
answer() { sed -n -e '/^data: /{s/^data: //;/./p;b' -e '}' -e '/^{/p'; }

init='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"mcp-call.sh","version":"1"}}}'
headers=$(curl -s -D - -o /tmp/mcp-call.$$ "$url" "${H[@]}" -d "$init")
status=$(head -1 <<<"$headers" | awk '{print $2}')
if [ "$status" != 200 ]; then
  echo "HTTP $status"
  grep -i '^www-authenticate' <<<"$headers" | tr -d '\r' || true
  answer </tmp/mcp-call.$$; echo
  rm -f /tmp/mcp-call.$$
  exit 1
fi
rm -f /tmp/mcp-call.$$
sid=$(awk 'tolower($1)=="mcp-session-id:"{print $2}' <<<"$headers" | tr -d '\r')
H+=(-H 'mcp-protocol-version: 2025-06-18')
[ -n "$sid" ] && H+=(-H "mcp-session-id: $sid")
curl -s -o /dev/null "$url" "${H[@]}" -d '{"jsonrpc":"2.0","method":"notifications/initialized"}'
list=$(curl -s "$url" "${H[@]}" -d '{"jsonrpc":"2.0","id":2,"method":"tools/list"}' | answer)
if [ "$method" = tools/list ]; then
  # Just the names: each tool object starts with its name.
  echo "HTTP 200"
  grep -o '{"name":"[^"]*"' <<<"$list" | sed 's/{"name":"//; s/"$//' | paste -sd ' ' -
  exit 0
fi
body=$(curl -s -w '\n%{http_code}' "$url" "${H[@]}" \
  -d "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"$method\",\"params\":$params}")
echo "HTTP $(tail -1 <<<"$body")"
head -n -1 <<<"$body" | answer
