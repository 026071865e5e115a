-- The caller's own id for a request (the `client-request-id` header MSAL
-- sends, or a `request-id` it chose), kept apart from `correlation_id`,
-- which Clavis always generates itself: a caller cannot make its events
-- share an id with anyone else's. Visible ASCII only, at most 64
-- characters (the server sanitises it); NULL when the caller sent none,
-- and for every event recorded before this column existed.
ALTER TABLE audit_events ADD COLUMN client_request_id TEXT;
