-- Refused requests cannot fill the disk (issue 12, item 3).
--
-- Failed sign-ins are aggregated: one row per (tenant, minute, source
-- address, client id presented -- unknown ones pooled --, error code), whose
-- id the server derives from that key. A later batch (or another node) that
-- counts more of the same failures adds to the row instead of appending one:
-- `count` grows, `last_at` moves forward, `user_agent` keeps the latest.
-- Successes keep their random ids and are never merged across batches.
CREATE UNIQUE INDEX sign_ins_failure_buckets ON sign_ins (id) WHERE result = 'failure';

-- Expired revoked tokens are deleted by every node's periodic maintenance
-- (an expired token is inactive without help); this finds them cheaply.
CREATE INDEX revoked_tokens_by_expiry ON revoked_tokens (expires_at);
