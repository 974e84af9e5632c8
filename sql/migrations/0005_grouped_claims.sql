-- The claim looks its jobs up by id among the tenant's queued ones. With the id in the partial
-- index, every plan the planner may choose for it is a lookup per job, even while statistics still
-- say the tenant has nothing queued (a burst before autovacuum analyzes, a freshly truncated table):
-- with (tenant_id) alone, such a plan read the whole backlog for every claim (20 ms per claim of
-- 10 jobs at a 6,000-job backlog). Backpressure's count of a tenant's queued jobs still reads it
-- index-only. On a large table, create the new index CONCURRENTLY by hand before migrating.
DROP INDEX index_jobs_queued_by_tenant;
CREATE INDEX index_jobs_queued_by_tenant ON index_jobs (tenant_id, id) WHERE status = 'queued';

-- A worker reads the version it indexes in the claim's second statement and writes it when the job
-- completes, not at the claim: one row version fewer per job.
COMMENT ON COLUMN index_jobs.document_version IS 'While queued, processing or failed: the latest version posted that joined this job (re-posts join the queued job). Once indexed: the version this job read and indexed.';

-- The tsvector of a passage, in one place for every statement that writes passages: the title
-- weighs A, the body D. A SQL function this simple is inlined where it is called.
CREATE FUNCTION searchhub_passage_tsv(config regconfig, title text, body text) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN setweight(to_tsvector(config, coalesce(title, '')), 'A') || setweight(to_tsvector(config, body), 'D');
COMMENT ON FUNCTION searchhub_passage_tsv(regconfig, text, text) IS 'search_passages.tsv of a passage: title with weight A, body with weight D, in the given text-search configuration.';
