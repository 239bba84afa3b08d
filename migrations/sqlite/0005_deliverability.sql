-- Deliverability and the newsletter around the digest: late bounces and
-- complaints (a new status, `complained`), announcements (a new kind of
-- run), the web archive, erasure on request (GDPR Art. 17) and the expiry
-- of client IPs in consent records.
--
-- SQLite cannot change a CHECK constraint in place, so `subscribers`,
-- `consent_log` and `digest_runs` are rebuilt (SQLite's documented
-- procedure). Migrations run in one transaction with foreign keys on: the
-- DROP of `subscribers` empties its child tables by cascade, so their rows
-- are kept aside first and put back after. AUTOINCREMENT counters are
-- carried over, so no id is ever reused.

CREATE TEMP TABLE keep_schedules AS SELECT subscriber_id, schedule FROM subscriber_schedules;
CREATE TEMP TABLE keep_tags AS SELECT subscriber_id, tag FROM subscriber_tags;
CREATE TEMP TABLE keep_seq AS
    SELECT name, seq FROM sqlite_sequence
    WHERE name IN ('subscribers', 'consent_log', 'digest_runs');

CREATE TABLE subscribers_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    email TEXT NOT NULL,
    email_key TEXT NOT NULL,
    name TEXT,
    -- complained: reported a digest as spam; never mailed again, and a
    -- sign-up or import of the address is refused.
    status TEXT NOT NULL
        CHECK (status IN ('pending', 'active', 'unsubscribed', 'bounced', 'complained')),
    requested_at TEXT NOT NULL,
    requested_ip TEXT,
    source TEXT NOT NULL CHECK (source <> ''),
    confirmed_at TEXT,
    consent_note TEXT,
    left_at TEXT,
    left_how TEXT,
    confirmation_sent_at TEXT,
    hard_bounces INTEGER NOT NULL DEFAULT 0,
    CHECK (status <> 'active' OR confirmed_at IS NOT NULL),
    CHECK (status <> 'pending' OR confirmed_at IS NULL),
    CHECK ((left_at IS NULL) = (status IN ('pending', 'active')))
);

INSERT INTO subscribers_new
    (id, email, email_key, name, status, requested_at, requested_ip, source, confirmed_at,
     consent_note, left_at, left_how, confirmation_sent_at, hard_bounces)
SELECT id, email, email_key, name, status, requested_at, requested_ip, source, confirmed_at,
       consent_note, left_at, left_how, confirmation_sent_at, hard_bounces
FROM subscribers;

DROP TABLE subscribers;
ALTER TABLE subscribers_new RENAME TO subscribers;
CREATE UNIQUE INDEX subscribers_email_key ON subscribers (email_key);
CREATE INDEX subscribers_status ON subscribers (status, requested_at);

-- Only unconfirmed sign-ups may be deleted (the purge), and a person who
-- asked to be erased (left_how 'erasure', set in the same transaction).
CREATE TRIGGER subscribers_keep_consented
BEFORE DELETE ON subscribers
WHEN OLD.status <> 'pending' AND OLD.left_how IS NOT 'erasure'
BEGIN
    SELECT RAISE(ABORT, 'only pending subscribers may be deleted');
END;

INSERT OR IGNORE INTO subscriber_schedules (subscriber_id, schedule)
    SELECT subscriber_id, schedule FROM keep_schedules;
INSERT OR IGNORE INTO subscriber_tags (subscriber_id, tag)
    SELECT subscriber_id, tag FROM keep_tags;

CREATE TABLE consent_log_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    subscriber_id INTEGER,
    -- The address lower-cased, or `erased:<sha-256>` once the person
    -- asked to be erased.
    email_key TEXT NOT NULL,
    event TEXT NOT NULL CHECK (event IN (
        'subscribe', 'confirm', 'unsubscribe', 'bounce', 'operator-removal',
        'purge', 'restore', 'complaint', 'erasure'
    )),
    at TEXT NOT NULL,
    ip TEXT,
    source TEXT,
    note TEXT
);

INSERT INTO consent_log_new (id, subscriber_id, email_key, event, at, ip, source, note)
SELECT id, subscriber_id, email_key, event, at, ip, source, note FROM consent_log;

DROP TABLE consent_log;
ALTER TABLE consent_log_new RENAME TO consent_log;
CREATE INDEX consent_log_by_email ON consent_log (email_key, id);
CREATE INDEX consent_log_ips ON consent_log (at) WHERE ip IS NOT NULL;

-- Append-only, with two exceptions that only take away: a client IP is
-- cleared once `subscribers.ip_retention` has passed, and an erasure
-- replaces the address with its hash and drops the note.
CREATE TRIGGER consent_log_no_update
BEFORE UPDATE ON consent_log
WHEN NOT (
    NEW.id = OLD.id AND NEW.event = OLD.event AND NEW.at = OLD.at
    AND NEW.subscriber_id IS OLD.subscriber_id AND NEW.ip IS NULL
    AND ((NEW.email_key = OLD.email_key AND NEW.source IS OLD.source AND NEW.note IS OLD.note)
         OR (NEW.email_key LIKE 'erased:%' AND NEW.note IS NULL AND NEW.source IS OLD.source))
)
BEGIN
    SELECT RAISE(ABORT, 'consent_log is append-only');
END;

CREATE TRIGGER consent_log_no_delete
BEFORE DELETE ON consent_log
BEGIN
    SELECT RAISE(ABORT, 'consent_log is append-only');
END;

CREATE TABLE digest_runs_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    -- A `[[digest]]` schedule, or `announcements`.
    schedule TEXT NOT NULL,
    tick TEXT NOT NULL,
    trigger TEXT NOT NULL
        CHECK (trigger IN ('schedule', 'catch-up', 'manual', 'announcement')),
    nonce TEXT NOT NULL,
    created_at TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('sending', 'done')),
    finished_at TEXT,
    horizon TEXT,
    -- The run's page in the web archive (`/archive/<schedule>/<slug>/`),
    -- given before its first message goes out: the messages link to it.
    archive_slug TEXT,
    UNIQUE (schedule, tick)
);

INSERT INTO digest_runs_new
    (id, schedule, tick, trigger, nonce, created_at, state, finished_at, horizon)
SELECT id, schedule, tick, trigger, nonce, created_at, state, finished_at, horizon
FROM digest_runs;

DROP TABLE digest_runs;
ALTER TABLE digest_runs_new RENAME TO digest_runs;
CREATE INDEX digest_runs_unfinished ON digest_runs (state, id);
CREATE UNIQUE INDEX digest_runs_archive ON digest_runs (schedule, archive_slug);

INSERT INTO sqlite_sequence (name, seq)
    SELECT name, seq FROM keep_seq k
    WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence s WHERE s.name = k.name);
UPDATE sqlite_sequence
    SET seq = max(seq, (SELECT k.seq FROM keep_seq k WHERE k.name = sqlite_sequence.name))
    WHERE name IN (SELECT name FROM keep_seq);

DROP TABLE keep_schedules;
DROP TABLE keep_tags;
DROP TABLE keep_seq;

-- Provider events and reports already applied, so that a webhook
-- delivered twice, or a DSN ingested again, changes nothing the second
-- time.
CREATE TABLE feedback_events (
    source TEXT NOT NULL,
    event_id TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (source, event_id)
) WITHOUT ROWID;

-- Erased addresses (GDPR Art. 17), as SHA-256 hashes only: a sign-up or
-- an import of the same address is refused.
CREATE TABLE suppressions (
    email_hash TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    at TEXT NOT NULL
) WITHOUT ROWID;

-- The message of an announcement run, kept so that any process can send
-- it (and send it again after a crash) exactly like a digest.
CREATE TABLE announcements (
    run_id INTEGER PRIMARY KEY,
    -- all, schedule:NAME or tag:NAME
    audience TEXT NOT NULL,
    subject TEXT NOT NULL,
    html TEXT NOT NULL,
    text TEXT NOT NULL,
    archive INTEGER NOT NULL CHECK (archive IN (0, 1))
);

-- The web archive: one page per run that sent anything, without any
-- subscriber's links.
CREATE TABLE archive_issues (
    run_id INTEGER PRIMARY KEY,
    schedule TEXT NOT NULL,
    slug TEXT NOT NULL,
    subject TEXT NOT NULL,
    published_at TEXT NOT NULL,
    html TEXT NOT NULL,
    summary TEXT NOT NULL,
    UNIQUE (schedule, slug)
);

CREATE INDEX archive_issues_recent ON archive_issues (published_at);
