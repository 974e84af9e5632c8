-- Search: the full-text index of each document's indexed version, as passages.
-- A long document is split into passages so that no tsvector reaches PostgreSQL's limits (1 MB per
-- tsvector, word positions capped at 16383): every word of every passage stays searchable, with
-- the positions phrase search needs. The worker replaces a document's passages in the transaction
-- that moves its job processing -> indexed, and only when that job's version is newer than the one
-- indexed (documents.indexed_version), so an older job never overwrites a newer index.
-- The index (tsvectors) and the text (for titles and snippets) are two tables: a query reads the
-- tsvectors of many passages but the text of only the page it returns, so the table it scans
-- stays narrow.

CREATE TABLE search_passages (
    tenant_id    uuid     NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    document_id  uuid     NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    passage_no   integer  NOT NULL CHECK (passage_no >= 0),
    version      integer  NOT NULL CHECK (version >= 1),
    indexed_seq  bigint   GENERATED ALWAYS AS IDENTITY,
    tsv          tsvector NOT NULL,
    PRIMARY KEY (document_id, passage_no)
);
COMMENT ON TABLE search_passages IS 'Full-text index: one row per passage (a few KB of extracted text) of each indexed document version; the text itself is in search_passage_texts. Rows go with their document (ON DELETE CASCADE). Search: tsv @@ websearch_to_tsquery(''english'', ''words'') AND tenant_id = ...; rank: ts_rank_cd(''{0.1,0.2,0.4,1.0}'', tsv, query).';
COMMENT ON COLUMN search_passages.tenant_id IS 'Owning tenant (the document''s); every search filters on it.';
COMMENT ON COLUMN search_passages.document_id IS 'The document this passage is part of; deleting the document deletes its passages.';
COMMENT ON COLUMN search_passages.passage_no IS 'Position of the passage in the document, from 0; passages are cut at paragraph breaks.';
COMMENT ON COLUMN search_passages.version IS 'The document version this passage was extracted from (equals documents.indexed_version).';
COMMENT ON COLUMN search_passages.indexed_seq IS 'Write order, newest highest. A query matching more passages than SEARCHHUB_SEARCH_CANDIDATES ranks the newest that many: ranking every match of a very common word would read them all.';
COMMENT ON COLUMN search_passages.tsv IS 'The document title with weight A || the passage text with weight D, built with the text-search configuration SEARCHHUB_SEARCH_CONFIG (default english).';

-- Rare words: the GIN index finds every match. Very common words: the planner walks the tenant's
-- passages newest first instead and stops at the candidate limit (see the search query).
CREATE INDEX search_passages_tsv ON search_passages USING gin (tsv);
CREATE INDEX search_passages_tenant_seq ON search_passages (tenant_id, indexed_seq DESC);

CREATE TABLE search_passage_texts (
    document_id  uuid    NOT NULL,
    passage_no   integer NOT NULL,
    title        text,
    body         text    NOT NULL,
    PRIMARY KEY (document_id, passage_no),
    FOREIGN KEY (document_id, passage_no) REFERENCES search_passages (document_id, passage_no) ON DELETE CASCADE
);
COMMENT ON TABLE search_passage_texts IS 'The text of each row of search_passages (same key), for hit titles and snippets; goes with its passage (ON DELETE CASCADE).';
COMMENT ON COLUMN search_passage_texts.document_id IS 'The document (search_passages.document_id).';
COMMENT ON COLUMN search_passage_texts.passage_no IS 'The passage (search_passages.passage_no).';
COMMENT ON COLUMN search_passage_texts.title IS 'The document title as indexed: the client''s, else the HTML <title>; the same on every passage of a document.';
COMMENT ON COLUMN search_passage_texts.body IS 'Extracted plain text of the passage (no markup); snippets are cut from it.';
