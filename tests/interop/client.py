#!/usr/bin/env python3
"""Drive an MCP server with the official Python SDK (`mcp`), for mcp-warden's interop tests.

Connects over Streamable HTTP, negotiates (by default the `initialize` handshake), lists the
tools, optionally calls one, and prints exactly ONE JSON object on stdout:

    {
      "protocol_version": "2025-11-25" | null,
      "error": {"code": int, "message": str} | null,   # connecting failed (e.g. 401 from a proxy)
      "tools": ["echo", ...] | null,
      "list_error": {"code": int, "message": str} | null,
      "call": {"ok": bool, "is_error": bool, "error": {...} | null, "content": [...] | null,
               "structured_content": ... | null} | null
    }

A JSON-RPC error (a policy denial, say) is an outcome, not a crash: it is reported and the
script exits 0. The exit status is non-zero only when the script itself failed (bad flags,
an unexpected exception); then the traceback goes to stderr.

Usage:
    client.py URL [--bearer TOKEN] [--api-key KEY] [--header 'Name: value']...
              [--mode legacy|auto|2026-07-28] [--call NAME [--args JSON]] [--timeout SECS]
              [--cacert CA.pem] [--cert CLIENT.crt --key CLIENT.key]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from mcp import Client, MCPError
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", help="Streamable HTTP endpoint, e.g. http://127.0.0.1:8080/mcp")
    parser.add_argument("--bearer", help="send `Authorization: Bearer TOKEN`")
    parser.add_argument("--api-key", help="send `X-API-Key: KEY`")
    parser.add_argument(
        "--header", action="append", default=[], metavar="'NAME: VALUE'", help="extra request header (repeatable)"
    )
    parser.add_argument(
        "--mode",
        default="legacy",
        help="protocol negotiation: `legacy` (initialize handshake, the default), `auto` "
        "(server/discover, falling back to initialize) or a modern revision such as `2026-07-28`",
    )
    parser.add_argument("--call", metavar="NAME", help="tool to call after listing")
    parser.add_argument("--args", default="{}", metavar="JSON", help="tool arguments as a JSON object")
    parser.add_argument("--timeout", type=float, default=30.0, help="per-request read timeout in seconds")
    parser.add_argument("--cacert", help="PEM CA bundle to verify an https:// server with")
    parser.add_argument("--cert", help="PEM client certificate to present (mTLS); needs --key")
    parser.add_argument("--key", help="PEM private key of --cert")
    args = parser.parse_args(argv)
    try:
        args.arguments = json.loads(args.args)
    except json.JSONDecodeError as exc:
        parser.error(f"--args is not JSON: {exc}")
    if not isinstance(args.arguments, dict):
        parser.error("--args must be a JSON object")
    return args


def headers_from(args: argparse.Namespace) -> dict[str, str]:
    headers: dict[str, str] = {}
    if args.bearer:
        headers["Authorization"] = f"Bearer {args.bearer}"
    if args.api_key:
        headers["X-API-Key"] = args.api_key
    for raw in args.header:
        name, sep, value = raw.partition(":")
        if not sep:
            raise SystemExit(f"--header `{raw}` is not `Name: value`")
        headers[name.strip()] = value.strip()
    return headers


def error_json(exc: MCPError) -> dict[str, Any]:
    return {"code": exc.code, "message": exc.message}


def find_mcp_error(exc: BaseException) -> MCPError | None:
    """The SDK runs on anyio task groups, so an MCPError may arrive inside an ExceptionGroup."""
    if isinstance(exc, MCPError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = find_mcp_error(inner)
            if found is not None:
                return found
    cause = exc.__cause__ or exc.__context__
    return find_mcp_error(cause) if cause is not None else None


def dump(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, list):
        return [dump(item) for item in value]
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", by_alias=True, exclude_none=True)
    return value


def tls_http_client(args: argparse.Namespace) -> Any:
    """An httpx client trusting `--cacert` and presenting `--cert`/`--key`, or None."""
    if not (args.cacert or args.cert):
        return None
    import ssl

    import httpx2  # the SDK's HTTP client

    context = ssl.create_default_context(cafile=args.cacert)
    if args.cert:
        context.load_cert_chain(args.cert, args.key)
    return httpx2.AsyncClient(
        headers=headers_from(args),
        verify=context,
        timeout=httpx2.Timeout(30.0, read=300.0),
    )


async def run(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {"protocol_version": None, "error": None, "tools": None, "list_error": None, "call": None}
    http_client = tls_http_client(args) or create_mcp_http_client(headers=headers_from(args))
    async with http_client:
        transport = streamable_http_client(args.url, http_client=http_client)
        client = Client(transport, mode=args.mode, read_timeout_seconds=args.timeout, cache=None)
        try:
            await client.__aenter__()
        except BaseException as exc:  # noqa: BLE001 - reported, not swallowed
            found = find_mcp_error(exc)
            if found is None:
                raise
            report["error"] = error_json(found)
            return report
        try:
            report["protocol_version"] = client.protocol_version
            try:
                listed = await client.list_tools()
                report["tools"] = [tool.name for tool in listed.tools]
            except MCPError as exc:
                report["list_error"] = error_json(exc)

            if args.call:
                call: dict[str, Any] = {
                    "ok": False,
                    "is_error": False,
                    "error": None,
                    "content": None,
                    "structured_content": None,
                }
                try:
                    result = await client.call_tool(args.call, args.arguments)
                    call["is_error"] = bool(result.is_error)
                    call["ok"] = not result.is_error
                    call["content"] = dump(result.content)
                    call["structured_content"] = dump(result.structured_content)
                except MCPError as exc:
                    call["error"] = error_json(exc)
                report["call"] = call
        finally:
            await client.__aexit__(None, None, None)
    return report


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    report = asyncio.run(run(args))
    sys.stdout.write(json.dumps(report) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
