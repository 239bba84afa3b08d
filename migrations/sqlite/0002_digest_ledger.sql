-- The digest ledger: every run of a digest schedule and every delivery in
-- it, so that a run is never started twice, no recipient is forgotten
-- across crashes, and each failure keeps the SMTP reply that caused it.
-- Times are fixed-width RFC 3339 text, as in 0001.

-- Hard bounces since the subscriber last confirmed; at `mail.bounce_limit`
-- the subscriber becomes `bounced`.
ALTER TABLE subscribers ADD COLUMN hard_bounces INTEGER NOT NULL DEFAULT 0;

-- When a daemon first ran each schedule: catching up on missed ticks never
-- reaches back before it.
CREATE TABLE digest_schedules (
    name TEXT PRIMARY KEY,
    armed_at TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE digest_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    schedule TEXT NOT NULL,
    -- The cron instant the run is for (or the moment of a manual send).
    tick TEXT NOT NULL,
    trigger TEXT NOT NULL CHECK (trigger IN ('schedule', 'catch-up', 'manual')),
    -- Random, in every Message-ID of the run: a re-sent message keeps the
    -- Message-ID of the first attempt, and outsiders cannot guess them.
    nonce TEXT NOT NULL,
    created_at TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('sending', 'done')),
    finished_at TEXT,
    -- One run per schedule and tick, whoever tries to start it.
    UNIQUE (schedule, tick)
);

CREATE INDEX digest_runs_unfinished ON digest_runs (state, id);

-- One row per recipient of a run, written with the run in one transaction.
-- pending -> sending -> sent | failed | bounced | skipped, and back to
-- pending for a retry; `sending` found at start-up (the process died
-- mid-send) becomes `uncertain`. No foreign keys: like the consent log,
-- deliveries outlive purged sign-ups.
CREATE TABLE digest_deliveries (
    run_id INTEGER NOT NULL,
    subscriber_id INTEGER NOT NULL,
    -- The address it went to.
    email TEXT NOT NULL,
    -- Articles published after this time are new to the subscriber.
    since TEXT NOT NULL,
    -- Their first digest of this schedule (may carry older articles).
    first INTEGER NOT NULL CHECK (first IN (0, 1)),
    state TEXT NOT NULL CHECK (state IN (
        'pending', 'sending', 'sent', 'failed', 'bounced', 'uncertain', 'skipped'
    )),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    -- The SMTP reply of the last failed attempt, or why it was skipped.
    reply TEXT,
    article_count INTEGER,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (run_id, subscriber_id)
) WITHOUT ROWID;

CREATE INDEX digest_deliveries_by_state ON digest_deliveries (run_id, state, next_attempt_at);

-- What each subscriber has received of each schedule: articles published
-- up to `through` (the tick of the last digest sent to them).
CREATE TABLE digest_cursors (
    subscriber_id INTEGER NOT NULL,
    schedule TEXT NOT NULL,
    through TEXT NOT NULL,
    PRIMARY KEY (subscriber_id, schedule)
) WITHOUT ROWID;
