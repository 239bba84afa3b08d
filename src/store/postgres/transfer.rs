//! [`Transfer`] on PostgreSQL: each part paged out by its key, and written
//! back with `unnest` of one array per column, ids kept; afterwards the
//! identity sequences move past the copied ids.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::Row;

use super::{insert_pairs, PgStore};
use crate::store::copy::*;
use crate::store::newsletter::stored_announcement;
use crate::store::{StoreResult, Transfer};

fn subscriber(r: &PgRow) -> StoreResult<SubscriberRow> {
    Ok(SubscriberRow {
        id: r.try_get("id")?,
        email: r.try_get("email")?,
        email_key: r.try_get("email_key")?,
        name: r.try_get("name")?,
        status: r.try_get("status")?,
        requested_at: r.try_get("requested_at")?,
        requested_ip: r.try_get("requested_ip")?,
        source: r.try_get("source")?,
        confirmed_at: r.try_get("confirmed_at")?,
        consent_note: r.try_get("consent_note")?,
        left_at: r.try_get("left_at")?,
        left_how: r.try_get("left_how")?,
        confirmation_sent_at: r.try_get("confirmation_sent_at")?,
        hard_bounces: i64::from(r.try_get::<i32, _>("hard_bounces")?),
        schedules: r.try_get("schedules")?,
        tags: r.try_get("tags")?,
    })
}

/// One column of a page, as an array to bind.
fn col<T, U>(rows: &[T], f: impl Fn(&T) -> U) -> Vec<U> {
    rows.iter().map(f).collect()
}

#[async_trait::async_trait]
impl Transfer for PgStore {
    async fn is_empty(&self) -> StoreResult<bool> {
        let any: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM subscribers) OR EXISTS (SELECT 1 FROM consent_log)
                 OR EXISTS (SELECT 1 FROM digest_runs)",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(!any)
    }

    async fn export(&self, part: Part, after: Option<PageKey>, limit: usize) -> StoreResult<Rows> {
        let (a, b, text) = after.unwrap_or((i64::MIN, i64::MIN, String::new()));
        let limit = limit as i64;
        let pool = &self.pool;
        Ok(match part {
            Part::Subscribers => {
                let rows = sqlx::query(
                    "SELECT s.*,
                        ARRAY(SELECT schedule FROM subscriber_schedules WHERE subscriber_id = s.id
                              ORDER BY schedule) AS schedules,
                        ARRAY(SELECT tag FROM subscriber_tags WHERE subscriber_id = s.id
                              ORDER BY tag) AS tags
                     FROM subscribers s WHERE s.id > $1 ORDER BY s.id LIMIT $2",
                )
                .bind(a)
                .bind(limit)
                .fetch_all(pool)
                .await?;
                Rows::Subscribers(rows.iter().map(subscriber).collect::<StoreResult<_>>()?)
            }
            Part::ConsentLog => {
                let rows =
                    sqlx::query("SELECT * FROM consent_log WHERE id > $1 ORDER BY id LIMIT $2")
                        .bind(a)
                        .bind(limit)
                        .fetch_all(pool)
                        .await?;
                Rows::ConsentLog(
                    rows.iter()
                        .map(|r| {
                            Ok(ConsentRow {
                                id: r.try_get("id")?,
                                subscriber_id: r.try_get("subscriber_id")?,
                                email_key: r.try_get("email_key")?,
                                event: r.try_get("event")?,
                                at: r.try_get("at")?,
                                ip: r.try_get("ip")?,
                                source: r.try_get("source")?,
                                note: r.try_get("note")?,
                            })
                        })
                        .collect::<StoreResult<_>>()?,
                )
            }
            Part::Schedules => Rows::Schedules(
                sqlx::query_as(
                    "SELECT name, armed_at FROM digest_schedules WHERE name > $1
                     ORDER BY name LIMIT $2",
                )
                .bind(&text)
                .bind(limit)
                .fetch_all(pool)
                .await?,
            ),
            Part::Runs => {
                let rows =
                    sqlx::query("SELECT * FROM digest_runs WHERE id > $1 ORDER BY id LIMIT $2")
                        .bind(a)
                        .bind(limit)
                        .fetch_all(pool)
                        .await?;
                Rows::Runs(
                    rows.iter()
                        .map(|r| {
                            Ok(RunRow {
                                id: r.try_get("id")?,
                                schedule: r.try_get("schedule")?,
                                tick: r.try_get("tick")?,
                                horizon: r.try_get("horizon")?,
                                trigger: r.try_get("trigger")?,
                                nonce: r.try_get("nonce")?,
                                created_at: r.try_get("created_at")?,
                                done: r.try_get::<String, _>("state")? == "done",
                                finished_at: r.try_get("finished_at")?,
                                archive_slug: r.try_get("archive_slug")?,
                            })
                        })
                        .collect::<StoreResult<_>>()?,
                )
            }
            Part::Deliveries => {
                let rows = sqlx::query(
                    "SELECT * FROM digest_deliveries WHERE (run_id, subscriber_id) > ($1, $2)
                     ORDER BY run_id, subscriber_id LIMIT $3",
                )
                .bind(a)
                .bind(b)
                .bind(limit)
                .fetch_all(pool)
                .await?;
                Rows::Deliveries(
                    rows.iter()
                        .map(|r| {
                            Ok(DeliveryRow {
                                run_id: r.try_get("run_id")?,
                                subscriber_id: r.try_get("subscriber_id")?,
                                email: r.try_get("email")?,
                                since: r.try_get("since")?,
                                first: r.try_get("first")?,
                                state: r.try_get("state")?,
                                attempts: i64::from(r.try_get::<i32, _>("attempts")?),
                                next_attempt_at: r.try_get("next_attempt_at")?,
                                reply: r.try_get("reply")?,
                                article_count: r
                                    .try_get::<Option<i32>, _>("article_count")?
                                    .map(i64::from),
                                updated_at: r.try_get("updated_at")?,
                                claimed_by: r.try_get("claimed_by")?,
                                lease_until: r.try_get("lease_until")?,
                            })
                        })
                        .collect::<StoreResult<_>>()?,
                )
            }
            Part::Cursors => {
                let rows: Vec<(i64, String, DateTime<Utc>)> = sqlx::query_as(
                    "SELECT subscriber_id, schedule, through FROM digest_cursors
                     WHERE (subscriber_id, schedule) > ($1, $2)
                     ORDER BY subscriber_id, schedule LIMIT $3",
                )
                .bind(a)
                .bind(&text)
                .bind(limit)
                .fetch_all(pool)
                .await?;
                Rows::Cursors(
                    rows.into_iter()
                        .map(|(subscriber_id, schedule, through)| CursorRow {
                            subscriber_id,
                            schedule,
                            through,
                        })
                        .collect(),
                )
            }
            Part::FirstSeen => {
                let rows: Vec<(String, String, String, DateTime<Utc>)> = sqlx::query_as(
                    "SELECT article_id, url, slug, first_seen FROM articles_seen
                     WHERE article_id > $1 ORDER BY article_id LIMIT $2",
                )
                .bind(&text)
                .bind(limit)
                .fetch_all(pool)
                .await?;
                Rows::FirstSeen(
                    rows.into_iter()
                        .map(|(article_id, url, slug, first_seen)| SeenRow {
                            article_id,
                            url,
                            slug,
                            first_seen,
                        })
                        .collect(),
                )
            }
            Part::Undated => {
                let rows: Vec<(String, DateTime<Utc>)> = sqlx::query_as(
                    "SELECT source, assigned FROM undated_articles WHERE source > $1
                     ORDER BY source LIMIT $2",
                )
                .bind(&text)
                .bind(limit)
                .fetch_all(pool)
                .await?;
                Rows::Undated(
                    rows.into_iter()
                        .map(|(s, t)| (s, t.fixed_offset()))
                        .collect(),
                )
            }
            Part::State => Rows::State(
                sqlx::query_as(
                    "SELECT key, value FROM herald_state WHERE key > $1 ORDER BY key LIMIT $2",
                )
                .bind(&text)
                .bind(limit)
                .fetch_all(pool)
                .await?,
            ),
            Part::Feedback => Rows::Feedback(
                sqlx::query_as(
                    "SELECT source, event_id, at FROM feedback_events
                     WHERE (source || chr(1) || event_id) COLLATE \"C\" > $1
                     ORDER BY (source || chr(1) || event_id) COLLATE \"C\" LIMIT $2",
                )
                .bind(&text)
                .bind(limit)
                .fetch_all(pool)
                .await?,
            ),
            Part::Suppressions => Rows::Suppressions(
                sqlx::query_as(
                    "SELECT email_hash, reason, at FROM suppressions WHERE email_hash > $1
                     ORDER BY email_hash LIMIT $2",
                )
                .bind(&text)
                .bind(limit)
                .fetch_all(pool)
                .await?,
            ),
            Part::Announcements => {
                let rows: Vec<(i64, String, String, String, String, bool)> = sqlx::query_as(
                    "SELECT run_id, audience, subject, html, text, archive FROM announcements
                     WHERE run_id > $1 ORDER BY run_id LIMIT $2",
                )
                .bind(a)
                .bind(limit)
                .fetch_all(pool)
                .await?;
                Rows::Announcements(
                    rows.into_iter()
                        .map(|(id, au, su, h, t, ar)| {
                            Ok((id, stored_announcement((au, su, h, t, ar))?))
                        })
                        .collect::<StoreResult<_>>()?,
                )
            }
            Part::Archive => {
                let rows = sqlx::query(
                    "SELECT * FROM archive_issues WHERE run_id > $1 ORDER BY run_id LIMIT $2",
                )
                .bind(a)
                .bind(limit)
                .fetch_all(pool)
                .await?;
                Rows::Archive(
                    rows.iter()
                        .map(super::newsletter::issue)
                        .collect::<StoreResult<_>>()?,
                )
            }
        })
    }

    async fn import_rows(&self, rows: &Rows) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        match rows {
            Rows::Subscribers(rs) => {
                sqlx::query(
                    "INSERT INTO subscribers (id, email, email_key, name, status, requested_at,
                        requested_ip, source, confirmed_at, consent_note, left_at, left_how,
                        confirmation_sent_at, hard_bounces)
                     SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[],
                        $5::text[], $6::timestamptz[], $7::text[], $8::text[], $9::timestamptz[],
                        $10::text[], $11::timestamptz[], $12::text[], $13::timestamptz[],
                        $14::int[])",
                )
                .bind(col(rs, |s| s.id))
                .bind(col(rs, |s| s.email.clone()))
                .bind(col(rs, |s| s.email_key.clone()))
                .bind(col(rs, |s| s.name.clone()))
                .bind(col(rs, |s| s.status.clone()))
                .bind(col(rs, |s| s.requested_at))
                .bind(col(rs, |s| s.requested_ip.clone()))
                .bind(col(rs, |s| s.source.clone()))
                .bind(col(rs, |s| s.confirmed_at))
                .bind(col(rs, |s| s.consent_note.clone()))
                .bind(col(rs, |s| s.left_at))
                .bind(col(rs, |s| s.left_how.clone()))
                .bind(col(rs, |s| s.confirmation_sent_at))
                .bind(col(rs, |s| s.hard_bounces as i32))
                .execute(&mut *tx)
                .await?;
                let schedules: Vec<(i64, &String)> = rs
                    .iter()
                    .flat_map(|s| s.schedules.iter().map(|x| (s.id, x)))
                    .collect();
                let tags: Vec<(i64, &String)> = rs
                    .iter()
                    .flat_map(|s| s.tags.iter().map(|x| (s.id, x)))
                    .collect();
                insert_pairs(&mut tx, "subscriber_schedules", "schedule", &schedules).await?;
                insert_pairs(&mut tx, "subscriber_tags", "tag", &tags).await?;
            }
            Rows::ConsentLog(rs) => {
                sqlx::query(
                    "INSERT INTO consent_log (id, subscriber_id, email_key, event, at, ip, source, note)
                     SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[],
                        $5::timestamptz[], $6::text[], $7::text[], $8::text[])",
                )
                .bind(col(rs, |c| c.id))
                .bind(col(rs, |c| c.subscriber_id))
                .bind(col(rs, |c| c.email_key.clone()))
                .bind(col(rs, |c| c.event.clone()))
                .bind(col(rs, |c| c.at))
                .bind(col(rs, |c| c.ip.clone()))
                .bind(col(rs, |c| c.source.clone()))
                .bind(col(rs, |c| c.note.clone()))
                .execute(&mut *tx)
                .await?;
            }
            Rows::Schedules(rs) => {
                sqlx::query(
                    "INSERT INTO digest_schedules (name, armed_at)
                     SELECT * FROM unnest($1::text[], $2::timestamptz[])",
                )
                .bind(col(rs, |r| r.0.clone()))
                .bind(col(rs, |r| r.1))
                .execute(&mut *tx)
                .await?;
            }
            Rows::Runs(rs) => {
                sqlx::query(
                    "INSERT INTO digest_runs (id, schedule, tick, horizon, trigger, nonce,
                        created_at, state, finished_at, archive_slug)
                     SELECT * FROM unnest($1::bigint[], $2::text[], $3::timestamptz[],
                        $4::timestamptz[], $5::text[], $6::text[], $7::timestamptz[], $8::text[],
                        $9::timestamptz[], $10::text[])",
                )
                .bind(col(rs, |r| r.id))
                .bind(col(rs, |r| r.schedule.clone()))
                .bind(col(rs, |r| r.tick))
                .bind(col(rs, |r| r.horizon))
                .bind(col(rs, |r| r.trigger.clone()))
                .bind(col(rs, |r| r.nonce.clone()))
                .bind(col(rs, |r| r.created_at))
                .bind(col(rs, |r| if r.done { "done" } else { "sending" }))
                .bind(col(rs, |r| r.finished_at))
                .bind(col(rs, |r| r.archive_slug.clone()))
                .execute(&mut *tx)
                .await?;
            }
            Rows::Deliveries(rs) => {
                sqlx::query(
                    "INSERT INTO digest_deliveries (run_id, subscriber_id, email, since, first,
                        state, attempts, next_attempt_at, reply, article_count, updated_at,
                        claimed_by, lease_until)
                     SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[],
                        $4::timestamptz[], $5::boolean[], $6::text[], $7::int[],
                        $8::timestamptz[], $9::text[], $10::int[], $11::timestamptz[],
                        $12::text[], $13::timestamptz[])",
                )
                .bind(col(rs, |d| d.run_id))
                .bind(col(rs, |d| d.subscriber_id))
                .bind(col(rs, |d| d.email.clone()))
                .bind(col(rs, |d| d.since))
                .bind(col(rs, |d| d.first))
                .bind(col(rs, |d| d.state.clone()))
                .bind(col(rs, |d| d.attempts as i32))
                .bind(col(rs, |d| d.next_attempt_at))
                .bind(col(rs, |d| d.reply.clone()))
                .bind(col(rs, |d| d.article_count.map(|c| c as i32)))
                .bind(col(rs, |d| d.updated_at))
                .bind(col(rs, |d| d.claimed_by.clone()))
                .bind(col(rs, |d| d.lease_until))
                .execute(&mut *tx)
                .await?;
            }
            Rows::Cursors(rs) => {
                sqlx::query(
                    "INSERT INTO digest_cursors (subscriber_id, schedule, through)
                     SELECT * FROM unnest($1::bigint[], $2::text[], $3::timestamptz[])",
                )
                .bind(col(rs, |c| c.subscriber_id))
                .bind(col(rs, |c| c.schedule.clone()))
                .bind(col(rs, |c| c.through))
                .execute(&mut *tx)
                .await?;
            }
            Rows::FirstSeen(rs) => {
                sqlx::query(
                    "INSERT INTO articles_seen (article_id, url, slug, first_seen)
                     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])",
                )
                .bind(col(rs, |r| r.article_id.clone()))
                .bind(col(rs, |r| r.url.clone()))
                .bind(col(rs, |r| r.slug.clone()))
                .bind(col(rs, |r| r.first_seen))
                .execute(&mut *tx)
                .await?;
            }
            Rows::Undated(rs) => {
                sqlx::query(
                    "INSERT INTO undated_articles (source, assigned)
                     SELECT * FROM unnest($1::text[], $2::timestamptz[])",
                )
                .bind(col(rs, |r| r.0.clone()))
                .bind(col(rs, |r| r.1.to_utc()))
                .execute(&mut *tx)
                .await?;
            }
            Rows::State(rs) => {
                sqlx::query(
                    "INSERT INTO herald_state (key, value)
                     SELECT * FROM unnest($1::text[], $2::text[])
                     ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                )
                .bind(col(rs, |r| r.0.clone()))
                .bind(col(rs, |r| r.1.clone()))
                .execute(&mut *tx)
                .await?;
            }
            Rows::Feedback(rs) | Rows::Suppressions(rs) => {
                let sql = if matches!(rows, Rows::Feedback(_)) {
                    "INSERT INTO feedback_events (source, event_id, at)
                     SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[])"
                } else {
                    "INSERT INTO suppressions (email_hash, reason, at)
                     SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[])"
                };
                sqlx::query(sql)
                    .bind(col(rs, |r| r.0.clone()))
                    .bind(col(rs, |r| r.1.clone()))
                    .bind(col(rs, |r| r.2))
                    .execute(&mut *tx)
                    .await?;
            }
            Rows::Announcements(rs) => {
                sqlx::query(
                    "INSERT INTO announcements (run_id, audience, subject, html, text, archive)
                     SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[],
                        $5::text[], $6::boolean[])",
                )
                .bind(col(rs, |r| r.0))
                .bind(col(rs, |r| r.1.audience.to_string()))
                .bind(col(rs, |r| r.1.subject.clone()))
                .bind(col(rs, |r| r.1.html.clone()))
                .bind(col(rs, |r| r.1.text.clone()))
                .bind(col(rs, |r| r.1.archive))
                .execute(&mut *tx)
                .await?;
            }
            Rows::Archive(rs) => {
                sqlx::query(
                    "INSERT INTO archive_issues (run_id, schedule, slug, subject, published_at,
                        html, summary)
                     SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[],
                        $5::timestamptz[], $6::text[], $7::text[])",
                )
                .bind(col(rs, |i| i.run_id))
                .bind(col(rs, |i| i.schedule.clone()))
                .bind(col(rs, |i| i.slug.clone()))
                .bind(col(rs, |i| i.subject.clone()))
                .bind(col(rs, |i| i.published_at))
                .bind(col(rs, |i| i.html.clone()))
                .bind(col(rs, |i| i.summary.clone()))
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn finish_import(&self) -> StoreResult<()> {
        for table in ["subscribers", "consent_log", "digest_runs"] {
            sqlx::query(&format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'),
                               GREATEST((SELECT max(id) FROM {table}), 0) + 1, false)"
            ))
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }
}
