"""``python -m bench [name ...]``: runs the named benchmarks, or all of them."""

from __future__ import annotations

import sys
from collections.abc import Callable

from bench import search

BENCHMARKS: dict[str, Callable[[], None]] = {"search": search.main}


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark {unknown[0]!r}; choose from: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    for name in names:
        BENCHMARKS[name]()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
