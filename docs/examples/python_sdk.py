"""The getting-started guide's Python example: the official MCP SDK (`mcp`) through mcp-warden.

    STAFF=<token printed by scripts/quickstart.sh> python docs/examples/python_sdk.py

Lists the tools the staff user may see, then calls two tools; a refusal is printed, not raised.
A test runs this file as written (tests/book.rs) and compares what it prints with the guide.
"""

import asyncio
import os

from mcp import Client, MCPError
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client

URL = os.environ.get("MCP_URL", "http://127.0.0.1:8080/mcp")


async def main() -> None:
    headers = {"Authorization": f"Bearer {os.environ['STAFF']}"}
    async with create_mcp_http_client(headers=headers) as http:
        transport = streamable_http_client(URL, http_client=http)
        async with Client(transport) as client:
            tools = await client.list_tools()
            print("tools:", " ".join(sorted(tool.name for tool in tools.tools)))
            for name, arguments in [("echo", {"message": "hi"}), ("toggle-simulated-logging", {})]:
                try:
                    result = await client.call_tool(name, arguments)
                    texts = [item.text for item in result.content if item.type == "text"]
                    print(f"{name}:", " ".join(texts))
                except MCPError as error:  # a policy denial is a JSON-RPC error
                    print(f"{name}: refused, {error.code} {error.message}")


asyncio.run(main())
