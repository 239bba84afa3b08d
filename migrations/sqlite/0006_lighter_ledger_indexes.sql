-- Fewer index entries to move while a digest run is sent (issue 15).
--
-- Every delivery changes state twice (pending -> sending -> sent), and
-- each change moved an entry in three indexes that all begin with
-- `state`. `digest_deliveries_by_state` (run_id, state, next_attempt_at)
-- is covered by `digest_deliveries_claim` (run_id, state, subscriber_id,
-- next_attempt_at), which serves the same lookups by run and state, so it
-- goes. The lease index only ever serves `state = 'sending'`, so it now
-- holds those rows alone: a row enters it when claimed and leaves it when
-- settled. Measured on a run to 10,000 subscribers: the SQLite writes per
-- claim and settle shrank and herald's CPU per message with them (see the
-- closing note of issue 15).
DROP INDEX digest_deliveries_by_state;
DROP INDEX digest_deliveries_leases;
CREATE INDEX digest_deliveries_sending
    ON digest_deliveries (lease_until) WHERE state = 'sending';
