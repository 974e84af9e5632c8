"""The `searchhub` commands against the test database."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import httpx

from shared.keys import hash_key
from shared.settings import Settings
from tests.support import eventually


def _searchhub(settings: Settings, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ["PATH"],
        "SEARCHHUB_DATABASE_URL": settings.database_url or "",
        "SEARCHHUB_REDIS_URL": settings.redis_url or "",
    }
    return subprocess.run(
        [sys.executable, "-m", "searchhub", *args],
        env=env,
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
    )


async def test_tenant_create_prints_a_working_key_and_stores_only_its_hash(
    settings: Settings, pool: asyncpg.Pool, app_client: httpx.AsyncClient, tmp_path: Path
) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    result = _searchhub(settings, "tenant", "create", name, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    key = result.stdout.strip().splitlines()[-1]
    assert key.startswith("sh_")
    assert len(key) >= 43
    row = await pool.fetchrow(
        "SELECT k.key_hash, k.prefix FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE t.name = $1",
        name,
    )
    assert row["key_hash"] == hash_key(key)
    assert key not in row["prefix"]
    response = await app_client.get("/v1/index-jobs", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200


async def test_tenant_create_twice_is_refused(settings: Settings, tmp_path: Path) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    assert _searchhub(settings, "tenant", "create", name, cwd=tmp_path).returncode == 0

    again = _searchhub(settings, "tenant", "create", name, cwd=tmp_path)

    assert again.returncode == 1
    assert "already exists" in again.stderr


async def test_migrate_command_is_idempotent(settings: Settings, tmp_path: Path) -> None:
    result = _searchhub(settings, "migrate", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout


async def test_key_create_list_and_revoke(
    settings: Settings, app_client: httpx.AsyncClient, tmp_path: Path
) -> None:
    name = f"keys-{uuid.uuid4().hex[:8]}"
    first = _searchhub(settings, "tenant", "create", name, cwd=tmp_path).stdout.strip().splitlines()[-1]
    created = _searchhub(settings, "key", "create", name, cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    second = created.stdout.strip().splitlines()[-1]
    for key in (first, second):
        response = await app_client.get("/v1/index-jobs", headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 200

    listing = _searchhub(settings, "key", "list", name, cwd=tmp_path).stdout
    assert first[:12] in listing
    assert second[:12] in listing
    assert first not in listing
    assert second not in listing

    revoked = _searchhub(settings, "key", "revoke", first[:12], cwd=tmp_path)
    assert revoked.returncode == 0, revoked.stderr
    # The API remembered the key; PostgreSQL's revocation notice makes it forget within moments.
    refused = await eventually(
        lambda: app_client.get("/v1/index-jobs", headers={"Authorization": f"Bearer {first}"}),
        lambda r: r.status_code == 401,
        timeout_s=5,
        what="revoked key refused",
    )
    unknown = await app_client.get("/v1/index-jobs", headers={"Authorization": "Bearer sh_unknown"})
    assert refused.status_code == unknown.status_code == 401
    assert refused.json() == unknown.json()
    still = await app_client.get("/v1/index-jobs", headers={"Authorization": f"Bearer {second}"})
    assert still.status_code == 200
    assert _searchhub(settings, "key", "revoke", first[:12], cwd=tmp_path).returncode == 1


async def test_key_commands_name_a_missing_tenant(settings: Settings, tmp_path: Path) -> None:
    result = _searchhub(settings, "key", "list", "no-such-tenant", cwd=tmp_path)
    assert result.returncode == 1
    assert "no tenant" in result.stderr
