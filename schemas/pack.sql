-- rwkv-edit edit pack, schema version 3 (the tables are those of version 1; version 2 changed the
-- manifest's model identity; version 3 binds each row's checksum to its place and adds the manifest's
-- value list digest). One SQLite file per pack, rollback journal (no WAL):
-- the single .rwkvpack file is the artifact. See schemas/README.md for the blob encoding and the
-- migration policy, schemas/manifest.schema.json for the manifest.
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,   -- 'schema_version' (integer), 'status' ('staged' | 'complete'), 'manifest' (JSON)
    value TEXT NOT NULL
);
-- The vocabulary the pack was compiled from (every shard holds the whole list).
CREATE TABLE IF NOT EXISTS vocab (
    name    TEXT PRIMARY KEY,  -- the value's name, as edits refer to it ("Paris")
    surface TEXT NOT NULL,     -- the text put into the template's {value}
    ord     INTEGER NOT NULL   -- line order in the vocabulary file
);
-- Compile work in progress: the template's WKV state S(X) of the pack's heads, fp32, one row per value.
-- Rows are written one transaction per batch; a finished pack has none (finalize deletes them).
CREATE TABLE IF NOT EXISTS staged (
    name     TEXT PRIMARY KEY,
    blob     BLOB NOT NULL,
    raw_size INTEGER NOT NULL,
    checksum TEXT NOT NULL     -- every checksum column: a digest binding the blob to its row (schemas/README.md)
);
-- The shared address v̄_h per head (top right singular vector of the stacked D_X), heads in manifest order.
CREATE TABLE IF NOT EXISTS addresses (
    id       INTEGER PRIMARY KEY CHECK (id = 0),
    blob     BLOB NOT NULL,
    raw_size INTEGER NOT NULL,
    checksum TEXT NOT NULL
);
-- Vocabulary entries: per head w_X,h = D_X,h · v̄_h = σ_X,h u_X,h with D_X = S(X) − mean_Y S(Y).
CREATE TABLE IF NOT EXISTS vocab_entries (
    name     TEXT PRIMARY KEY,
    blob     BLOB NOT NULL,
    raw_size INTEGER NOT NULL,
    checksum TEXT NOT NULL
);
-- Pair entries A→B: per head σ₁ (scalars) and u₁, v₁ of S(B) − S(A) (vectors: H u's, then H v's).
CREATE TABLE IF NOT EXISTS pair_entries (
    a        TEXT NOT NULL,
    b        TEXT NOT NULL,
    blob     BLOB NOT NULL,
    raw_size INTEGER NOT NULL,
    checksum TEXT NOT NULL,
    PRIMARY KEY (a, b)
);
