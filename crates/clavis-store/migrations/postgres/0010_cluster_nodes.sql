-- Nodes sharing this store, and the installation's key-encryption key
-- (docs/keys.md, "Several nodes"; docs/deploy.md). Ids and names only:
-- never key material.
--
-- cluster_nodes: one row per running `clavis serve` process (a node), written
-- when it starts and every 5 seconds after (a heartbeat), deleted when it
-- shuts down cleanly. A node last seen within 30 seconds counts as live:
-- a rewrap under a key that a live node lacks is refused, and `clavis store
-- copy` refuses a source that a live node serves. `kek_ids` lists the
-- key-encryption keys the node holds, comma-separated, in its configured
-- order; `sealing_kek_id` is the one it seals new records under. Rows of
-- nodes not seen for an hour are deleted by the other nodes' heartbeats.
CREATE TABLE cluster_nodes (
    node_id        UUID        NOT NULL,  -- random per process start
    host           TEXT        NOT NULL,  -- the machine's host name, for people
    listen         TEXT        NOT NULL,  -- the address it listens on
    public_url     TEXT        NOT NULL,
    kek_ids        TEXT        NOT NULL,
    sealing_kek_id TEXT        NOT NULL,
    started_at     TIMESTAMPTZ NOT NULL,
    last_seen_at   TIMESTAMPTZ NOT NULL,
    CONSTRAINT cluster_nodes_pkey PRIMARY KEY (node_id)
);

-- installation_kek: the key-encryption key every node seals new records
-- under whenever it holds it (at most one row). The first node that starts
-- sets it to its own first key; `clavis keys rewrap` changes it, after
-- checking that every live node holds the new one. A node that lacks it
-- seals under its own first key and says so in its log.
CREATE TABLE installation_kek (
    id        INTEGER     NOT NULL CHECK (id = 1),
    kek_id    TEXT        NOT NULL,
    chosen_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT installation_kek_pkey PRIMARY KEY (id)
);
