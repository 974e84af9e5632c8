"""Named SQL statements from ``sql/queries/*.sql``, loaded once and called by name.

A block starts with ``-- name: <name>``; the comment lines under it describe it, the rest is the
statement. Keeping SQL in files lets a DBA read every statement the system runs.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


def parse(text: str) -> dict[str, str]:
    parts = _NAME.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        statement = "\n".join(line for line in body.splitlines() if not line.lstrip().startswith("--"))
        statement = statement.strip().rstrip(";").strip()
        if name in queries:
            raise ValueError(f"duplicate query name {name!r}")
        if not statement:
            raise ValueError(f"query {name!r} has no statement")
        queries[name] = statement
    return queries


@cache
def load() -> dict[str, str]:
    queries: dict[str, str] = {}
    for entry in sorted(resources.files("sql").joinpath("queries").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".sql"):
            for name, statement in parse(entry.read_text()).items():
                if name in queries:
                    raise ValueError(f"duplicate query name {name!r} in {entry.name}")
                queries[name] = statement
    return queries


class _Queries:
    """``Q.claim_job`` is the text of the statement named ``claim_job``."""

    def __getattr__(self, name: str) -> str:
        try:
            return load()[name]
        except KeyError:
            raise AttributeError(f"no query named {name!r} in sql/queries") from None


Q = _Queries()
