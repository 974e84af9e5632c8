-- Security: tenant isolation in PostgreSQL itself, and the index behind backpressure.
--
-- Tenant isolation: a statement that forgot its tenant filter sees nothing.
--
-- The API and the workers run as searchhub_app (their pool does SET ROLE searchhub_app, or they log
-- in as a member of it), which row-level security binds to the tenant named by the session setting
-- searchhub.tenant_id. The schema's owner (migrations, tenant and key commands, the reconciler, DBAs)
-- is not bound: RLS is enabled, not forced.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'searchhub_app') THEN
        CREATE ROLE searchhub_app NOLOGIN;
    END IF;
END
$$;
COMMENT ON ROLE searchhub_app IS 'Search Hub API and workers: sees only the rows of the tenant in searchhub.tenant_id.';
-- The owner's login may switch to the role (SET ROLE); a superuser needs no grant.
DO $$
BEGIN
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        EXECUTE format('GRANT searchhub_app TO %I', current_user);
    END IF;
END
$$;

CREATE FUNCTION searchhub_current_tenant() RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT nullif(current_setting('searchhub.tenant_id', true), '')::uuid $$;
COMMENT ON FUNCTION searchhub_current_tenant() IS 'The tenant this session acts for (setting searchhub.tenant_id), or NULL: then RLS shows no rows.';

GRANT USAGE ON SCHEMA public TO searchhub_app;
GRANT SELECT ON tenants TO searchhub_app;
-- Authentication reads keys before any tenant is known, and touches last_used_at.
GRANT SELECT, UPDATE (last_used_at) ON api_keys TO searchhub_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON documents, index_jobs, idempotency_keys, search_passages,
    search_passage_texts TO searchhub_app;
DO $$
BEGIN
    EXECUTE format('GRANT USAGE ON SEQUENCE %s TO searchhub_app', pg_get_serial_sequence('search_passages', 'indexed_seq'));
END
$$;
GRANT EXECUTE ON FUNCTION searchhub_current_tenant() TO searchhub_app;

ALTER TABLE documents ENABLE ROW LEVEL SECURITY;
CREATE POLICY documents_tenant ON documents TO searchhub_app
    USING (tenant_id = searchhub_current_tenant()) WITH CHECK (tenant_id = searchhub_current_tenant());
COMMENT ON POLICY documents_tenant ON documents IS 'searchhub_app sees and writes only the current tenant''s documents.';

ALTER TABLE index_jobs ENABLE ROW LEVEL SECURITY;
CREATE POLICY index_jobs_tenant ON index_jobs TO searchhub_app
    USING (tenant_id = searchhub_current_tenant()) WITH CHECK (tenant_id = searchhub_current_tenant());
COMMENT ON POLICY index_jobs_tenant ON index_jobs IS 'searchhub_app sees and writes only the current tenant''s jobs.';

ALTER TABLE idempotency_keys ENABLE ROW LEVEL SECURITY;
CREATE POLICY idempotency_keys_tenant ON idempotency_keys TO searchhub_app
    USING (tenant_id = searchhub_current_tenant()) WITH CHECK (tenant_id = searchhub_current_tenant());
COMMENT ON POLICY idempotency_keys_tenant ON idempotency_keys IS 'searchhub_app sees only the current tenant''s idempotency records.';

ALTER TABLE search_passages ENABLE ROW LEVEL SECURITY;
CREATE POLICY search_passages_tenant ON search_passages TO searchhub_app
    USING (tenant_id = searchhub_current_tenant()) WITH CHECK (tenant_id = searchhub_current_tenant());
COMMENT ON POLICY search_passages_tenant ON search_passages IS 'searchhub_app searches and writes only the current tenant''s index.';

-- No tenant_id of its own: a text row is visible with its document, itself bound by documents_tenant.
ALTER TABLE search_passage_texts ENABLE ROW LEVEL SECURITY;
CREATE POLICY search_passage_texts_tenant ON search_passage_texts TO searchhub_app
    USING (EXISTS (SELECT 1 FROM documents d WHERE d.id = search_passage_texts.document_id))
    WITH CHECK (EXISTS (SELECT 1 FROM documents d WHERE d.id = search_passage_texts.document_id));
COMMENT ON POLICY search_passage_texts_tenant ON search_passage_texts IS 'searchhub_app sees the text of the current tenant''s passages only (through their documents).';

-- Search under row-level security. PostgreSQL cannot use an index for a condition whose operator
-- is not LEAKPROOF (tsv @@ query is not) ahead of a policy's condition, so inside RLS every search
-- would read all of a tenant's passages. This function runs the search as the schema owner,
-- outside RLS, for the tenant the calling session is bound to and no other: a caller that passes
-- another tenant gets nothing. EXECUTE plans each call for its own words, as the query needs:
-- the word's frequency decides between the GIN index (rare word) and a newest-first walk (common).
-- Arguments as in the named query `search` (sql/queries/search.sql).
CREATE FUNCTION searchhub_search(
    p_tenant uuid, p_config regconfig, p_query text, p_filter jsonb, p_limit integer, p_offset integer,
    p_headline text, p_candidates integer
) RETURNS TABLE (
    document_id uuid, external_id text, title text, score real, metadata jsonb, snippet text,
    candidates bigint
)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = public, pg_temp
AS $fn$
BEGIN
    IF p_tenant IS NULL OR p_tenant IS DISTINCT FROM searchhub_current_tenant() THEN
        RETURN;
    END IF;
    RETURN QUERY EXECUTE $q$
WITH candidates AS (
    -- The tsquery is written out (not taken from a CTE) so that the planner sees its words.
    SELECT p.document_id, p.passage_no, p.tsv
    FROM search_passages p
    WHERE p.tenant_id = $1
      AND p.tsv @@ websearch_to_tsquery($2::regconfig, $3)
      AND ($4::jsonb IS NULL
           OR EXISTS (SELECT FROM documents d WHERE d.id = p.document_id AND d.metadata @> $4::jsonb))
    ORDER BY p.indexed_seq DESC
    LIMIT $8
), ranked AS (
    -- Ranked only here, after LIMIT: ranking is the costly part (every tsvector is read).
    SELECT DISTINCT ON (c.document_id) c.document_id, c.passage_no,
           ts_rank_cd('{0.1, 0.2, 0.4, 1.0}', c.tsv, websearch_to_tsquery($2::regconfig, $3)) AS score
    FROM candidates c
    ORDER BY c.document_id, score DESC, c.passage_no
), page AS (
    SELECT r.document_id, r.passage_no, r.score
    FROM ranked r
    ORDER BY r.score DESC, r.document_id
    LIMIT $5 OFFSET $6
)
SELECT page.document_id, d.external_id, t.title, page.score, d.metadata,
       -- Escaped first: the headline parser would drop text that looks like a tag ("<daily>").
       ts_headline($2::regconfig,
                   replace(replace(replace(t.body, '&', '&amp;'), '<', '&lt;'), '>', '&gt;'),
                   websearch_to_tsquery($2::regconfig, $3), $7) AS snippet,
       (SELECT count(*) FROM candidates) AS candidates
FROM page
JOIN search_passage_texts t ON t.document_id = page.document_id AND t.passage_no = page.passage_no
JOIN documents d ON d.id = page.document_id
ORDER BY page.score DESC, page.document_id
$q$ USING p_tenant, p_config, p_query, p_filter, p_limit, p_offset, p_headline, p_candidates;
END
$fn$;
COMMENT ON FUNCTION searchhub_search(uuid, regconfig, text, jsonb, integer, integer, text, integer) IS 'GET /v1/search for the session''s bound tenant only, outside RLS so that the GIN index serves tsv @@ query.';
REVOKE ALL ON FUNCTION searchhub_search(uuid, regconfig, text, jsonb, integer, integer, text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION searchhub_search(uuid, regconfig, text, jsonb, integer, integer, text, integer) TO searchhub_app;

-- Backpressure counts a tenant's queued jobs; this keeps that count an index-only scan.
CREATE INDEX index_jobs_queued_by_tenant ON index_jobs (tenant_id) WHERE status = 'queued';

-- API processes remember which tenant a key belongs to; every revocation or deletion of a key,
-- by `searchhub key revoke` or by hand in SQL, tells them to forget at once (api/key_cache.py).
CREATE FUNCTION searchhub_notify_api_key_change() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM pg_notify('searchhub_api_keys', coalesce(NEW.prefix, OLD.prefix));
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION searchhub_notify_api_key_change() IS 'NOTIFY searchhub_api_keys with the key prefix: API processes drop remembered keys.';
CREATE TRIGGER api_keys_revoked AFTER UPDATE OF revoked_at OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION searchhub_notify_api_key_change();
COMMENT ON TRIGGER api_keys_revoked ON api_keys IS 'Revocations reach the API processes'' key caches at once.';
