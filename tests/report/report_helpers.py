"""Constants of the report tests' tiny benchmark and a parser of report pages."""

from __future__ import annotations

import re
from html.parser import HTMLParser

TASKS = ("slide", "ball-roll-gc")
METHODS = ("icpi", "random", "lknn20")
SEEDS = (0, 1)
ITERATIONS = 3
# A completion that must reach the page as text, never as markup.
HOSTILE = "<script>alert('x')</script>"


class Page(HTMLParser):
    """The parts of a report page the tests look at."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.attrs: list[tuple[str, dict[str, str]]] = []
        self._table: str | None = None
        self._cell: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        self.attrs.append((tag, a))
        if tag == "table" and a.get("id"):
            self._table = a["id"]
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = None
        elif tag in ("td", "th") and self._cell is not None and self._table:
            self.tables[self._table][-1].append(re.sub(r"\s+", " ", "".join(self._cell)).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def sources(self, tag: str) -> list[str]:
        return [a.get("src", "") for t, a in self.attrs if t == tag]

    def by_class(self, tag: str, cls: str) -> list[dict[str, str]]:
        return [a for t, a in self.attrs if t == tag and cls in a.get("class", "").split()]
