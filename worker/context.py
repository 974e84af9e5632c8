"""What a job needs from its process, created once per worker process."""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg

from shared.settings import Settings


class Outage:
    """Whether PostgreSQL is away as far as this process saw last, so that an outage is reported
    once and its end once, not by every delivery that meets it."""

    def __init__(self) -> None:
        self.down = False

    def begin(self) -> bool:
        """Marks it down; True if that is news."""
        first, self.down = not self.down, True
        return first

    def end(self) -> bool:
        """Marks it up; True if it was down."""
        was, self.down = self.down, False
        return was


@dataclass(frozen=True)
class WorkerContext:
    settings: Settings
    pool: asyncpg.Pool
    database: Outage = field(default_factory=Outage)


#: Key of the WorkerContext in arq's ``ctx`` dict.
CTX_KEY = "searchhub"
