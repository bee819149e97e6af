#!/usr/bin/env python3
"""Fail on a broken link in the built book or in the README.

mdBook does not fail on a link to a page or `#anchor` that does not exist, so after
`mdbook build docs` this resolves every relative link of every page in `docs/book/`
(`href` and `src`), and every relative link of `README.md` (files, and `#anchors` into the
book's pages), offline. Links to other sites are not fetched.

    python3 docs/check-links.py            # from the repository root, after `mdbook build docs`
"""

from __future__ import annotations

import html.parser
import re
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "docs" / "book"
SRC = ROOT / "docs" / "src"


class Page(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[tuple[int, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is None:
                continue
            if name in ("id", "name"):
                self.ids.add(value)
            elif name in ("href", "src"):
                self.links.append((self.getpos()[0], value))


def parse(path: Path, cache: dict[Path, Page]) -> Page:
    if path not in cache:
        page = Page()
        page.feed(path.read_text(encoding="utf-8"))
        cache[path] = page
    return cache[path]


def is_external(link: str) -> bool:
    parts = urlsplit(link)
    return bool(parts.scheme) or link.startswith("//")


def check_book(cache: dict[Path, Page]) -> list[str]:
    problems = []
    pages = sorted(BOOK.rglob("*.html"))
    if not pages:
        return [f"{BOOK} has no pages: run `mdbook build docs` first"]
    for path in pages:
        # print.html repeats every page with its links rewritten; 404.html is a template.
        if path.name in ("print.html", "404.html", "toc.html"):
            continue
        page = parse(path, cache)
        for line, link in page.links:
            if is_external(link) or link.startswith("javascript:"):
                continue
            parts = urlsplit(link)
            target = path if not parts.path else (path.parent / unquote(parts.path)).resolve()
            where = f"{path.relative_to(BOOK)}:{line}"
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                problems.append(f"{where}: `{link}`: no such file")
                continue
            if parts.fragment and target.suffix == ".html":
                if unquote(parts.fragment) not in parse(target, cache).ids:
                    problems.append(f"{where}: `{link}`: no `#{parts.fragment}` in {target.name}")
    return problems


LINK = re.compile(r"\]\(([^)\s]+)\)")


def check_readme(cache: dict[Path, Page]) -> list[str]:
    problems = []
    readme = ROOT / "README.md"
    for number, text in enumerate(readme.read_text(encoding="utf-8").splitlines(), 1):
        for link in LINK.findall(text):
            if is_external(link):
                continue
            parts = urlsplit(link)
            target = (ROOT / unquote(parts.path)).resolve() if parts.path else readme
            if not target.exists():
                problems.append(f"README.md:{number}: `{link}`: no such file")
                continue
            if parts.fragment:
                try:
                    page = target.relative_to(SRC)
                except ValueError:
                    problems.append(f"README.md:{number}: `{link}`: anchors are checked only into the book")
                    continue
                built = BOOK / page.with_suffix(".html")
                if not built.exists() or parts.fragment not in parse(built, cache).ids:
                    problems.append(f"README.md:{number}: `{link}`: no `#{parts.fragment}` in the book's {page}")
    return problems


def main() -> int:
    cache: dict[Path, Page] = {}
    problems = check_book(cache) + check_readme(cache)
    for problem in problems:
        print(f"broken link: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"links ok: {len(cache)} pages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
