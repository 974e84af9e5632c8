"""A corpus of real text that ships on every machine that runs Search Hub: the Python sources
installed with it (the standard library first, then the project's own dependencies), cut into one
document per module header, class and function, docstrings and comments included."""

from __future__ import annotations

import html
import re
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_DEFINITION = re.compile(r"^[ \t]*(?:async[ \t]+)?(def|class)[ \t]+(\w+)", re.MULTILINE)
MIN_CHARS = 40


@dataclass(frozen=True, slots=True)
class Doc:
    external_id: str
    title: str
    content: str
    content_type: str
    metadata: dict[str, Any]


def _roots() -> list[tuple[Path, str]]:
    """The standard library, the project's environment, then the interpreter's own packages."""
    paths = sysconfig.get_paths()
    stdlib, purelib = Path(paths["stdlib"]), Path(paths["purelib"])
    roots = [(stdlib, "stdlib"), (purelib, "venv")]
    if (stdlib / "site-packages").resolve() != purelib.resolve():
        roots.append((stdlib / "site-packages", "site-packages"))
    return roots


def _sources() -> Iterator[tuple[str, str, str]]:
    """(module name, origin, source text) in a fixed order."""
    for root, origin in _roots():
        for path in sorted(root.rglob("*.py")):
            if origin == "stdlib" and "site-packages" in path.relative_to(root).parts:
                continue
            module = ".".join(path.relative_to(root).with_suffix("").parts)
            yield module, origin, path.read_text(encoding="utf-8", errors="replace")


def _as(content_type: str, title: str, text: str) -> str:
    if content_type == "text/markdown":
        return f"# {title}\n\n```python\n{text}\n```\n"
    if content_type == "text/html":
        return (
            f"<!DOCTYPE html><html><head><title>{html.escape(title)}</title></head>"
            f"<body><h1>{html.escape(title)}</h1><pre>{html.escape(text)}</pre></body></html>"
        )
    return text


def documents(count: int) -> Iterator[Doc]:
    """``count`` documents (fewer only if the machine has less source); one in ten is Markdown and
    one in ten HTML, so every extractor is in the measured path."""
    made = 0
    for module, origin, source in _sources():
        starts = [(0, "module", module.rsplit(".", 1)[-1])]
        starts += [(m.start(), m[1], m[2]) for m in _DEFINITION.finditer(source)]
        for i, (start, kind, name) in enumerate(starts):
            end = starts[i + 1][0] if i + 1 < len(starts) else len(source)
            text = source[start:end].strip()
            if len(text) < MIN_CHARS or "\x00" in text:
                continue
            content_type = ("text/plain",) * 8 + ("text/markdown", "text/html")
            ct = content_type[made % 10]
            title = module if kind == "module" else f"{module}.{name}"
            yield Doc(
                external_id=f"{origin}/{module}:{start}",  # a module can be in two roots
                title=title,
                content=_as(ct, title, text),
                content_type=ct,
                metadata={"package": module.split(".", 1)[0], "kind": kind, "origin": origin},
            )
            made += 1
            if made >= count:
                return
