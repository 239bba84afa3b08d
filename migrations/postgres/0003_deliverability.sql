-- Deliverability and the newsletter around the digest (as
-- migrations/sqlite/0005): the status `complained`, the consent events
-- `complaint` and `erasure`, announcement runs, the web archive, erasure
-- on request (GDPR Art. 17) and the expiry of client IPs.

ALTER TABLE subscribers DROP CONSTRAINT subscribers_status_check;
ALTER TABLE subscribers ADD CONSTRAINT subscribers_status_check
    CHECK (status IN ('pending', 'active', 'unsubscribed', 'bounced', 'complained'));

-- Only unconfirmed sign-ups may be deleted (the purge), and a person who
-- asked to be erased (left_how 'erasure', set in the same transaction).
CREATE OR REPLACE FUNCTION herald_keep_consented() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status <> 'pending' AND OLD.left_how IS DISTINCT FROM 'erasure' THEN
        RAISE EXCEPTION 'only pending subscribers may be deleted';
    END IF;
    RETURN OLD;
END $$;

ALTER TABLE consent_log DROP CONSTRAINT consent_log_event_check;
ALTER TABLE consent_log ADD CONSTRAINT consent_log_event_check CHECK (event IN (
    'subscribe', 'confirm', 'unsubscribe', 'bounce', 'operator-removal',
    'purge', 'restore', 'complaint', 'erasure'
));

CREATE INDEX consent_log_ips ON consent_log (at) WHERE ip IS NOT NULL;

-- Append-only, with two exceptions that only take away: a client IP is
-- cleared once `subscribers.ip_retention` has passed, and an erasure
-- replaces the address with its hash and drops the note.
CREATE FUNCTION herald_consent_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id = OLD.id AND NEW.event = OLD.event AND NEW.at = OLD.at
       AND NEW.subscriber_id IS NOT DISTINCT FROM OLD.subscriber_id AND NEW.ip IS NULL
       AND NEW.source IS NOT DISTINCT FROM OLD.source
       AND ((NEW.email_key = OLD.email_key AND NEW.note IS NOT DISTINCT FROM OLD.note)
            OR (NEW.email_key LIKE 'erased:%' AND NEW.note IS NULL)) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'consent_log is append-only';
END $$;

DROP TRIGGER consent_log_no_change ON consent_log;
CREATE TRIGGER consent_log_no_update BEFORE UPDATE ON consent_log
    FOR EACH ROW EXECUTE FUNCTION herald_consent_update();
CREATE TRIGGER consent_log_no_delete BEFORE DELETE ON consent_log
    FOR EACH ROW EXECUTE FUNCTION herald_append_only();

ALTER TABLE digest_runs DROP CONSTRAINT digest_runs_trigger_check;
ALTER TABLE digest_runs ADD CONSTRAINT digest_runs_trigger_check
    CHECK (trigger IN ('schedule', 'catch-up', 'manual', 'announcement'));
-- The run's page in the web archive (`/archive/<schedule>/<slug>/`),
-- given before its first message goes out: the messages link to it.
ALTER TABLE digest_runs ADD COLUMN archive_slug TEXT;
CREATE UNIQUE INDEX digest_runs_archive ON digest_runs (schedule, archive_slug);

-- Provider events and reports already applied: a webhook delivered
-- twice, or a DSN ingested again, changes nothing the second time.
CREATE TABLE feedback_events (
    source TEXT NOT NULL,
    event_id TEXT NOT NULL,
    at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (source, event_id)
);

-- Erased addresses, as SHA-256 hashes only.
CREATE TABLE suppressions (
    email_hash TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    at TIMESTAMPTZ NOT NULL
);

CREATE TABLE announcements (
    run_id BIGINT PRIMARY KEY,
    audience TEXT NOT NULL,
    subject TEXT NOT NULL,
    html TEXT NOT NULL,
    text TEXT NOT NULL,
    archive BOOLEAN NOT NULL
);

CREATE TABLE archive_issues (
    run_id BIGINT PRIMARY KEY,
    schedule TEXT NOT NULL,
    slug TEXT NOT NULL,
    subject TEXT NOT NULL,
    published_at TIMESTAMPTZ NOT NULL,
    html TEXT NOT NULL,
    summary TEXT NOT NULL,
    UNIQUE (schedule, slug)
);

CREATE INDEX archive_issues_recent ON archive_issues (published_at);
