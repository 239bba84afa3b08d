//! [`Transfer`] on SQLite: each part paged out by its key, and written
//! back as one JSON array per page (`json_each`), ids kept.

use serde_json::{json, Value};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::bulk::insert_pairs;
use super::{format_time, parse_opt_time, parse_time, SqliteStore};
use crate::store::copy::*;
use crate::store::newsletter::stored_announcement;
use crate::store::{StoreResult, Transfer};

fn opt_time(t: &Option<chrono::DateTime<chrono::Utc>>) -> Value {
    t.map_or(Value::Null, |t| Value::String(format_time(t)))
}

fn subscriber(r: &SqliteRow) -> StoreResult<SubscriberRow> {
    let list = |c: &str| -> StoreResult<Vec<String>> {
        let mut v: Vec<String> = serde_json::from_str(&r.try_get::<String, _>(c)?)?;
        v.sort();
        Ok(v)
    };
    Ok(SubscriberRow {
        id: r.try_get("id")?,
        email: r.try_get("email")?,
        email_key: r.try_get("email_key")?,
        name: r.try_get("name")?,
        status: r.try_get("status")?,
        requested_at: parse_time(r.try_get("requested_at")?)?,
        requested_ip: r.try_get("requested_ip")?,
        source: r.try_get("source")?,
        confirmed_at: parse_opt_time(r.try_get("confirmed_at")?)?,
        consent_note: r.try_get("consent_note")?,
        left_at: parse_opt_time(r.try_get("left_at")?)?,
        left_how: r.try_get("left_how")?,
        confirmation_sent_at: parse_opt_time(r.try_get("confirmation_sent_at")?)?,
        hard_bounces: r.try_get("hard_bounces")?,
        schedules: list("schedules")?,
        tags: list("tags")?,
    })
}

#[async_trait::async_trait]
impl Transfer for SqliteStore {
    async fn is_empty(&self) -> StoreResult<bool> {
        let any: i64 = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM subscribers) OR EXISTS (SELECT 1 FROM consent_log)
                 OR EXISTS (SELECT 1 FROM digest_runs)",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(any == 0)
    }

    async fn export(&self, part: Part, after: Option<PageKey>, limit: usize) -> StoreResult<Rows> {
        let (a, b, text) = after.unwrap_or((i64::MIN, i64::MIN, String::new()));
        let limit = limit as i64;
        let pool = &self.pool;
        Ok(match part {
            Part::Subscribers => {
                let rows = sqlx::query(
                    "SELECT s.*,
                        (SELECT json_group_array(schedule) FROM subscriber_schedules
                         WHERE subscriber_id = s.id) AS schedules,
                        (SELECT json_group_array(tag) FROM subscriber_tags
                         WHERE subscriber_id = s.id) AS tags
                     FROM subscribers s WHERE s.id > ? ORDER BY s.id LIMIT ?",
                )
                .bind(a)
                .bind(limit)
                .fetch_all(pool)
                .await?;
                Rows::Subscribers(rows.iter().map(subscriber).collect::<StoreResult<_>>()?)
            }
            Part::ConsentLog => {
                let rows =
                    sqlx::query("SELECT * FROM consent_log WHERE id > ? ORDER BY id LIMIT ?")
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
                                at: parse_time(r.try_get("at")?)?,
                                ip: r.try_get("ip")?,
                                source: r.try_get("source")?,
                                note: r.try_get("note")?,
                            })
                        })
                        .collect::<StoreResult<_>>()?,
                )
            }
            Part::Schedules => {
                let rows: Vec<(String, String)> = sqlx::query_as(
                    "SELECT name, armed_at FROM digest_schedules WHERE name > ? ORDER BY name LIMIT ?",
                )
                .bind(&text)
                .bind(limit)
                .fetch_all(pool)
                .await?;
                Rows::Schedules(
                    rows.into_iter()
                        .map(|(n, t)| Ok((n, parse_time(t)?)))
                        .collect::<StoreResult<_>>()?,
                )
            }
            Part::Runs => {
                let rows =
                    sqlx::query("SELECT * FROM digest_runs WHERE id > ? ORDER BY id LIMIT ?")
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
                                tick: parse_time(r.try_get("tick")?)?,
                                horizon: parse_opt_time(r.try_get("horizon")?)?,
                                trigger: r.try_get("trigger")?,
                                nonce: r.try_get("nonce")?,
                                created_at: parse_time(r.try_get("created_at")?)?,
                                done: r.try_get::<String, _>("state")? == "done",
                                finished_at: parse_opt_time(r.try_get("finished_at")?)?,
                                archive_slug: r.try_get("archive_slug")?,
                            })
                        })
                        .collect::<StoreResult<_>>()?,
                )
            }
            Part::Deliveries => {
                let rows = sqlx::query(
                    "SELECT * FROM digest_deliveries WHERE (run_id, subscriber_id) > (?, ?)
                     ORDER BY run_id, subscriber_id LIMIT ?",
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
                                since: parse_time(r.try_get("since")?)?,
                                first: r.try_get::<i64, _>("first")? != 0,
                                state: r.try_get("state")?,
                                attempts: r.try_get("attempts")?,
                                next_attempt_at: parse_opt_time(r.try_get("next_attempt_at")?)?,
                                reply: r.try_get("reply")?,
                                article_count: r.try_get("article_count")?,
                                updated_at: parse_time(r.try_get("updated_at")?)?,
                                claimed_by: r.try_get("claimed_by")?,
                                lease_until: parse_opt_time(r.try_get("lease_until")?)?,
                            })
                        })
                        .collect::<StoreResult<_>>()?,
                )
            }
            Part::Cursors => {
                let rows: Vec<(i64, String, String)> = sqlx::query_as(
                    "SELECT subscriber_id, schedule, through FROM digest_cursors
                     WHERE (subscriber_id, schedule) > (?, ?)
                     ORDER BY subscriber_id, schedule LIMIT ?",
                )
                .bind(a)
                .bind(&text)
                .bind(limit)
                .fetch_all(pool)
                .await?;
                Rows::Cursors(
                    rows.into_iter()
                        .map(|(subscriber_id, schedule, t)| {
                            Ok(CursorRow {
                                subscriber_id,
                                schedule,
                                through: parse_time(t)?,
                            })
                        })
                        .collect::<StoreResult<_>>()?,
                )
            }
            Part::FirstSeen => {
                let rows: Vec<(String, String, String, String)> = sqlx::query_as(
                    "SELECT article_id, url, slug, first_seen FROM articles_seen
                     WHERE article_id > ? ORDER BY article_id LIMIT ?",
                )
                .bind(&text)
                .bind(limit)
                .fetch_all(pool)
                .await?;
                Rows::FirstSeen(
                    rows.into_iter()
                        .map(|(article_id, url, slug, t)| {
                            Ok(SeenRow {
                                article_id,
                                url,
                                slug,
                                first_seen: parse_time(t)?,
                            })
                        })
                        .collect::<StoreResult<_>>()?,
                )
            }
            Part::Undated => {
                let rows: Vec<(String, String)> = sqlx::query_as(
                    "SELECT source, assigned FROM undated_articles WHERE source > ?
                     ORDER BY source LIMIT ?",
                )
                .bind(&text)
                .bind(limit)
                .fetch_all(pool)
                .await?;
                Rows::Undated(
                    rows.into_iter()
                        .map(|(s, t)| Ok((s, parse_time(t)?.fixed_offset())))
                        .collect::<StoreResult<_>>()?,
                )
            }
            Part::State => Rows::State(
                sqlx::query_as(
                    "SELECT key, value FROM herald_state WHERE key > ? ORDER BY key LIMIT ?",
                )
                .bind(&text)
                .bind(limit)
                .fetch_all(pool)
                .await?,
            ),
            Part::Feedback => {
                let rows: Vec<(String, String, String)> = sqlx::query_as(
                    "SELECT source, event_id, at FROM feedback_events
                     WHERE source || char(1) || event_id > ?
                     ORDER BY source || char(1) || event_id LIMIT ?",
                )
                .bind(&text)
                .bind(limit)
                .fetch_all(pool)
                .await?;
                Rows::Feedback(
                    rows.into_iter()
                        .map(|(s, e, t)| Ok((s, e, parse_time(t)?)))
                        .collect::<StoreResult<_>>()?,
                )
            }
            Part::Suppressions => {
                let rows: Vec<(String, String, String)> = sqlx::query_as(
                    "SELECT email_hash, reason, at FROM suppressions WHERE email_hash > ?
                     ORDER BY email_hash LIMIT ?",
                )
                .bind(&text)
                .bind(limit)
                .fetch_all(pool)
                .await?;
                Rows::Suppressions(
                    rows.into_iter()
                        .map(|(h, r, t)| Ok((h, r, parse_time(t)?)))
                        .collect::<StoreResult<_>>()?,
                )
            }
            Part::Announcements => {
                let rows: Vec<(i64, String, String, String, String, bool)> = sqlx::query_as(
                    "SELECT run_id, audience, subject, html, text, archive FROM announcements
                     WHERE run_id > ? ORDER BY run_id LIMIT ?",
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
                    "SELECT * FROM archive_issues WHERE run_id > ? ORDER BY run_id LIMIT ?",
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
        let (sql, values): (&str, Vec<Value>) = match rows {
            Rows::Subscribers(rs) => {
                let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
                let values: Vec<Value> = rs
                    .iter()
                    .map(|s| {
                        json!([s.id, s.email, s.email_key, s.name, s.status,
                            format_time(s.requested_at), s.requested_ip, s.source,
                            opt_time(&s.confirmed_at), s.consent_note, opt_time(&s.left_at),
                            s.left_how, opt_time(&s.confirmation_sent_at), s.hard_bounces])
                    })
                    .collect();
                sqlx::query(
                    "INSERT INTO subscribers (id, email, email_key, name, status, requested_at,
                        requested_ip, source, confirmed_at, consent_note, left_at, left_how,
                        confirmation_sent_at, hard_bounces)
                     SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4,
                        value ->> 5, value ->> 6, value ->> 7, value ->> 8, value ->> 9,
                        value ->> 10, value ->> 11, value ->> 12, value ->> 13
                     FROM json_each(?)",
                )
                .bind(serde_json::to_string(&values)?)
                .execute(&mut *tx)
                .await?;
                let schedules: Vec<(i64, &String)> =
                    rs.iter().flat_map(|s| s.schedules.iter().map(|x| (s.id, x))).collect();
                let tags: Vec<(i64, &String)> =
                    rs.iter().flat_map(|s| s.tags.iter().map(|x| (s.id, x))).collect();
                insert_pairs(&mut tx, "subscriber_schedules", "schedule", &schedules).await?;
                insert_pairs(&mut tx, "subscriber_tags", "tag", &tags).await?;
                tx.commit().await?;
                return Ok(());
            }
            Rows::ConsentLog(rs) => (
                "INSERT INTO consent_log (id, subscriber_id, email_key, event, at, ip, source, note)
                 SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4,
                        value ->> 5, value ->> 6, value ->> 7 FROM json_each(?)",
                rs.iter()
                    .map(|c| {
                        json!([c.id, c.subscriber_id, c.email_key, c.event, format_time(c.at),
                            c.ip, c.source, c.note])
                    })
                    .collect(),
            ),
            Rows::Schedules(rs) => (
                "INSERT INTO digest_schedules (name, armed_at)
                 SELECT value ->> 0, value ->> 1 FROM json_each(?)",
                rs.iter().map(|(n, t)| json!([n, format_time(*t)])).collect(),
            ),
            Rows::Runs(rs) => (
                "INSERT INTO digest_runs (id, schedule, tick, horizon, trigger, nonce, created_at,
                    state, finished_at, archive_slug)
                 SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4,
                        value ->> 5, value ->> 6, value ->> 7, value ->> 8, value ->> 9
                 FROM json_each(?)",
                rs.iter()
                    .map(|r| {
                        json!([r.id, r.schedule, format_time(r.tick), opt_time(&r.horizon),
                            r.trigger, r.nonce, format_time(r.created_at),
                            if r.done { "done" } else { "sending" }, opt_time(&r.finished_at),
                            r.archive_slug])
                    })
                    .collect(),
            ),
            Rows::Deliveries(rs) => (
                "INSERT INTO digest_deliveries (run_id, subscriber_id, email, since, first, state,
                    attempts, next_attempt_at, reply, article_count, updated_at, claimed_by,
                    lease_until)
                 SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4,
                        value ->> 5, value ->> 6, value ->> 7, value ->> 8, value ->> 9,
                        value ->> 10, value ->> 11, value ->> 12 FROM json_each(?)",
                rs.iter()
                    .map(|d| {
                        json!([d.run_id, d.subscriber_id, d.email, format_time(d.since),
                            i64::from(d.first), d.state, d.attempts, opt_time(&d.next_attempt_at),
                            d.reply, d.article_count, format_time(d.updated_at), d.claimed_by,
                            opt_time(&d.lease_until)])
                    })
                    .collect(),
            ),
            Rows::Cursors(rs) => (
                "INSERT INTO digest_cursors (subscriber_id, schedule, through)
                 SELECT value ->> 0, value ->> 1, value ->> 2 FROM json_each(?)",
                rs.iter()
                    .map(|c| json!([c.subscriber_id, c.schedule, format_time(c.through)]))
                    .collect(),
            ),
            Rows::FirstSeen(rs) => (
                "INSERT INTO articles_seen (article_id, url, slug, first_seen)
                 SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3 FROM json_each(?)",
                rs.iter()
                    .map(|r| json!([r.article_id, r.url, r.slug, format_time(r.first_seen)]))
                    .collect(),
            ),
            Rows::Undated(rs) => (
                "INSERT INTO undated_articles (source, assigned)
                 SELECT value ->> 0, value ->> 1 FROM json_each(?)",
                rs.iter().map(|(s, t)| json!([s, format_time(t.to_utc())])).collect(),
            ),
            Rows::State(rs) => (
                "INSERT INTO herald_state (key, value)
                 SELECT value ->> 0, value ->> 1 FROM json_each(?)",
                rs.iter().map(|(k, v)| json!([k, v])).collect(),
            ),
            Rows::Feedback(rs) => (
                "INSERT INTO feedback_events (source, event_id, at)
                 SELECT value ->> 0, value ->> 1, value ->> 2 FROM json_each(?)",
                rs.iter()
                    .map(|(s, e, t)| json!([s, e, format_time(*t)]))
                    .collect(),
            ),
            Rows::Suppressions(rs) => (
                "INSERT INTO suppressions (email_hash, reason, at)
                 SELECT value ->> 0, value ->> 1, value ->> 2 FROM json_each(?)",
                rs.iter()
                    .map(|(h, r, t)| json!([h, r, format_time(*t)]))
                    .collect(),
            ),
            Rows::Announcements(rs) => (
                "INSERT INTO announcements (run_id, audience, subject, html, text, archive)
                 SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4,
                        value ->> 5 FROM json_each(?)",
                rs.iter()
                    .map(|(id, m)| {
                        json!([id, m.audience.to_string(), m.subject, m.html, m.text,
                            i64::from(m.archive)])
                    })
                    .collect(),
            ),
            Rows::Archive(rs) => (
                "INSERT INTO archive_issues (run_id, schedule, slug, subject, published_at, html,
                    summary)
                 SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4,
                        value ->> 5, value ->> 6 FROM json_each(?)",
                rs.iter()
                    .map(|i| {
                        json!([i.run_id, i.schedule, i.slug, i.subject,
                            format_time(i.published_at), i.html, i.summary])
                    })
                    .collect(),
            ),
        };
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(sql)
            .bind(serde_json::to_string(&values)?)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// AUTOINCREMENT moves past explicit ids by itself.
    async fn finish_import(&self) -> StoreResult<()> {
        Ok(())
    }
}
