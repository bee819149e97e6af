# A tiny MCP client in bash, for the demo walkthrough. Source it, then:
#
#   mcp TOKEN METHOD [PARAMS_JSON]
#
# sends one JSON-RPC request to $MCP_URL (default http://127.0.0.1:8080/mcp) with the
# token, and prints the answer. The first call with a token opens an MCP session
# (initialize + notifications/initialized); later calls with the same token reuse it, so
# what one call does to the session (taint) is seen by the next. `mcp_reset` forgets the
# sessions. Needs curl; pretty-prints with jq when it is installed.

declare -gA MCP_SESSIONS 2>/dev/null || true

mcp() {
  local token=$1 method=$2 params=${3:-'{}'}
  local url=${MCP_URL:-http://127.0.0.1:8080/mcp}
  if [ -z "$token" ] || [ -z "$method" ]; then
    echo "usage: mcp TOKEN METHOD [PARAMS_JSON]" >&2
    return 2
  fi
  local h=(-H 'content-type: application/json' -H 'accept: application/json, text/event-stream'
    -H "authorization: Bearer $token" -H 'mcp-protocol-version: 2025-06-18')
  local sid=${MCP_SESSIONS[$token]:-}
  if [ -z "$sid" ]; then
    local init='{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"mcp.sh","version":"1"}}}'
    sid=$(curl -si "$url" "${h[@]}" -d "$init" | tr -d '\r' | awk 'tolower($1)=="mcp-session-id:"{print $2}')
    if [ -z "$sid" ]; then
      echo "no session: is the demo running, and is the token valid?" >&2
      curl -s "$url" "${h[@]}" -d "$init" >&2
      echo >&2
      return 1
    fi
    MCP_SESSIONS[$token]=$sid
    curl -s "$url" "${h[@]}" -H "mcp-session-id: $sid" \
      -d '{"jsonrpc":"2.0","method":"notifications/initialized"}' >/dev/null
  fi
  local answer
  answer=$(curl -s "$url" "${h[@]}" -H "mcp-session-id: $sid" \
    -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"$method\",\"params\":$params}" |
    tr -d '\r' | sed -n -e '/^data: ./{s/^data: //p;d;}' -e '/^{/p')
  if command -v jq >/dev/null; then
    printf '%s\n' "$answer" | jq .
  else
    printf '%s\n' "$answer"
  fi
}

mcp_reset() {
  MCP_SESSIONS=()
}
