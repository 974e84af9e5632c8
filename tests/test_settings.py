"""Settings: defaults from the contract, .env files, one clear line for a bad value."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from shared.settings import SettingsError, load_settings


def test_contract_defaults() -> None:
    s = load_settings({}, env_file=None)
    assert (s.host, s.port) == ("127.0.0.1", 8000)
    assert s.max_body_bytes == 10 * 1024 * 1024
    assert s.job_max_attempts == 3
    assert s.retry_backoff_s == 1.0
    assert s.processing_lease_s == 30.0
    assert s.reconcile_interval_s == 10.0
    assert s.log_json is False


def test_environment_overrides_env_file(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(
        "# comment\nSEARCHHUB_PORT=9000\nexport SEARCHHUB_LOG_JSON='true'\nSEARCHHUB_HOST=0.0.0.0\n"
    )

    s = load_settings({"SEARCHHUB_HOST": "10.0.0.1"}, env_file=env)

    assert (s.port, s.log_json, s.host) == (9000, True, "10.0.0.1")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SEARCHHUB_PORT", "eighty"),
        ("SEARCHHUB_PORT", "70000"),
        ("SEARCHHUB_JOB_MAX_ATTEMPTS", "0"),
        ("SEARCHHUB_LOG_JSON", "maybe"),
        ("SEARCHHUB_DATABASE_URL", "mysql://x"),
    ],
)
def test_bad_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings({name: value}, env_file=None)
    assert name in str(raised.value)


def test_process_with_a_bad_setting_stops_with_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "searchhub", "api"],
        env={"SEARCHHUB_PORT": "abc", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "SEARCHHUB_PORT" in lines[0]


def test_missing_database_url_is_named(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "searchhub", "worker"],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 2
    assert "SEARCHHUB_DATABASE_URL" in result.stderr


def test_empty_value_means_unset_except_where_empty_is_a_choice() -> None:
    s = load_settings({"SEARCHHUB_PORT": "", "SEARCHHUB_DB_ROLE": ""}, env_file=None)
    assert s.port == 8000
    assert s.db_role == ""
