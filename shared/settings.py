"""All configuration, read once from the environment (and a ``.env`` file in the working directory).

Every setting is ``SEARCHHUB_<FIELD>``; a bad value stops the process with one line naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import msgspec

ENV_PREFIX = "SEARCHHUB_"

Positive = Annotated[int, msgspec.Meta(ge=1)]
NonNegative = Annotated[int, msgspec.Meta(ge=0)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
NonNegativeFloat = Annotated[float, msgspec.Meta(ge=0)]
Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
#: A PostgreSQL text-search configuration (regconfig) name, optionally schema-qualified: an
#: identifier, so that it is a name and never SQL (it is also only ever sent as a parameter).
RegConfig = Annotated[str, msgspec.Meta(pattern=r"^([a-z_][a-z0-9_$]*\.)?[a-z_][a-z0-9_$]*$", max_length=127)]


class SettingsError(Exception):
    """A setting is missing or malformed; the message names the variable."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    database_url: str | None = None
    redis_url: str | None = None
    host: str = "127.0.0.1"
    port: Port = 8000
    dev_api_key: str | None = None
    log_json: bool = False
    log_level: str = "INFO"

    # Request limits.
    max_body_bytes: Positive = 10 * 1024 * 1024
    max_title_chars: Positive = 1_000
    max_external_id_chars: Positive = 512
    max_metadata_bytes: Positive = 64 * 1024
    max_metadata_depth: Positive = 8
    max_batch_documents: Positive = 1_000
    idempotency_ttl_s: Positive = 24 * 3600
    #: Backpressure: past this many queued jobs a tenant's posts answer 429 until workers catch up.
    max_queued_per_tenant: Positive = 100_000
    #: How long a tenant's queued count is reused before it is counted again.
    backpressure_recheck_s: NonNegativeFloat = 1.0

    # Jobs and their retries.
    job_max_attempts: Positive = 3
    retry_backoff_s: NonNegativeFloat = 1.0
    job_timeout_s: PositiveFloat = 300.0
    processing_lease_s: PositiveFloat = 30.0
    reconcile_interval_s: PositiveFloat = 10.0
    # A queued job untouched this long should be waiting in Redis; the reconciler checks that it is.
    reconcile_queued_grace_s: NonNegativeFloat = 5.0
    enqueue_timeout_s: PositiveFloat = 0.5
    # The API's background enqueuer: jobs buffered at most, and sent per Redis round trip at most.
    enqueue_buffer_max: Positive = 10_000
    enqueue_batch_max: Positive = 500
    # Single posts coalesced into one statement: documents per statement, statements at once.
    ingest_batch_max: Positive = 256
    ingest_statements_max: Positive = 1

    # Worker process.
    worker_concurrency: Positive = 256
    worker_poll_delay_s: PositiveFloat = 0.05
    worker_metrics_port: Port = 9100
    worker_shutdown_grace_s: NonNegativeFloat = 10.0

    # Search.
    search_config: RegConfig = "english"
    search_max_query_chars: Positive = 500
    #: Matching passages ranked per query, newest first: exact for all but very common words.
    search_candidates: Positive = 1_000

    # API process.
    api_workers: Positive = 1
    #: How long a key's tenant is remembered (0: look it up on every request). Revocations reach
    #: every API process at once through PostgreSQL notifications; this bounds it if one is missed.
    auth_cache_s: NonNegativeFloat = 10.0

    # Pools.
    db_pool_max: Positive = 10
    #: Role the API and workers act as (SET ROLE), bound by row-level security. Empty: the login
    #: role of SEARCHHUB_DATABASE_URL is already the restricted one.
    db_role: str = "searchhub_app"
    # Opening a PostgreSQL connection gives up after this: with the database away, a request
    # answers 503 within it instead of hanging.
    db_connect_timeout_s: PositiveFloat = 3.0

    def require(self, field: str) -> Any:
        value = getattr(self, field)
        if value in (None, ""):
            raise SettingsError(f"{ENV_PREFIX}{field.upper()} is required but not set")
        return value


#: Settings for which an empty value is a choice, not "unset".
_EMPTY_MEANS_EMPTY = {"db_role"}

_URL_SCHEMES = {
    "database_url": ("postgresql://", "postgres://"),
    "redis_url": ("redis://", "rediss://", "unix://"),
}


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines; blank lines and ``#`` comments ignored, optional quotes stripped."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ")
        key, sep, value = line.partition("=")
        if not sep:
            raise SettingsError(f"{path}:{number}: expected KEY=value")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def load_settings(environ: Mapping[str, str] | None = None, env_file: Path | None = Path(".env")) -> Settings:
    """Settings from ``.env`` (if present) overridden by the environment."""
    source: dict[str, str] = {}
    if env_file is not None and env_file.is_file():
        source.update(read_env_file(env_file))
    source.update(os.environ if environ is None else environ)

    known = set(Settings.__struct_fields__)
    values: dict[str, Any] = {}
    for name, raw in source.items():
        if not name.startswith(ENV_PREFIX):
            continue
        field = name[len(ENV_PREFIX) :].lower()
        if field not in known:
            continue  # Settings of tools around us (tests, bench) share the prefix.
        if raw == "" and field not in _EMPTY_MEANS_EMPTY:
            continue  # VAR= in a .env file means "unset": the default applies
        values[field] = raw
    for field, schemes in _URL_SCHEMES.items():
        url = values.get(field)
        if url is not None and not url.startswith(schemes):
            raise SettingsError(f"{ENV_PREFIX}{field.upper()} must start with {' or '.join(schemes)}")
    try:
        return msgspec.convert(values, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(_describe(exc, values)) from None


def _describe(exc: msgspec.ValidationError, values: Mapping[str, Any]) -> str:
    # msgspec says "Expected `int`, got `str` - at `$.port`"; name the variable and the value instead.
    message = str(exc)
    text, _, where = message.rpartition(" - at `$.")
    field = where.rstrip("`")
    if not text or field not in values:
        return message
    return f"{ENV_PREFIX}{field.upper()}={values[field]!r} is invalid: {text}"
