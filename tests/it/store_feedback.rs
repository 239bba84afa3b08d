//! Late bounces, complaints, erasure, IP expiry, announcements and the
//! web archive in the store, on both backends from the same code
//! (`both!`): a complaint makes the subscriber `complained` at once and is
//! applied once per event id; hard bounces count up to the bounce limit
//! and a delivery is counted once; a Message-ID match needs the run's
//! nonce and the recipient; an erased address leaves only hashes behind
//! and cannot come back by sign-up or import; old IPs are cleared; an
//! announcement run moves no cursor; archive slugs are unique per day.

use chrono::{DateTime, Duration, TimeZone, Utc};
use herald::store::{
    suppression_hash, Announcement, Audience, Feedback, FeedbackKind, FeedbackOutcome,
    FeedbackTarget, Issue, ListFilter, NewAnnouncement, NewDelivery, NewRun, NewSubscription,
    Outcome, Status, Store, SubscribeOutcome, SubscriberEmail, Trigger,
};

use crate::backends::TestDb;
use crate::both;

fn at(day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 4, day, hour, 0, 0).unwrap()
}

fn email(s: &str) -> SubscriberEmail {
    SubscriberEmail::parse(s).unwrap()
}

fn request(address: &str, tags: &[&str], ip: Option<&str>) -> NewSubscription {
    NewSubscription {
        email: email(address),
        name: None,
        schedules: vec!["weekly".into()],
        tags: tags.iter().map(|t| t.to_string()).collect(),
        at: at(1, 9),
        ip: ip.map(str::to_string),
        source: "web-form".into(),
        confirmed_note: Some("test".into()),
    }
}

/// Active subscribers with these addresses; their ids in order.
async fn active(store: &dyn Store, addresses: &[&str]) -> Vec<i64> {
    let rows = addresses.iter().map(|a| request(a, &[], None)).collect();
    store.import(rows).await.unwrap();
    let mut ids = Vec::new();
    for a in addresses {
        ids.push(store.find(&email(a)).await.unwrap().unwrap().id);
    }
    ids
}

/// A weekly run to `ids` (addresses as given), every delivery sent.
async fn sent_run(
    store: &dyn Store,
    ids: &[i64],
    addresses: &[&str],
    tick: DateTime<Utc>,
) -> herald::store::Run {
    let deliveries: Vec<NewDelivery> = ids
        .iter()
        .zip(addresses)
        .map(|(&id, a)| NewDelivery {
            subscriber_id: id,
            email: email(a),
            since: at(1, 9),
            first: true,
        })
        .collect();
    let run = store
        .create_run(NewRun {
            schedule: "weekly",
            tick,
            horizon: tick,
            trigger: Trigger::Schedule,
            now: tick,
            deliveries: &deliveries,
        })
        .await
        .unwrap()
        .unwrap();
    let claim = herald::store::Claim {
        by: "t",
        now: tick,
        lease_until: tick + Duration::seconds(60),
        limit: 100,
    };
    let claimed = store.claim(run.id, claim).await.unwrap();
    let outcomes: Vec<(i64, Outcome)> = claimed
        .iter()
        .map(|c| (c.subscriber_id, Outcome::Sent { article_count: 1 }))
        .collect();
    store.settle(&run, "t", &outcomes, tick, 2).await.unwrap();
    run
}

fn feedback(
    kind: FeedbackKind,
    target: FeedbackTarget,
    recipient: Option<&str>,
    id: &str,
) -> Feedback {
    Feedback {
        source: "test".into(),
        event_id: Some(id.into()),
        kind,
        target,
        recipient: recipient.map(email),
        detail: "5.1.1 no such user".into(),
        at: at(3, 10),
    }
}

async fn status(store: &dyn Store, address: &str) -> Status {
    store.find(&email(address)).await.unwrap().unwrap().status
}

both!(a_complaint_makes_the_subscriber_complained_at_once_and_applies_once);
async fn a_complaint_makes_the_subscriber_complained_at_once_and_applies_once(db: TestDb) {
    let s = &*db.store;
    active(s, &["ann@example.net"]).await;
    let f = feedback(
        FeedbackKind::Complaint,
        FeedbackTarget::Address(email("ann@example.net")),
        Some("ann@example.net"),
        "c-1",
    );
    let first = s.record_feedback(&f, 2).await.unwrap();
    assert!(
        matches!(
            first,
            FeedbackOutcome::Applied {
                status: Status::Complained,
                changed: true,
                ..
            }
        ),
        "{first:?}"
    );
    assert_eq!(
        s.record_feedback(&f, 2).await.unwrap(),
        FeedbackOutcome::Duplicate
    );
    assert_eq!(status(s, "ann@example.net").await, Status::Complained);
    let log = s.consent_log(&email("ann@example.net")).await.unwrap();
    assert_eq!(
        log.iter().filter(|e| e.event == "complaint").count(),
        1,
        "{log:?}"
    );
    // Never mailed again: no candidate of any schedule, no audience, and
    // the form cannot bring the address back.
    assert!(s
        .candidates_page("weekly", None, 10)
        .await
        .unwrap()
        .is_empty());
    assert!(s
        .audience_page(&Audience::All, None, 10)
        .await
        .unwrap()
        .is_empty());
    let mut again = request("ann@example.net", &[], Some("192.0.2.9"));
    again.confirmed_note = None;
    assert_eq!(
        s.subscribe(again).await.unwrap(),
        SubscribeOutcome::Suppressed
    );
    assert_eq!(status(s, "ann@example.net").await, Status::Complained);
    let listed = s
        .list(&ListFilter {
            status: Some(Status::Complained),
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].consent.left_how.as_deref(), Some("complaint"));
}

both!(hard_bounces_count_to_the_limit_once_per_delivery);
async fn hard_bounces_count_to_the_limit_once_per_delivery(db: TestDb) {
    let s = &*db.store;
    let addresses = ["bo@example.net", "cy@example.net"];
    let ids = active(s, &addresses).await;
    let run1 = sent_run(s, &ids, &addresses, at(2, 8)).await;
    let run2 = sent_run(s, &ids, &addresses, at(9, 8)).await;
    let delivery = |run: i64| FeedbackTarget::Delivery {
        run,
        subscriber: ids[0],
        nonce: None,
    };
    let f1 = feedback(
        FeedbackKind::HardBounce,
        delivery(run1.id),
        Some("bo@example.net"),
        "dsn-1",
    );
    assert!(matches!(
        s.record_feedback(&f1, 2).await.unwrap(),
        FeedbackOutcome::Applied { changed: false, .. }
    ));
    // The same delivery reported again under another id (a webhook after
    // the DSN): not counted twice.
    let again = feedback(
        FeedbackKind::HardBounce,
        delivery(run1.id),
        Some("bo@example.net"),
        "hook-1",
    );
    assert!(matches!(
        s.record_feedback(&again, 2).await.unwrap(),
        FeedbackOutcome::Applied { changed: false, .. }
    ));
    assert_eq!(status(s, "bo@example.net").await, Status::Active);
    let f2 = feedback(
        FeedbackKind::HardBounce,
        delivery(run2.id),
        Some("bo@example.net"),
        "dsn-2",
    );
    assert!(matches!(
        s.record_feedback(&f2, 2).await.unwrap(),
        FeedbackOutcome::Applied {
            status: Status::Bounced,
            changed: true,
            ..
        }
    ));
    assert_eq!(status(s, "bo@example.net").await, Status::Bounced);
    let run_status = s.run_status(run1.id).await.unwrap();
    let p = run_status
        .problems
        .iter()
        .find(|p| p.subscriber_id == ids[0])
        .unwrap();
    assert!(
        p.reply
            .as_deref()
            .unwrap()
            .starts_with("late bounce (test)"),
        "{p:?}"
    );
    let log = s.consent_log(&email("bo@example.net")).await.unwrap();
    assert_eq!(
        log.iter().filter(|e| e.event == "bounce").count(),
        2,
        "{log:?}"
    );

    // Herald's Message-ID: the run's nonce and the named recipient must
    // both agree, or nothing changes.
    let by_id = |nonce: &str, rcpt: &str, id: &str| {
        feedback(
            FeedbackKind::HardBounce,
            FeedbackTarget::Delivery {
                run: run1.id,
                subscriber: ids[1],
                nonce: Some(nonce.into()),
            },
            Some(rcpt),
            id,
        )
    };
    for f in [
        by_id("0000000000000000", "cy@example.net", "m-1"),
        by_id(&run1.nonce, "someone@example.net", "m-2"),
    ] {
        assert_eq!(
            s.record_feedback(&f, 1).await.unwrap(),
            FeedbackOutcome::Unmatched
        );
    }
    assert_eq!(status(s, "cy@example.net").await, Status::Active);
    let genuine = by_id(&run1.nonce, "CY@example.net", "m-3");
    assert!(matches!(
        s.record_feedback(&genuine, 1).await.unwrap(),
        FeedbackOutcome::Applied {
            status: Status::Bounced,
            ..
        }
    ));
    // An event that matched nothing may apply later; one that matched
    // is remembered.
    assert_eq!(
        s.record_feedback(&by_id(&run1.nonce, "cy@example.net", "m-1"), 1)
            .await
            .unwrap(),
        FeedbackOutcome::Applied {
            subscriber_id: ids[1],
            status: Status::Bounced,
            changed: false
        }
    );
}

both!(an_erased_address_leaves_only_hashes_and_cannot_come_back);
async fn an_erased_address_leaves_only_hashes_and_cannot_come_back(db: TestDb) {
    let s = &*db.store;
    let mut req = request("dee@example.net", &["rust"], Some("198.51.100.7"));
    req.confirmed_note = None;
    let SubscribeOutcome::Pending(sub) = s.subscribe(req).await.unwrap() else {
        panic!("pending")
    };
    s.confirm(sub.id, at(1, 10)).await.unwrap();
    let run = sent_run(s, &[sub.id], &["dee@example.net"], at(2, 8)).await;
    assert!(s.forget(&email("dee@example.net"), at(5, 9)).await.unwrap());
    assert!(s.find(&email("dee@example.net")).await.unwrap().is_none());
    assert!(s
        .consent_log(&email("dee@example.net"))
        .await
        .unwrap()
        .is_empty());
    // What remains is keyed by the hash, with no IP and no note.
    let hash = suppression_hash(&email("dee@example.net"));
    let rows = db
        .exec(&format!(
            "UPDATE consent_log SET ip = NULL WHERE email_key = 'erased:{hash}' AND ip IS NULL"
        ))
        .await
        .unwrap();
    assert!(
        rows >= 3,
        "subscribe, confirm and the erasure stay as hashes: {rows}"
    );
    let status = s.run_status(run.id).await.unwrap();
    assert_eq!(status.total(), 1);
    // Neither the form nor an import nor a restore brings it back.
    let mut again = request("Dee@Example.net", &[], None);
    again.confirmed_note = None;
    assert_eq!(
        s.subscribe(again).await.unwrap(),
        SubscribeOutcome::Suppressed
    );
    let counts = s
        .import(vec![request("dee@example.net", &[], None)])
        .await
        .unwrap();
    assert_eq!(counts.added, 0);
    assert!(s.find(&email("dee@example.net")).await.unwrap().is_none());
    // The consent log stays append-only for everything else.
    assert!(db.exec("DELETE FROM consent_log").await.is_err());
    assert!(db.exec("UPDATE consent_log SET note = 'x'").await.is_err());
    // An address herald never held is still suppressed from now on.
    assert!(!s.forget(&email("eve@example.net"), at(5, 9)).await.unwrap());
    assert_eq!(
        s.import(vec![request("eve@example.net", &[], None)])
            .await
            .unwrap()
            .added,
        0
    );
}

both!(client_ips_are_cleared_once_old);
async fn client_ips_are_cleared_once_old(db: TestDb) {
    let s = &*db.store;
    let mut req = request("fay@example.net", &[], Some("203.0.113.5"));
    req.confirmed_note = None;
    s.subscribe(req).await.unwrap();
    assert_eq!(
        s.expire_ips(at(1, 8)).await.unwrap(),
        0,
        "younger than the cut-off"
    );
    assert!(s.expire_ips(at(2, 9)).await.unwrap() >= 2);
    let sub = s.find(&email("fay@example.net")).await.unwrap().unwrap();
    assert_eq!(sub.consent.requested_ip, None);
    let log = s.consent_log(&email("fay@example.net")).await.unwrap();
    assert!(log.iter().all(|e| e.ip.is_none()), "{log:?}");
    assert_eq!(log[0].event, "subscribe", "the entries themselves stay");
}

both!(announcements_reach_their_audience_and_move_no_cursor);
async fn announcements_reach_their_audience_and_move_no_cursor(db: TestDb) {
    let s = &*db.store;
    let rows = vec![
        request("gil@example.net", &["rust"], None),
        request("hal@example.net", &[], None),
    ];
    s.import(rows).await.unwrap();
    let tagged = s
        .audience_page(&Audience::Tag("rust".into()), None, 10)
        .await
        .unwrap();
    assert_eq!(tagged.len(), 1);
    assert_eq!(
        s.audience_page(&Audience::Schedule("weekly".into()), None, 10)
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        s.audience_page(&Audience::Schedule("daily".into()), None, 10)
            .await
            .unwrap()
            .len(),
        0
    );
    let all = s.audience_page(&Audience::All, None, 1).await.unwrap();
    assert_eq!(all.len(), 1, "paged");
    let message = Announcement {
        audience: Audience::All,
        subject: "Moving".into(),
        html: "<p>We move.</p>".into(),
        text: "We move.".into(),
        archive: true,
    };
    let everyone = s.audience_page(&Audience::All, None, 10).await.unwrap();
    let deliveries: Vec<NewDelivery> = everyone
        .iter()
        .map(|c| NewDelivery {
            subscriber_id: c.id,
            email: c.email.clone(),
            since: at(3, 9),
            first: false,
        })
        .collect();
    let run = s
        .create_announcement(NewAnnouncement {
            message: &message,
            now: at(3, 9),
            deliveries: &deliveries,
        })
        .await
        .unwrap();
    assert!(run.is_announcement());
    assert_eq!(run.schedule, "announcements");
    assert_eq!(s.announcement(run.id).await.unwrap(), Some(message));
    let claim = herald::store::Claim {
        by: "t",
        now: at(3, 9),
        lease_until: at(3, 10),
        limit: 10,
    };
    let claimed = s.claim(run.id, claim).await.unwrap();
    assert_eq!(claimed.len(), 2);
    let outcomes: Vec<(i64, Outcome)> = claimed
        .iter()
        .map(|c| (c.subscriber_id, Outcome::Sent { article_count: 0 }))
        .collect();
    s.settle(&run, "t", &outcomes, at(3, 9), 2).await.unwrap();
    // No cursor moved: the next weekly digest still starts at the
    // subscriber's confirmation.
    let page = s.candidates_page("weekly", None, 10).await.unwrap();
    assert!(
        page.iter().all(|c| c.received_through.is_none()),
        "{page:?}"
    );

    // Archive slugs: the date, then date-2 for a second run that day.
    assert_eq!(
        s.assign_archive_slug(run.id, "2026-04-03").await.unwrap(),
        "2026-04-03"
    );
    assert_eq!(
        s.assign_archive_slug(run.id, "2026-04-04").await.unwrap(),
        "2026-04-03",
        "kept"
    );
    let second = s
        .create_announcement(NewAnnouncement {
            message: &s.announcement(run.id).await.unwrap().unwrap(),
            now: at(3, 11),
            deliveries: &[],
        })
        .await
        .unwrap();
    assert!(second.done, "nobody to send to: done at once");
    assert_eq!(
        s.assign_archive_slug(second.id, "2026-04-03")
            .await
            .unwrap(),
        "2026-04-03-2"
    );
    let issue = Issue {
        run_id: run.id,
        schedule: "announcements".into(),
        slug: "2026-04-03".into(),
        subject: "Moving".into(),
        published_at: at(3, 12),
        html: "<p>page</p>".into(),
        summary: "We move.".into(),
    };
    assert!(s.publish_issue(&issue).await.unwrap());
    assert!(!s.publish_issue(&issue).await.unwrap(), "published once");
    assert_eq!(
        s.issue("announcements", "2026-04-03").await.unwrap(),
        Some(issue.clone())
    );
    assert_eq!(s.issue("announcements", "2026-04-04").await.unwrap(), None);
    let listed = s.issues(None, 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].html, "", "lists carry no page");
    assert_eq!(s.issues(Some("weekly"), 10).await.unwrap().len(), 0);
    assert_eq!(
        s.previous_horizon("announcements", second.id)
            .await
            .unwrap(),
        Some(at(3, 9))
    );
}

/// The SQLite migration rebuilds three tables to change their CHECK
/// constraints: a database of the schema before keeps every subscriber
/// with schedules and tags, the consent log and the runs, and no id is
/// reused afterwards.
#[tokio::test]
async fn the_sqlite_rebuild_keeps_every_row_and_never_reuses_an_id() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old-migrations");
    std::fs::create_dir_all(&old).unwrap();
    for entry in std::fs::read_dir(crate::helpers::repo_root().join("migrations/sqlite")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.as_str() < "0005" {
            std::fs::copy(&path, old.join(&name)).unwrap();
        }
    }
    let db = dir.path().join("herald.sqlite3");
    {
        let url = format!("sqlite://{}?mode=rwc", db.display());
        let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query("PRAGMA foreign_keys = ON")
            .execute(&mut c)
            .await
            .unwrap();
        sqlx::migrate::Migrator::new(old.as_path())
            .await
            .unwrap()
            .run(&mut c)
            .await
            .unwrap();
        for sql in [
            "INSERT INTO subscribers (email, email_key, status, requested_at, source, confirmed_at)
             VALUES ('a@example.net', 'a@example.net', 'active', '2026-01-01T00:00:00.000000000Z', 'cli', '2026-01-01T00:00:00.000000000Z')",
            "INSERT INTO subscribers (email, email_key, status, requested_at, source)
             VALUES ('gone@example.net', 'gone@example.net', 'pending', '2026-01-01T00:00:00.000000000Z', 'cli')",
            "DELETE FROM subscribers WHERE email_key = 'gone@example.net'",
            "INSERT INTO subscriber_schedules VALUES (1, 'weekly')",
            "INSERT INTO subscriber_tags VALUES (1, 'rust')",
            "INSERT INTO consent_log (subscriber_id, email_key, event, at, ip, source)
             VALUES (1, 'a@example.net', 'subscribe', '2026-01-01T00:00:00.000000000Z', '192.0.2.1', 'cli')",
            "INSERT INTO digest_runs (schedule, tick, trigger, nonce, created_at, state)
             VALUES ('weekly', '2026-01-05T08:00:00.000000000Z', 'schedule', '0123456789abcdef', '2026-01-05T08:00:00.000000000Z', 'done')",
        ] {
            sqlx::query(sql).execute(&mut c).await.unwrap();
        }
        c.close().await.unwrap();
    }
    use herald::store::{Ledger, Subscribers};
    let store = herald::store::SqliteStore::open(&db).await.unwrap();
    let a = store.find(&email("a@example.net")).await.unwrap().unwrap();
    assert_eq!(a.id, 1);
    assert_eq!(a.schedules, ["weekly"]);
    assert_eq!(a.tags, ["rust"]);
    assert_eq!(
        store
            .consent_log(&email("a@example.net"))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(store.runs(10).await.unwrap().len(), 1);
    // The purged id 2 is not handed out again.
    let mut req = request("new@example.net", &[], None);
    req.confirmed_note = None;
    let SubscribeOutcome::Pending(new) = store.subscribe(req).await.unwrap() else {
        panic!("pending")
    };
    assert_eq!(new.id, 3);
    store.close().await;
}
