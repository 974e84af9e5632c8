"""Helpers the tests share: polling with a deadline (never sleeping as synchronisation)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    *,
    timeout_s: float = 20.0,
    what: str = "condition",
) -> T:
    """Polls ``probe`` until ``done(value)``; fails with the last value after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    value = await probe()
    while not done(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout_s} s; last value: {value!r}")
        await asyncio.sleep(0.02)
        value = await probe()
    return value


def wait_until_sync(check: Callable[[], bool], *, timeout_s: float, what: str) -> None:
    """Polls ``check`` until it holds; for fixtures that are not async."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not ready within {timeout_s} s")
        time.sleep(0.05)


async def on_connection(pool: Any, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
    """Calls ``fn(conn, *args)`` on a connection of ``pool``: for functions that take a connection."""
    async with pool.acquire() as conn:
        return await fn(conn, *args, **kwargs)
