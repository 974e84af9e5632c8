-- Core schema: tenants and their keys, documents, index jobs, idempotency records.
-- PostgreSQL is the truth: every fact the system relies on is a row here; Redis only moves work.

CREATE TABLE tenants (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text        NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE tenants IS 'One customer of Search Hub; every document and job belongs to exactly one tenant.';
COMMENT ON COLUMN tenants.id IS 'Tenant id; every tenant-owned row carries it as tenant_id.';
COMMENT ON COLUMN tenants.name IS 'Human name, unique, given to `searchhub tenant create`.';
COMMENT ON COLUMN tenants.created_at IS 'When the tenant was created.';

CREATE TABLE api_keys (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id     uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    prefix        text        NOT NULL UNIQUE,
    key_hash      bytea       NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
COMMENT ON TABLE api_keys IS 'API keys; the key itself is shown once at creation and never stored, only its SHA-256.';
COMMENT ON COLUMN api_keys.id IS 'Key id.';
COMMENT ON COLUMN api_keys.tenant_id IS 'The tenant this key authenticates as.';
COMMENT ON COLUMN api_keys.prefix IS 'First characters of the key, safe to show, to tell keys apart.';
COMMENT ON COLUMN api_keys.key_hash IS 'SHA-256 of the whole key; keys are random with >= 256 bits, so a fast hash is enough.';
COMMENT ON COLUMN api_keys.created_at IS 'When the key was issued.';
COMMENT ON COLUMN api_keys.last_used_at IS 'Last successful authentication, updated at most once a minute.';
COMMENT ON COLUMN api_keys.revoked_at IS 'When the key was revoked; a revoked key is refused.';
CREATE INDEX api_keys_tenant_id ON api_keys (tenant_id);

CREATE TABLE documents (
    id              uuid        PRIMARY KEY,
    tenant_id       uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    external_id     text,
    title           text,
    content         text        NOT NULL,
    content_type    text        NOT NULL DEFAULT 'text/plain'
                    CHECK (content_type IN ('text/plain', 'text/markdown', 'text/html')),
    metadata        jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    version         integer     NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    indexed_version integer,
    indexed_at      timestamptz,
    CONSTRAINT documents_tenant_external_id UNIQUE (tenant_id, external_id)
);
COMMENT ON TABLE documents IS 'The latest version of each ingested document (older versions are not kept).';
COMMENT ON COLUMN documents.id IS 'Document id, chosen by the API.';
COMMENT ON COLUMN documents.tenant_id IS 'Owning tenant.';
COMMENT ON COLUMN documents.external_id IS 'The tenant''s own key; posting it again makes a new version of this row.';
COMMENT ON COLUMN documents.title IS 'Optional title given by the client.';
COMMENT ON COLUMN documents.content IS 'Raw content as posted, in content_type.';
COMMENT ON COLUMN documents.content_type IS 'text/plain, text/markdown or text/html: decides how text is extracted.';
COMMENT ON COLUMN documents.metadata IS 'Client metadata, a JSON object returned with the document and its search hits.';
COMMENT ON COLUMN documents.version IS 'Starts at 1, +1 on each re-post of the same external_id.';
COMMENT ON COLUMN documents.created_at IS 'When version 1 was accepted.';
COMMENT ON COLUMN documents.updated_at IS 'When the latest version was accepted.';
COMMENT ON COLUMN documents.indexed_version IS 'The version the searchable index holds; never moves backwards.';
COMMENT ON COLUMN documents.indexed_at IS 'When indexed_version was written.';

CREATE TABLE index_jobs (
    id               uuid        PRIMARY KEY,
    tenant_id        uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    document_id      uuid        NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    document_version integer     NOT NULL,
    status           text        NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'processing', 'indexed', 'failed')),
    attempts         integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    error            text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    lease_expires_at timestamptz,
    CONSTRAINT index_jobs_finished CHECK ((status IN ('indexed', 'failed')) = (finished_at IS NOT NULL)),
    CONSTRAINT index_jobs_leased CHECK ((status = 'processing') = (lease_expires_at IS NOT NULL))
);
COMMENT ON TABLE index_jobs IS 'One request to (re)index a document. Moves only queued -> processing -> indexed | failed, and processing -> queued when an attempt fails and another is due.';
COMMENT ON COLUMN index_jobs.id IS 'Job id; also the arq job id in Redis, which makes a second enqueue a no-op.';
COMMENT ON COLUMN index_jobs.tenant_id IS 'Owning tenant (same as the document''s).';
COMMENT ON COLUMN index_jobs.document_id IS 'The document to index.';
COMMENT ON COLUMN index_jobs.document_version IS 'While queued: the latest version posted (re-posts join the queued job). From processing on: the version this job read and indexes.';
COMMENT ON COLUMN index_jobs.status IS 'queued, processing, indexed or failed.';
COMMENT ON COLUMN index_jobs.attempts IS 'Attempts started so far, an attempt whose worker died included; at most SEARCHHUB_JOB_MAX_ATTEMPTS.';
COMMENT ON COLUMN index_jobs.error IS 'Last attempt''s error; kept when a retry is due, final when failed.';
COMMENT ON COLUMN index_jobs.created_at IS 'When the job was created (the first post it serves).';
COMMENT ON COLUMN index_jobs.updated_at IS 'Last change of this row: the reconciler compares it with its thresholds.';
COMMENT ON COLUMN index_jobs.started_at IS 'When the latest attempt started.';
COMMENT ON COLUMN index_jobs.finished_at IS 'When the job became indexed or failed.';
COMMENT ON COLUMN index_jobs.lease_expires_at IS 'Set only while processing; the worker renews it; once past, the job is taken back.';

CREATE INDEX index_jobs_tenant_document_status ON index_jobs (tenant_id, document_id, status);
-- At most one queued job per document: a re-post joins it (ON CONFLICT on this index).
CREATE UNIQUE INDEX index_jobs_one_queued_per_document ON index_jobs (document_id) WHERE status = 'queued';
CREATE INDEX index_jobs_tenant_created ON index_jobs (tenant_id, created_at DESC, id DESC);
CREATE INDEX index_jobs_document_created ON index_jobs (document_id, created_at DESC);
-- The reconciler's scans: only unfinished rows, so the index stays small.
CREATE INDEX index_jobs_unfinished ON index_jobs (status, updated_at) WHERE status IN ('queued', 'processing');

CREATE TABLE idempotency_keys (
    tenant_id     uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    key           text        NOT NULL,
    request_hash  bytea       NOT NULL,
    response      jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key)
);
COMMENT ON TABLE idempotency_keys IS 'Idempotency-Key headers seen per tenant, with the first answer; kept at least SEARCHHUB_IDEMPOTENCY_TTL_S.';
COMMENT ON COLUMN idempotency_keys.tenant_id IS 'Tenant that sent the key; keys are per tenant.';
COMMENT ON COLUMN idempotency_keys.key IS 'The Idempotency-Key header value.';
COMMENT ON COLUMN idempotency_keys.request_hash IS 'SHA-256 of method, path and body: the same key with another body is a conflict.';
COMMENT ON COLUMN idempotency_keys.response IS 'The first answer''s body, returned again on a repeat.';
COMMENT ON COLUMN idempotency_keys.created_at IS 'When the key was first seen; rows older than the TTL are purged.';
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

CREATE VIEW index_job_overview AS
SELECT
    j.tenant_id,
    t.name AS tenant_name,
    j.status,
    count(*) AS jobs,
    max(now() - j.created_at) FILTER (WHERE j.status = 'queued') AS oldest_queued_age
FROM index_jobs j
JOIN tenants t ON t.id = j.tenant_id
GROUP BY j.tenant_id, t.name, j.status;
COMMENT ON VIEW index_job_overview IS 'Job counts by tenant and status, with the age of the oldest queued job.';
COMMENT ON COLUMN index_job_overview.tenant_id IS 'Tenant id.';
COMMENT ON COLUMN index_job_overview.tenant_name IS 'Tenant name.';
COMMENT ON COLUMN index_job_overview.status IS 'Job status.';
COMMENT ON COLUMN index_job_overview.jobs IS 'Number of jobs in this status.';
COMMENT ON COLUMN index_job_overview.oldest_queued_age IS 'Age of the oldest queued job (null for other statuses).';

CREATE VIEW stuck_index_jobs AS
SELECT
    j.id AS job_id,
    j.tenant_id,
    j.document_id,
    j.status,
    j.attempts,
    j.error,
    j.created_at,
    j.updated_at,
    j.lease_expires_at,
    now() - j.updated_at AS stuck_for
FROM index_jobs j
WHERE (j.status = 'processing' AND j.lease_expires_at < now())
   OR (j.status = 'queued' AND j.updated_at < now() - interval '5 minutes');
COMMENT ON VIEW stuck_index_jobs IS 'Jobs that need the reconciler: processing with an expired lease, or queued and untouched for 5 minutes.';
COMMENT ON COLUMN stuck_index_jobs.job_id IS 'Job id.';
COMMENT ON COLUMN stuck_index_jobs.tenant_id IS 'Tenant id.';
COMMENT ON COLUMN stuck_index_jobs.document_id IS 'Document id.';
COMMENT ON COLUMN stuck_index_jobs.status IS 'queued or processing.';
COMMENT ON COLUMN stuck_index_jobs.attempts IS 'Attempts started so far.';
COMMENT ON COLUMN stuck_index_jobs.error IS 'Last error, if any.';
COMMENT ON COLUMN stuck_index_jobs.created_at IS 'When the job was created.';
COMMENT ON COLUMN stuck_index_jobs.updated_at IS 'Last change of the job.';
COMMENT ON COLUMN stuck_index_jobs.lease_expires_at IS 'Lease end of a processing job.';
COMMENT ON COLUMN stuck_index_jobs.stuck_for IS 'Time since the last change.';
