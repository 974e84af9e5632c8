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
