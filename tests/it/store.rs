//! The store on both backends, from the same test code (`both!`): a real
//! SQLite file in a temporary folder and a real PostgreSQL database.
//! Uniqueness, the consent history, nothing deleted but unconfirmed
//! sign-ups, purging, preferences, listing, two handles writing at once,
//! and imports that land whole or not at all. The ledger, shared state and
//! copying are in `store_ledger.rs`.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use herald::store::{
    ListFilter, NewSubscription, SqliteStore, Status, Store, SubscribeOutcome, SubscriberEmail,
    Subscribers,
};
use sqlx::Connection;

use crate::backends::TestDb;
use crate::both;

fn at(day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, day, hour, 0, 0).unwrap()
}

fn email(s: &str) -> SubscriberEmail {
    SubscriberEmail::parse(s).unwrap()
}

fn request(address: &str, when: DateTime<Utc>) -> NewSubscription {
    NewSubscription {
        email: email(address),
        name: None,
        schedules: vec!["weekly".into()],
        tags: vec![],
        at: when,
        ip: Some("192.0.2.7".into()),
        source: "web-form".into(),
        confirmed_note: None,
    }
}

fn pending(outcome: SubscribeOutcome) -> herald::store::Subscriber {
    match outcome {
        SubscribeOutcome::Pending(s) => s,
        other => panic!("expected pending, got {other:?}"),
    }
}

/// A raw connection to the file, to look at what the store wrote.
async fn raw(path: &Path) -> sqlx::SqliteConnection {
    sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap()
}

#[tokio::test]
async fn open_creates_the_folder_and_a_wal_database_and_reopens_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/data/herald.sqlite3");
    let store = SqliteStore::open(&path).await.unwrap();
    store
        .subscribe(request("ann@example.org", at(1, 9)))
        .await
        .unwrap();
    store.close().await;
    assert!(path.is_file());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the database is private to its owner");
    }
    let mut conn = raw(&path).await;
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    conn.close().await.unwrap();

    // Opening again runs no migration twice and keeps the data.
    let store = SqliteStore::open(&path).await.unwrap();
    assert!(store
        .find(&email("ann@example.org"))
        .await
        .unwrap()
        .is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_handles_opening_a_new_sqlite_file_at_once_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let path = Arc::new(dir.path().join("data/new.sqlite3"));
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let path = path.clone();
            tokio::spawn(async move { SqliteStore::open(&path).await.map(|_| ()) })
        })
        .collect();
    for o in opens {
        o.await.unwrap().unwrap();
    }
}

both!(addresses_are_unique_whatever_their_case);
async fn addresses_are_unique_whatever_their_case(db: TestDb) {
    let store = &db.store;
    let first = pending(
        store
            .subscribe(request("Ann@Example.org", at(1, 9)))
            .await
            .unwrap(),
    );
    let again = pending(
        store
            .subscribe(request("ANN@example.ORG", at(1, 10)))
            .await
            .unwrap(),
    );
    assert_eq!(first.id, again.id);
    assert_eq!(store.list(&ListFilter::default()).await.unwrap().len(), 1);
    let found = store
        .find(&email("ann@EXAMPLE.org"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, first.id);
    // The renewed request replaces the pending one's consent data.
    assert_eq!(found.consent.requested_at, at(1, 10));

    let counts = store
        .import(vec![request("aNN@example.org", at(2, 9))])
        .await
        .unwrap();
    assert_eq!((counts.added, counts.existing), (0, 1));
}

both!(subscribe_confirm_unsubscribe_resubscribe_keeps_every_step_in_the_consent_log);
async fn subscribe_confirm_unsubscribe_resubscribe_keeps_every_step_in_the_consent_log(db: TestDb) {
    let store = &db.store;
    let s = pending(
        store
            .subscribe(request("bo@example.org", at(1, 9)))
            .await
            .unwrap(),
    );
    assert_eq!(s.status, Status::Pending);
    assert_eq!(s.consent.requested_ip.as_deref(), Some("192.0.2.7"));
    store.confirmation_sent(s.id, at(1, 9)).await.unwrap();

    let active = store.confirm(s.id, at(1, 11)).await.unwrap().unwrap();
    assert_eq!(active.status, Status::Active);
    assert_eq!(active.consent.confirmed_at, Some(at(1, 11)));
    assert_eq!(active.confirmation_sent_at, Some(at(1, 9)));
    // Confirming twice is harmless; asking again while active changes nothing.
    assert_eq!(
        store.confirm(s.id, at(1, 12)).await.unwrap().unwrap(),
        active
    );
    match store
        .subscribe(request("bo@example.org", at(2, 9)))
        .await
        .unwrap()
    {
        SubscribeOutcome::AlreadyActive(a) => assert_eq!(a, active),
        other => panic!("{other:?}"),
    }

    assert!(store
        .unsubscribe(s.id, at(3, 9), "one-click")
        .await
        .unwrap());
    let left = store.get(s.id).await.unwrap().unwrap();
    assert_eq!(left.status, Status::Unsubscribed);
    assert_eq!(left.consent.left_at, Some(at(3, 9)));
    assert_eq!(left.consent.left_how.as_deref(), Some("one-click"));
    assert_eq!(
        left.consent.confirmed_at,
        Some(at(1, 11)),
        "the old consent stays visible"
    );
    // A departed subscriber cannot be confirmed by an old link.
    assert_eq!(store.confirm(s.id, at(3, 10)).await.unwrap(), None);

    let mut again = request("bo@example.org", at(4, 9));
    again.ip = Some("198.51.100.2".into());
    let back = pending(store.subscribe(again).await.unwrap());
    assert_eq!(back.id, s.id);
    assert_eq!(back.consent.requested_at, at(4, 9));
    assert_eq!(back.consent.confirmed_at, None);
    assert_eq!(back.consent.left_at, None);
    assert_eq!(
        back.confirmation_sent_at, None,
        "a new consent may be mailed at once"
    );
    store.confirm(s.id, at(4, 10)).await.unwrap().unwrap();

    let log = store.consent_log(&email("BO@example.org")).await.unwrap();
    let steps: Vec<(&str, DateTime<Utc>)> = log.iter().map(|e| (e.event.as_str(), e.at)).collect();
    assert_eq!(
        steps,
        [
            ("subscribe", at(1, 9)),
            ("confirm", at(1, 11)),
            ("subscribe", at(2, 9)),
            ("unsubscribe", at(3, 9)),
            ("subscribe", at(4, 9)),
            ("confirm", at(4, 10)),
        ]
    );
    assert_eq!(log[0].ip.as_deref(), Some("192.0.2.7"));
    assert_eq!(log[0].source.as_deref(), Some("web-form"));
    assert_eq!(log[3].source.as_deref(), Some("one-click"));
    assert_eq!(log[4].ip.as_deref(), Some("198.51.100.2"));
    assert!(log.iter().all(|e| e.subscriber_id == Some(s.id)));
}

both!(unsubscribe_and_bounce_keep_the_record_and_the_database_refuses_deletion);
async fn unsubscribe_and_bounce_keep_the_record_and_the_database_refuses_deletion(db: TestDb) {
    let store = &db.store;
    let a = pending(
        store
            .subscribe(request("a@example.org", at(1, 9)))
            .await
            .unwrap(),
    );
    let b = pending(
        store
            .subscribe(request("b@example.org", at(1, 9)))
            .await
            .unwrap(),
    );
    store.confirm(b.id, at(1, 10)).await.unwrap();

    assert!(store.unsubscribe(a.id, at(2, 9), "operator").await.unwrap());
    assert!(store.unsubscribe(b.id, at(2, 9), "bounce").await.unwrap());
    // Leaving twice is fine and changes nothing.
    assert!(store
        .unsubscribe(b.id, at(3, 9), "one-click")
        .await
        .unwrap());
    assert!(!store.unsubscribe(999, at(3, 9), "one-click").await.unwrap());

    let a = store.get(a.id).await.unwrap().unwrap();
    let b = store.get(b.id).await.unwrap().unwrap();
    assert_eq!(
        (a.status, a.consent.left_how.as_deref()),
        (Status::Unsubscribed, Some("operator"))
    );
    assert_eq!(
        (b.status, b.consent.left_at),
        (Status::Bounced, Some(at(2, 9)))
    );
    let events: Vec<String> = store
        .consent_log(&b.email)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert_eq!(events, ["subscribe", "confirm", "bounce", "unsubscribe"]);
    assert_eq!(
        store
            .consent_log(&a.email)
            .await
            .unwrap()
            .last()
            .unwrap()
            .event,
        "operator-removal"
    );

    // Purging never touches them, and neither can a stray DELETE.
    assert_eq!(store.purge_pending(at(28, 0)).await.unwrap(), 0);
    assert_eq!(store.list(&ListFilter::default()).await.unwrap().len(), 2);
    let refused = db
        .exec(&format!("DELETE FROM subscribers WHERE id = {}", a.id))
        .await
        .unwrap_err();
    assert!(refused.contains("only pending"), "{refused}");
    for sql in [
        "DELETE FROM consent_log",
        "UPDATE consent_log SET note = 'x'",
    ] {
        let refused = db.exec(sql).await.unwrap_err();
        assert!(refused.contains("append-only"), "{refused}");
    }
}

both!(purge_pending_removes_only_old_pending_rows_and_logs_them);
async fn purge_pending_removes_only_old_pending_rows_and_logs_them(db: TestDb) {
    let store = &db.store;
    let old = pending(
        store
            .subscribe(request("old@example.org", at(1, 9)))
            .await
            .unwrap(),
    );
    let fresh = pending(
        store
            .subscribe(request("fresh@example.org", at(10, 9)))
            .await
            .unwrap(),
    );
    let confirmed = pending(
        store
            .subscribe(request("kept@example.org", at(1, 9)))
            .await
            .unwrap(),
    );
    store.confirm(confirmed.id, at(1, 10)).await.unwrap();
    let left = pending(
        store
            .subscribe(request("left@example.org", at(1, 9)))
            .await
            .unwrap(),
    );
    store
        .unsubscribe(left.id, at(1, 10), "one-click")
        .await
        .unwrap();

    assert_eq!(store.purge_pending(at(8, 9)).await.unwrap(), 1);
    assert_eq!(store.get(old.id).await.unwrap(), None);
    assert!(store.get(fresh.id).await.unwrap().is_some());
    assert!(store.get(confirmed.id).await.unwrap().is_some());
    assert!(store.get(left.id).await.unwrap().is_some());

    let log = store.consent_log(&old.email).await.unwrap();
    let events: Vec<&str> = log.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(events, ["subscribe", "purge"]);
    assert_eq!(log[1].subscriber_id, Some(old.id));
    assert_eq!(log[1].ip.as_deref(), Some("192.0.2.7"));
    assert!(log[1].note.as_deref().unwrap().contains("never confirmed"));

    // Their ids are never handed out again.
    let newcomer = pending(
        store
            .subscribe(request("new@example.org", at(9, 9)))
            .await
            .unwrap(),
    );
    assert!(newcomer.id > left.id);
    // Purged addresses may sign up again.
    let back = pending(
        store
            .subscribe(request("old@example.org", at(9, 9)))
            .await
            .unwrap(),
    );
    assert_ne!(back.id, old.id);
    assert_eq!(store.purge_pending(at(8, 9)).await.unwrap(), 0);
}

both!(the_purge_counts_from_the_last_confirmation_email);
async fn the_purge_counts_from_the_last_confirmation_email(db: TestDb) {
    // `herald subscribers confirm-again` gives a new link its full time.
    let store = &db.store;
    let old = pending(
        store
            .subscribe(request("old@example.org", at(1, 9)))
            .await
            .unwrap(),
    );
    let again = pending(
        store
            .subscribe(request("mailed-again@example.org", at(1, 9)))
            .await
            .unwrap(),
    );
    store.confirmation_sent(again.id, at(9, 8)).await.unwrap();
    assert_eq!(store.purge_pending(at(8, 9)).await.unwrap(), 1);
    assert_eq!(store.get(old.id).await.unwrap(), None);
    let left = store
        .list(&ListFilter {
            status: Some(Status::Pending),
        })
        .await
        .unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].email.as_str(), "mailed-again@example.org");
}

both!(set_preferences_replaces_schedules_and_tags);
async fn set_preferences_replaces_schedules_and_tags(db: TestDb) {
    let store = &db.store;
    let mut req = request("pat@example.org", at(1, 9));
    req.schedules = vec!["weekly".into(), "daily".into()];
    req.tags = vec!["rust".into()];
    let s = pending(store.subscribe(req).await.unwrap());
    assert_eq!(s.schedules, ["daily", "weekly"]);
    assert_eq!(s.tags, ["rust"]);

    let ok = store
        .set_preferences(
            s.id,
            &["daily".into()],
            &["web".into(), "cli".into(), "web".into()],
        )
        .await
        .unwrap();
    assert!(ok);
    let s = store.get(s.id).await.unwrap().unwrap();
    assert_eq!(s.schedules, ["daily"]);
    assert_eq!(s.tags, ["cli", "web"]);
    assert!(store.set_preferences(s.id, &[], &[]).await.unwrap());
    let s = store.get(s.id).await.unwrap().unwrap();
    assert!(s.schedules.is_empty() && s.tags.is_empty());
    assert!(!store.set_preferences(12345, &[], &[]).await.unwrap());
}

both!(list_filters_by_status_in_id_order);
async fn list_filters_by_status_in_id_order(db: TestDb) {
    let store = &db.store;
    let mut ids = Vec::new();
    for (i, name) in ["a", "b", "c", "d", "e"].iter().enumerate() {
        let s = pending(
            store
                .subscribe(request(&format!("{name}@example.org"), at(1, i as u32)))
                .await
                .unwrap(),
        );
        ids.push(s.id);
    }
    store.confirm(ids[1], at(2, 0)).await.unwrap();
    store.confirm(ids[3], at(2, 0)).await.unwrap();
    store
        .unsubscribe(ids[4], at(2, 0), "one-click")
        .await
        .unwrap();

    let of = |list: Vec<herald::store::Subscriber>| list.iter().map(|s| s.id).collect::<Vec<_>>();
    let filter = |status| ListFilter {
        status: Some(status),
    };
    assert_eq!(of(store.list(&ListFilter::default()).await.unwrap()), ids);
    assert_eq!(
        of(store.list(&filter(Status::Active)).await.unwrap()),
        [ids[1], ids[3]]
    );
    assert_eq!(
        of(store.list(&filter(Status::Pending)).await.unwrap()),
        [ids[0], ids[2]]
    );
    assert_eq!(
        of(store.list(&filter(Status::Unsubscribed)).await.unwrap()),
        [ids[4]]
    );
    assert!(store
        .list(&filter(Status::Bounced))
        .await
        .unwrap()
        .is_empty());
}

both!(two_handles_on_one_database_write_at_the_same_time);
async fn two_handles_on_one_database_write_at_the_same_time(db: TestDb) {
    // As the daemon and `herald subscribers` would: two separate stores.
    let daemon = db.store.clone();
    let cli = db.open_again().await;

    let mut tasks = Vec::new();
    for (who, store) in [("d", daemon.clone()), ("c", cli.clone())] {
        tasks.push(tokio::spawn(async move {
            for i in 0..150 {
                let s = pending(
                    store
                        .subscribe(request(&format!("{who}{i}@example.org"), at(1, 9)))
                        .await
                        .unwrap(),
                );
                if i % 2 == 0 {
                    store.confirm(s.id, at(1, 10)).await.unwrap().unwrap();
                }
            }
        }));
    }
    // Batches of imports and reads interleave with the single writes.
    let importer = cli.clone();
    tasks.push(tokio::spawn(async move {
        for batch in 0..5 {
            let rows = (0..200)
                .map(|i| request(&format!("i{batch}-{i}@example.org"), at(1, 9)))
                .collect();
            assert_eq!(importer.import(rows).await.unwrap().added, 200);
        }
    }));
    let reader = daemon.clone();
    tasks.push(tokio::spawn(async move {
        for _ in 0..20 {
            reader.list(&ListFilter::default()).await.unwrap();
        }
    }));
    for t in tasks {
        t.await.unwrap();
    }
    let all = daemon.list(&ListFilter::default()).await.unwrap();
    assert_eq!(all.len(), 2 * 150 + 5 * 200);
    let active = cli
        .list(&ListFilter {
            status: Some(Status::Active),
        })
        .await
        .unwrap();
    assert_eq!(active.len(), 150);
}

both!(import_writes_all_rows_or_none);
async fn import_writes_all_rows_or_none(db: TestDb) {
    let store = &db.store;
    let mut confirmed = request("c@example.org", at(1, 9));
    confirmed.confirmed_note = Some("paper form, March".into());
    confirmed.tags = vec!["rust".into()];
    // The database refuses an empty schedule name, half-way through.
    let mut broken = request("z@example.org", at(1, 9));
    broken.schedules = vec![String::new()];
    let failed = store
        .import(vec![
            request("a@example.org", at(1, 9)),
            confirmed.clone(),
            broken,
        ])
        .await;
    assert!(failed.is_err());
    assert!(store.list(&ListFilter::default()).await.unwrap().is_empty());
    assert!(store
        .consent_log(&email("a@example.org"))
        .await
        .unwrap()
        .is_empty());

    let counts = store
        .import(vec![request("a@example.org", at(1, 9)), confirmed.clone()])
        .await
        .unwrap();
    assert_eq!((counts.added, counts.existing), (2, 0));
    let c = store.find(&confirmed.email).await.unwrap().unwrap();
    assert_eq!(c.status, Status::Active);
    assert_eq!(c.consent.note.as_deref(), Some("paper form, March"));
    assert_eq!(c.consent.confirmed_at, Some(at(1, 9)));
    assert_eq!(c.tags, ["rust"]);
    let events: Vec<String> = store
        .consent_log(&c.email)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert_eq!(events, ["subscribe", "confirm"]);

    let counts = store
        .import(vec![
            request("A@example.org", at(2, 9)),
            request("b@example.org", at(2, 9)),
            request("b@example.org", at(2, 9)),
        ])
        .await
        .unwrap();
    assert_eq!((counts.added, counts.existing), (1, 2));
    // Those already present are left as they were.
    let a = store.find(&email("a@example.org")).await.unwrap().unwrap();
    assert_eq!(a.consent.requested_at, at(1, 9));
    // Neither the rolled-back batch nor the present addresses used up ids.
    let ids: Vec<i64> = store
        .list(&ListFilter::default())
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(ids, [1, 2, 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_replicas_migrating_a_new_postgres_database_at_once_all_succeed() {
    let Some(cluster) = crate::pg::cluster() else {
        return;
    };
    let url = cluster.fresh_db().await;
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                herald::store::PgStore::open(&url, &crate::pg::options())
                    .await
                    .map(|_| ())
            })
        })
        .collect();
    for o in opens {
        o.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn an_unreachable_postgres_is_named_with_its_cause_and_a_newer_schema_is_refused() {
    let port = crate::helpers::free_port();
    let url: url::Url = format!("postgres://herald@127.0.0.1:{port}/herald")
        .parse()
        .unwrap();
    let mut options = crate::pg::options();
    options.connect_timeout = std::time::Duration::from_secs(2);
    let err = format!(
        "{:#}",
        herald::store::PgStore::open(&url, &options)
            .await
            .unwrap_err()
    );
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(
        err.to_lowercase().contains("refused") || err.contains("no answer"),
        "{err}"
    );

    let Some(db) = TestDb::postgres().await else {
        return;
    };
    db.exec(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (9999, 'from the future', true, '\\x00', 0)",
    )
    .await
    .unwrap();
    let err = format!(
        "{:#}",
        herald::store::open_location(&db.location, &db.options())
            .await
            .err()
            .unwrap()
    );
    assert!(err.contains("9999") && err.contains("newer"), "{err}");
}

#[test]
fn herald_db_migrate_applies_the_schema_and_says_its_version() {
    let site = crate::helpers::TestSite::new();
    let out = site.cli(&["db", "migrate"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("SQLite") && said.contains("schema at version 6"),
        "{said}"
    );
    assert!(site.data.join("herald.sqlite3").is_file());
}
