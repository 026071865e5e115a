-- Failed client authentications per throttle key and minute, summed over
-- every node sharing the database (the token endpoint's throttling, see
-- docs/deploy.md "Throttling"). Each node adds what it counted about once a
-- second; only failures are written, never successes. `key` names a source
-- address (IPv6 grouped by /64) or an application within a tenant, never a
-- secret. Rows older than a few minutes are deleted by the nodes.
CREATE TABLE auth_failures (
    key TEXT NOT NULL,
    -- Minutes since the Unix epoch (the counting window).
    window_start INTEGER NOT NULL,
    count INTEGER NOT NULL CHECK (count >= 0),
    PRIMARY KEY (key, window_start)
);
CREATE INDEX auth_failures_by_window ON auth_failures (window_start);
