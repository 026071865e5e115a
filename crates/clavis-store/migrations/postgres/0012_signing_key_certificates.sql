-- A self-signed X.509 certificate (DER) per signing key, as Entra publishes
-- one per key: the JWKS carries it as `x5c` and its SHA-1 thumbprint as
-- `x5t`, which code written for Entra reads. Made with the key and stored
-- with it, so every node publishes the same certificate; NULL for keys
-- made before this column existed until a node makes theirs (once: the
-- first node to store one wins, the others read it).
ALTER TABLE signing_keys ADD COLUMN certificate BYTEA;
