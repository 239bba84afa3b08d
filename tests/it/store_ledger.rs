//! The ledger and the shared state on both backends from the same code
//! (`both!`): runs unique per tick whoever plans them, claims that never
//! overlap and carry leases, only expired leases turning `uncertain`,
//! paged candidates, first-seen times (adoption, identity), undated dates
//! and the signing secret agreeing across handles, the shared send rate,
//! and `herald db copy` moving everything, ids included.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, TimeZone, Utc};
use herald::store::copy::{copy, Part};
use herald::store::{
    Announcement, Audience, Claim, DeliveryState, Feedback, FeedbackKind, FeedbackTarget, Issue,
    NewAnnouncement, NewDelivery, NewRun, NewSubscription, Outcome, SeenArticle, Store,
    SubscriberEmail, Trigger,
};

use crate::backends::TestDb;
use crate::both;

fn at(day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, day, hour, 0, 0).unwrap()
}

/// `n` active subscribers of `weekly`; their ids.
async fn subscribers(store: &dyn Store, n: usize) -> Vec<i64> {
    let rows = (0..n)
        .map(|i| NewSubscription {
            email: SubscriberEmail::parse(&format!("r{i:05}@example.net")).unwrap(),
            name: None,
            schedules: vec!["weekly".into()],
            tags: if i % 2 == 0 {
                vec!["rust".into()]
            } else {
                vec![]
            },
            at: at(1, 9),
            ip: None,
            source: "import".into(),
            confirmed_note: Some("test".into()),
        })
        .collect();
    assert_eq!(store.import(rows).await.unwrap().added, n as u64);
    let mut ids = Vec::new();
    let mut after = None;
    loop {
        let page = store.candidates_page("weekly", after, 7).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        assert!(page.len() <= 7);
        ids.extend(page.iter().map(|c| c.id));
    }
    ids
}

async fn new_run(
    store: &dyn Store,
    ids: &[i64],
    tick: DateTime<Utc>,
) -> Option<herald::store::Run> {
    let deliveries: Vec<NewDelivery> = ids
        .iter()
        .map(|&id| NewDelivery {
            subscriber_id: id,
            email: SubscriberEmail::parse(&format!("x{id}@example.net")).unwrap(),
            since: at(1, 9),
            first: true,
        })
        .collect();
    store
        .create_run(NewRun {
            schedule: "weekly",
            tick,
            horizon: tick - Duration::minutes(5),
            trigger: Trigger::Schedule,
            now: tick,
            deliveries: &deliveries,
        })
        .await
        .unwrap()
}

fn claim(by: &str, now: DateTime<Utc>, limit: usize) -> Claim<'_> {
    Claim {
        by,
        now,
        lease_until: now + Duration::seconds(60),
        limit,
    }
}

both!(candidates_come_in_pages_and_each_tick_has_one_run_whoever_plans_it);
async fn candidates_come_in_pages_and_each_tick_has_one_run_whoever_plans_it(db: TestDb) {
    let ids = subscribers(&*db.store, 30).await;
    assert_eq!(ids.len(), 30);
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "keyset pages in id order"
    );
    // Three handles race to plan the same tick: exactly one run exists.
    let others = [db.open_again().await, db.open_again().await];
    let tick = at(2, 8);
    let mut tasks = Vec::new();
    for s in [db.store.clone(), others[0].clone(), others[1].clone()] {
        let ids = ids.clone();
        tasks.push(tokio::spawn(async move { new_run(&*s, &ids, tick).await }));
    }
    let mut made = 0;
    for t in tasks {
        made += t.await.unwrap().is_some() as usize;
    }
    assert_eq!(made, 1, "exactly one planner wins the tick");
    assert!(db.store.run_exists("weekly", tick).await.unwrap());
    let run = &db.store.runs(10).await.unwrap()[0];
    assert_eq!(run.horizon, tick - Duration::minutes(5));
    assert_eq!(db.store.run_status(run.id).await.unwrap().total(), 30);
}

both!(concurrent_claims_never_overlap_and_only_expired_leases_become_uncertain);
async fn concurrent_claims_never_overlap_and_only_expired_leases_become_uncertain(db: TestDb) {
    let ids = subscribers(&*db.store, 200).await;
    let run = new_run(&*db.store, &ids, at(2, 8)).await.unwrap();
    let now = at(2, 8);
    let other = db.open_again().await;
    // Two replicas claim at once, batch after batch. Each stops once it
    // holds more than half, so that both hold some however the scheduler
    // (or SQLite's write lock) orders them.
    let mut tasks = Vec::new();
    for (name, s) in [("a", db.store.clone()), ("b", other.clone())] {
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let batch = s.claim(run.id, claim(name, now, 16)).await.unwrap();
                got.extend(batch.iter().map(|c| c.subscriber_id));
                if batch.is_empty() || got.len() > 100 {
                    return got;
                }
            }
        }));
    }
    let a = tasks.remove(0).await.unwrap();
    let b = tasks.remove(0).await.unwrap();
    let all: BTreeSet<i64> = a.iter().chain(&b).copied().collect();
    assert_eq!(all.len(), a.len() + b.len(), "no delivery claimed twice");
    assert_eq!(all.len(), 200);

    // a settles its share; b "dies". Before b's lease runs out nothing
    // becomes uncertain; after it, exactly b's rows do.
    let outcomes: Vec<(i64, Outcome)> = a
        .iter()
        .map(|&id| (id, Outcome::Sent { article_count: 2 }))
        .collect();
    db.store.settle(&run, "a", &outcomes, now, 2).await.unwrap();
    // Settling rows someone else holds changes nothing.
    let stolen: Vec<(i64, Outcome)> = vec![(b[0], Outcome::Sent { article_count: 1 })];
    db.store.settle(&run, "a", &stolen, now, 2).await.unwrap();
    assert_eq!(
        db.store
            .expire_leases(now + Duration::seconds(30))
            .await
            .unwrap(),
        0
    );
    // b renews at 50 s: still alive at 90 s.
    assert_eq!(
        other
            .renew_leases("b", now + Duration::seconds(110))
            .await
            .unwrap(),
        b.len() as u64
    );
    assert_eq!(
        db.store
            .expire_leases(now + Duration::seconds(90))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        db.store
            .expire_leases(now + Duration::seconds(120))
            .await
            .unwrap(),
        b.len() as u64
    );
    let status = db.store.run_status(run.id).await.unwrap();
    assert_eq!(status.count(DeliveryState::Sent), a.len() as u64);
    assert_eq!(status.count(DeliveryState::Uncertain), b.len() as u64);
    // Nothing is pending or sending any more: the run is done.
    assert!(db.store.finish_if_done(run.id, now).await.unwrap());
    assert!(db.store.run(run.id).await.unwrap().unwrap().done);
    // The operator requeues them; they go out once more, to whoever claims.
    assert_eq!(
        db.store
            .requeue(run.id, DeliveryState::Uncertain, now)
            .await
            .unwrap(),
        b.len() as u64
    );
    let again = db.store.claim(run.id, claim("c", now, 500)).await.unwrap();
    assert_eq!(again.len(), b.len());
    assert!(again.iter().all(|c| c.attempts == 1 && c.status.is_some()));
    assert!(matches!(
        db.store.requeue(9999, DeliveryState::Failed, now).await,
        Err(herald::store::StoreError::NotFound(_))
    ));
}

both!(first_seen_adopts_the_site_once_then_stamps_new_articles_now);
async fn first_seen_adopts_the_site_once_then_stamps_new_articles_now(db: TestDb) {
    let art = |id: &str, day: u32| SeenArticle {
        id: id.into(),
        url: format!("https://e.org/{id}/"),
        slug: id.into(),
        published: at(day, 6),
    };
    let now = at(10, 12);
    let times = db
        .store
        .first_seen(&[art("a", 1), art("b", 5)], now)
        .await
        .unwrap();
    assert_eq!(times, [at(1, 6), at(5, 6)], "adoption: their own dates");
    // Another handle (a replica) sees a new, back-dated article later.
    let other = db.open_again().await;
    let later = at(11, 12);
    let times = other
        .first_seen(&[art("a", 1), art("b", 5), art("c", 2)], later)
        .await
        .unwrap();
    assert_eq!(times, [at(1, 6), at(5, 6), later]);
    // Its id changes, its URL does not: same time.
    let mut moved = art("c2", 2);
    moved.url = "https://e.org/c/".into();
    let times = db.store.first_seen(&[moved], at(12, 0)).await.unwrap();
    assert_eq!(times, [later]);
}

both!(undated_dates_and_the_signing_secret_are_the_first_writers);
async fn undated_dates_and_the_signing_secret_are_the_first_writers(db: TestDb) {
    let other = db.open_again().await;
    let mine = at(3, 1).fixed_offset();
    let theirs = at(4, 1).fixed_offset();
    let kept = db
        .store
        .share_undated(&[("notes/a.txt".into(), mine)], &[])
        .await
        .unwrap();
    assert_eq!(kept, [("notes/a.txt".to_string(), mine)]);
    let kept = other
        .share_undated(&[("notes/a.txt".into(), theirs)], &[])
        .await
        .unwrap();
    assert_eq!(
        kept,
        [("notes/a.txt".to_string(), mine)],
        "the first date wins"
    );
    other
        .share_undated(&[], &["notes/a.txt".into()])
        .await
        .unwrap();
    assert!(db.store.undated_dates().await.unwrap().is_empty());

    let first = db
        .store
        .shared_secret(b"first-secret-first-secret-first-s")
        .await
        .unwrap();
    let second = other
        .shared_secret(b"second-secret-second-secret-secon")
        .await
        .unwrap();
    assert_eq!(first, second, "every handle signs with one secret");
}

both!(the_shared_send_rate_hands_out_consecutive_windows);
async fn the_shared_send_rate_hands_out_consecutive_windows(db: TestDb) {
    let other = db.open_again().await;
    let now = at(5, 5);
    let step = std::time::Duration::from_millis(100);
    let a = db.store.reserve_sends(10, step, now).await.unwrap();
    let b = other.reserve_sends(10, step, now).await.unwrap();
    assert_eq!(a, now);
    assert_eq!(
        b,
        now + Duration::seconds(1),
        "the second replica waits its turn"
    );
    // Slots in the past are not handed out.
    let c = db.store.reserve_sends(1, step, at(6, 0)).await.unwrap();
    assert_eq!(c, at(6, 0));
}

/// Everything in `store`, part by part (for comparing two stores).
async fn dump(store: &dyn Store) -> Vec<herald::store::copy::Rows> {
    let mut all = Vec::new();
    for part in Part::ALL {
        all.push(store.export(part, None, 1_000_000).await.unwrap());
    }
    all
}

/// A store with a bit of everything: statuses, consent log, a run with
/// sent, bounced and uncertain deliveries, cursors, first-seen times.
async fn sample(store: &dyn Store) {
    let ids = subscribers(store, 40).await;
    store
        .unsubscribe(ids[3], at(2, 1), "one-click")
        .await
        .unwrap();
    store.unsubscribe(ids[4], at(2, 1), "bounce").await.unwrap();
    store
        .subscribe(NewSubscription {
            email: SubscriberEmail::parse("pending@example.net").unwrap(),
            name: Some("Pat".into()),
            schedules: vec!["weekly".into()],
            tags: vec![],
            at: at(2, 2),
            ip: Some("192.0.2.1".into()),
            source: "web-form".into(),
            confirmed_note: None,
        })
        .await
        .unwrap();
    store.arm_schedule("weekly", at(1, 0)).await.unwrap();
    let run = new_run(store, &ids, at(3, 8)).await.unwrap();
    let now = at(3, 8);
    let batch = store.claim(run.id, claim("x", now, 30)).await.unwrap();
    let outcomes: Vec<(i64, Outcome)> = batch
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let o = if i == 0 {
                Outcome::Bounced {
                    reply: "550 no".into(),
                }
            } else {
                Outcome::Sent { article_count: 3 }
            };
            (c.subscriber_id, o)
        })
        .collect();
    store.settle(&run, "x", &outcomes, now, 5).await.unwrap();
    store.claim(run.id, claim("y", now, 5)).await.unwrap();
    store.expire_leases(now + Duration::hours(1)).await.unwrap();
    let seen = SeenArticle {
        id: "a".into(),
        url: "https://e.org/a/".into(),
        slug: "a".into(),
        published: at(1, 1),
    };
    store.first_seen(&[seen], now).await.unwrap();
    store
        .share_undated(&[("u.txt".into(), at(1, 2).fixed_offset())], &[])
        .await
        .unwrap();
    // What bounces, complaints, erasure, announcements and the archive
    // leave behind.
    let complaint = Feedback {
        source: "ses".into(),
        event_id: Some("evt-1".into()),
        kind: FeedbackKind::Complaint,
        target: FeedbackTarget::Address(SubscriberEmail::parse("r00005@example.net").unwrap()),
        recipient: None,
        detail: "abuse".into(),
        at: now,
    };
    store.record_feedback(&complaint, 5).await.unwrap();
    store
        .forget(&SubscriberEmail::parse("gone@example.net").unwrap(), now)
        .await
        .unwrap();
    store
        .assign_archive_slug(run.id, "2026-03-03")
        .await
        .unwrap();
    let message = Announcement {
        audience: Audience::Tag("rust".into()),
        subject: "News".into(),
        html: "<p>News</p>".into(),
        text: "News".into(),
        archive: true,
    };
    let announced = store
        .create_announcement(NewAnnouncement {
            message: &message,
            now,
            deliveries: &[],
        })
        .await
        .unwrap();
    store
        .publish_issue(&Issue {
            run_id: announced.id,
            schedule: "announcements".into(),
            slug: "2026-03-03".into(),
            subject: "News".into(),
            published_at: now,
            html: "<p>News</p>".into(),
            summary: "News".into(),
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_copy_round_trips_sqlite_to_postgres_and_back() {
    let Some(pg) = TestDb::postgres().await else {
        return;
    };
    let source = TestDb::sqlite().await;
    sample(&*source.store).await;
    let counts = copy(&*source.store, &*pg.store, |_, _| {}).await.unwrap();
    assert!(counts.iter().all(|(_, n)| *n > 0), "{counts:?}");
    let back = TestDb::sqlite().await;
    copy(&*pg.store, &*back.store, |_, _| {}).await.unwrap();
    let (a, b, c) = (
        dump(&*source.store).await,
        dump(&*pg.store).await,
        dump(&*back.store).await,
    );
    assert_eq!(a, b, "SQLite -> PostgreSQL keeps every row");
    assert_eq!(a, c, "and back again");
    // Ids continue past the copied ones on PostgreSQL.
    let next = pg
        .store
        .subscribe(NewSubscription {
            email: SubscriberEmail::parse("after@example.net").unwrap(),
            name: None,
            schedules: vec![],
            tags: vec![],
            at: at(9, 9),
            ip: None,
            source: "cli".into(),
            confirmed_note: None,
        })
        .await
        .unwrap();
    let herald::store::SubscribeOutcome::Pending(s) = next else {
        panic!("{next:?}")
    };
    assert_eq!(s.id, 42);
    // A second copy into a store with data is refused.
    let again = copy(&*source.store, &*pg.store, |_, _| {}).await;
    assert!(matches!(again, Err(herald::store::StoreError::Conflict(_))));
}
