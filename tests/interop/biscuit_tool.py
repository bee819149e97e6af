#!/usr/bin/env python3
"""Mint and verify Biscuit tokens with `biscuit-python`, for mcp-warden's interop tests.

    biscuit_tool.py mint --private-key-file F [--root-key-id N] --code DATALOG [--attenuate DATALOG]...
        Prints the token (base64url). F holds `ed25519-private/<hex>` or
        `secp256r1-private/<hex>`, as `mcp-warden keygen` writes it.

    biscuit_tool.py verify --public-key-file F --token T [--authorize DATALOG]
        Verifies T against the root key in F (`ed25519/<hex>`, as `mcp-warden keygen`
        writes it) and prints one JSON object:
            {"block_count": int, "root_key_id": int | null, "revocation_ids": [hex, ...],
             "blocks": [datalog, ...], "authorized": int | null, "error": str | null}
        With --authorize, runs an authorizer made of DATALOG (facts and policies) and the
        current time over the token: "authorized" is the index of the matching allow policy, or "error" says why
        it failed. A token that does not verify exits non-zero.
"""

from __future__ import annotations

import argparse
import json
import sys

from biscuit_auth import (
    AuthorizerBuilder,
    Biscuit,
    BiscuitBuilder,
    BlockBuilder,
    PrivateKey,
    PublicKey,
    UnverifiedBiscuit,
)


def read_key(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read().strip()


def mint(args: argparse.Namespace) -> None:
    builder = BiscuitBuilder(args.code)
    if args.root_key_id is not None:
        builder.set_root_key_id(args.root_key_id)
    token = builder.build(PrivateKey(read_key(args.private_key_file)))
    for block in args.attenuate or []:
        token = token.append(BlockBuilder(block))
    print(token.to_base64())


def verify(args: argparse.Namespace) -> None:
    root = PublicKey(read_key(args.public_key_file))
    token = Biscuit.from_base64(args.token, lambda _key_id=None: root)
    report = {
        "block_count": token.block_count(),
        "root_key_id": UnverifiedBiscuit.from_base64(args.token).root_key_id(),
        "revocation_ids": list(token.revocation_ids),
        "blocks": [token.block_source(i) for i in range(token.block_count())],
        "authorized": None,
        "error": None,
    }
    if args.authorize is not None:
        try:
            builder = AuthorizerBuilder(args.authorize)
            builder.set_time()  # time(now), for the tokens' TTL checks
            report["authorized"] = builder.build(token).authorize()
        except Exception as e:  # AuthorizationError: a failed check or no policy matched
            report["error"] = f"{type(e).__name__}: {e}"
    print(json.dumps(report))


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("mint")
    m.add_argument("--private-key-file", required=True)
    m.add_argument("--root-key-id", type=int)
    m.add_argument("--code", required=True)
    m.add_argument("--attenuate", action="append")
    v = sub.add_parser("verify")
    v.add_argument("--public-key-file", required=True)
    v.add_argument("--token", required=True)
    v.add_argument("--authorize")
    args = parser.parse_args(argv)
    {"mint": mint, "verify": verify}[args.command](args)


if __name__ == "__main__":
    main(sys.argv[1:])
