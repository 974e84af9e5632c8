"""Schemathesis against our own /openapi.json, on a real `searchhub api` process: no 5xx, and every
response matches what the document says (status, headers, content type, schema)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance

from searchhub.embedded import free_port
from shared.settings import Settings
from tests.support import wait_until_sync

#: Limits the schema cannot express (NUL characters anywhere in metadata, blank content) make some
#: schema-valid bodies a 422; every other check runs, 5xx and response conformance among them.
NOT_CHECKED = [positive_data_acceptance]
#: Examples per operation: enough to find shape bugs, bounded to keep CI short.
EXAMPLES = 40


@pytest.fixture(scope="module")
def api_server(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    cwd = Path(tmp_path_factory.mktemp("fuzz"))
    port = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "SEARCHHUB_DATABASE_URL": settings.database_url or "",
        "SEARCHHUB_REDIS_URL": settings.redis_url or "",
        "SEARCHHUB_PORT": str(port),
        "SEARCHHUB_LOG_LEVEL": "WARNING",
    }
    created = subprocess.run(
        [sys.executable, "-m", "searchhub", "tenant", "create", f"fuzz-{port}"],
        env=env, cwd=cwd, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    key = created.stdout.strip().splitlines()[-1]
    server = subprocess.Popen([sys.executable, "-m", "searchhub", "api"], env=env, cwd=cwd)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_sync(lambda: _ready(url), timeout_s=30, what="searchhub api")
        yield url, key
    finally:
        server.terminate()
        server.wait(20)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_api_conforms_to_its_openapi(api_server: tuple[str, str]) -> None:
    url, key = api_server
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(headers={"Authorization": f"Bearer {key}"}, excluded_checks=NOT_CHECKED)

        try:
            check()
        except Exception as exc:
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert failures == []
