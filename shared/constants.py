"""Names both sides must agree on: the API enqueues with them, the worker listens on them."""

from typing import Final

#: The arq queue (a Redis sorted set) that carries index jobs.
QUEUE_NAME: Final = "searchhub:index"
#: The arq function name of the index job.
INDEX_JOB_FUNCTION: Final = "index_document"
#: Version of the job payload; bump it when its fields change so old workers can refuse new payloads.
PAYLOAD_VERSION: Final = 1

#: The only statuses of an index job (the CHECK in sql/migrations/0001_core.sql says the same).
JOB_STATUSES: Final = ("queued", "processing", "indexed", "failed")
CONTENT_TYPES: Final = ("text/plain", "text/markdown", "text/html")

#: PostgreSQL advisory lock keys (pg_advisory_lock takes a bigint); one per exclusive activity.
MIGRATION_LOCK_KEY: Final = 0x5EA2C8_0001
RECONCILER_LOCK_KEY: Final = 0x5EA2C8_0002

#: API keys look like ``sh_<43 URL-safe characters>`` (32 random bytes).
API_KEY_PREFIX: Final = "sh_"
#: Characters of a key kept in clear in api_keys.prefix to tell keys apart.
API_KEY_DISPLAY_CHARS: Final = 12

SERVICE_API: Final = "api"
SERVICE_WORKER: Final = "worker"
SERVICE_CLI: Final = "cli"
