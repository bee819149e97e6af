"""The TLS guide's Python example: the official MCP SDK (`mcp`) through mcp-warden over mTLS.

    python docs/examples/python_sdk_mtls.py

Trusts the test CA, presents the workload's certificate (config/tls/agent.crt, made by the
guide's openssl commands), lists the tools that workload may see and calls `echo`. A test
runs this file as written (tests/it/book.rs) and compares what it prints with the guide.
"""

import asyncio
import os
import ssl

import httpx2  # the HTTP client of the `mcp` SDK (2.x)
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

URL = os.environ.get("MCP_URL", "https://localhost:8443/mcp")


async def main() -> None:
    tls = ssl.create_default_context(cafile="config/tls/ca.crt")
    tls.load_cert_chain("config/tls/agent.crt", "config/tls/agent.key")
    async with httpx2.AsyncClient(verify=tls, timeout=httpx2.Timeout(30, read=300)) as http:
        async with Client(streamable_http_client(URL, http_client=http)) as client:
            tools = await client.list_tools()
            print("tools:", " ".join(sorted(tool.name for tool in tools.tools)))
            result = await client.call_tool("echo", {"message": "hi"})
            print("echo:", " ".join(item.text for item in result.content if item.type == "text"))


asyncio.run(main())
