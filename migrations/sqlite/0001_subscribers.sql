-- Subscribers, what they receive, and the consent log.
--
-- Times are TEXT in one fixed-width RFC 3339 form
-- (`2024-05-01T10:00:00.000000000Z`), so that comparing them as text
-- compares them as times, and the file stays readable with the sqlite3 shell.

-- AUTOINCREMENT: ids are never reused after a purge, so a signed link or a
-- log entry naming an old id can never reach somebody else.
CREATE TABLE subscribers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    -- As normalized by SubscriberEmail (domain lower-cased).
    email TEXT NOT NULL,
    -- The whole address lower-cased by the application (SQLite's lower()
    -- only knows ASCII); uniqueness is decided on it.
    email_key TEXT NOT NULL,
    name TEXT,
    status TEXT NOT NULL
        CHECK (status IN ('pending', 'active', 'unsubscribed', 'bounced')),
    -- The current consent: when, from where and how they asked, when they
    -- confirmed, when and how they left. Earlier rounds are in consent_log.
    requested_at TEXT NOT NULL,
    requested_ip TEXT,
    source TEXT NOT NULL CHECK (source <> ''),
    confirmed_at TEXT,
    consent_note TEXT,
    left_at TEXT,
    left_how TEXT,
    confirmation_sent_at TEXT,
    CHECK (status <> 'active' OR confirmed_at IS NOT NULL),
    CHECK (status <> 'pending' OR confirmed_at IS NULL),
    CHECK ((left_at IS NULL) = (status IN ('pending', 'active')))
);

CREATE UNIQUE INDEX subscribers_email_key ON subscribers (email_key);
CREATE INDEX subscribers_status ON subscribers (status, requested_at);

-- Only unconfirmed sign-ups may ever be deleted (the purge); everybody else
-- is kept, with the record of how they left.
CREATE TRIGGER subscribers_keep_consented
BEFORE DELETE ON subscribers
WHEN OLD.status <> 'pending'
BEGIN
    SELECT RAISE(ABORT, 'only pending subscribers may be deleted');
END;

-- One row per (subscriber, schedule) rather than a JSON column: the digest
-- selects "active subscribers of schedule X" through the index below, and
-- the same tables work unchanged in PostgreSQL.
CREATE TABLE subscriber_schedules (
    subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    schedule TEXT NOT NULL CHECK (length(schedule) BETWEEN 1 AND 100),
    PRIMARY KEY (subscriber_id, schedule)
) WITHOUT ROWID;

CREATE INDEX subscriber_schedules_by_schedule ON subscriber_schedules (schedule, subscriber_id);

CREATE TABLE subscriber_tags (
    subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    tag TEXT NOT NULL CHECK (length(tag) BETWEEN 1 AND 100),
    PRIMARY KEY (subscriber_id, tag)
) WITHOUT ROWID;

-- Append-only history of consent: every subscription request,
-- confirmation, unsubscription, bounce, operator removal, import and purge.
-- No foreign key: entries outlive the purged sign-ups they describe.
CREATE TABLE consent_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    subscriber_id INTEGER,
    -- The address lower-cased (the subscribers' email_key): the history of
    -- one address, purged sign-ups included, is one index lookup.
    email_key TEXT NOT NULL,
    event TEXT NOT NULL CHECK (event IN (
        'subscribe', 'confirm', 'unsubscribe', 'bounce', 'operator-removal',
        'purge', 'restore'
    )),
    at TEXT NOT NULL,
    ip TEXT,
    -- web-form, cli, import, one-click, operator, ...
    source TEXT,
    note TEXT
);

CREATE INDEX consent_log_by_email ON consent_log (email_key, id);

CREATE TRIGGER consent_log_no_update
BEFORE UPDATE ON consent_log
BEGIN
    SELECT RAISE(ABORT, 'consent_log is append-only');
END;

CREATE TRIGGER consent_log_no_delete
BEFORE DELETE ON consent_log
BEGIN
    SELECT RAISE(ABORT, 'consent_log is append-only');
END;
