-- What replicas share beside the ledger, and leases on claimed deliveries
-- (the same schema as migrations/postgres, so `herald db copy` moves it).

-- Articles first seen up to this time are in the run (NULL for runs made
-- before this migration: their tick).
ALTER TABLE digest_runs ADD COLUMN horizon TEXT;

-- Who took a `sending` delivery and until when: when the lease runs out
-- with the row still `sending`, its sender is gone and it is `uncertain`.
ALTER TABLE digest_deliveries ADD COLUMN claimed_by TEXT;
ALTER TABLE digest_deliveries ADD COLUMN lease_until TEXT;

CREATE INDEX digest_deliveries_leases ON digest_deliveries (state, lease_until);

-- When herald first published each article (its first-seen time), by the
-- article's id, with the URL and slug that also identify it after a move.
-- Digests carry what was first seen since a subscriber's last digest.
CREATE TABLE articles_seen (
    article_id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    slug TEXT NOT NULL,
    first_seen TEXT NOT NULL
) WITHOUT ROWID;

CREATE INDEX articles_seen_url ON articles_seen (url);
CREATE INDEX articles_seen_slug ON articles_seen (slug);

-- Dates herald gave to articles that carry none, by source path (was
-- data_dir/first-seen.json).
CREATE TABLE undated_articles (
    source TEXT PRIMARY KEY,
    assigned TEXT NOT NULL
) WITHOUT ROWID;

-- Small named values: when the first-seen record adopted the site, the
-- next free slot of the shared send rate, the signing secret (PostgreSQL).
CREATE TABLE herald_state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
