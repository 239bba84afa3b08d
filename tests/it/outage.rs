//! A database outage seen from the outside: herald on PostgreSQL, the
//! subscribers table locked by someone else past the statement timeout. A
//! reader following a perfectly good confirmation link is told to try
//! again in a few minutes (503), never that the link is not valid; once
//! the database answers, the same link works. And with PostgreSQL a
//! signing secret generated for one machine is refused at start.

use chrono::Utc;
use herald::config::DatabaseLocation;
use herald::store::{open_location, NewSubscription, SubscribeOutcome, SubscriberEmail};
use herald::subscribers::tokens::{Purpose, Signer};
use sqlx::Connection;

use crate::helpers::{spawn_daemon, TestSite};
use crate::pg::{self, PASSWORD};

const SECRET: &str = "an outage test signing secret of 32+ bytes";

fn site(url: &url::Url) -> TestSite {
    let mut site = TestSite::new();
    site.write(
        "a.md",
        "+++\ntitle = \"A\"\ndate = 2024-01-02T00:00:00Z\n+++\nBody.\n",
    );
    site.extra = format!(
        "[rescan]\nwatch = false\n[subscribers]\ndatabase = \"{url}\"\ndatabase_statement_timeout = \"500ms\"\n[[digest]]\nname = \"weekly\"\nschedule = \"0 0 8 * * Mon\"\n"
    );
    site
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_asks_the_reader_to_retry_and_never_calls_the_link_invalid() {
    let Some(cluster) = pg::cluster() else {
        return;
    };
    let url = cluster.fresh_db().await;
    let site = site(&url);
    let env = [
        (
            "HERALD_SUBSCRIBERS__DATABASE_PASSWORD".to_string(),
            PASSWORD.to_string(),
        ),
        ("HERALD_SUBSCRIBERS__SECRET".to_string(), SECRET.to_string()),
    ];
    let config = herald::config::Config::parse_with_env(&site.config_text(), env).unwrap();
    let store = open_location(&DatabaseLocation::Postgres(url.clone()), &pg::options())
        .await
        .unwrap();
    let outcome = store
        .subscribe(NewSubscription {
            email: SubscriberEmail::parse("ann@example.net").unwrap(),
            name: None,
            schedules: vec!["weekly".into()],
            tags: vec![],
            at: Utc::now(),
            ip: None,
            source: "web-form".into(),
            confirmed_note: None,
        })
        .await
        .unwrap();
    let SubscribeOutcome::Pending(ann) = outcome else {
        panic!("{outcome:?}")
    };
    let token = Signer::new(SECRET.as_bytes()).unwrap().sign(
        Purpose::Confirm,
        ann.id,
        Utc::now() + chrono::Duration::hours(1),
    );
    let (base, shutdown, task) = spawn_daemon(config).await;
    let client = reqwest::Client::new();
    crate::helpers::eventually("the daemon is ready", || async {
        client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;

    // Someone holds the table longer than herald's statement timeout.
    let mut admin_url = url.clone();
    admin_url.set_password(Some(PASSWORD)).unwrap();
    let mut locker = sqlx::PgConnection::connect(admin_url.as_str())
        .await
        .unwrap();
    sqlx::query("BEGIN").execute(&mut locker).await.unwrap();
    sqlx::query("LOCK TABLE subscribers IN ACCESS EXCLUSIVE MODE")
        .execute(&mut locker)
        .await
        .unwrap();
    let res = client
        .get(format!("{base}/confirm?token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert!(res.headers().contains_key("retry-after"));
    let body = res.text().await.unwrap();
    assert!(body.contains("try again"), "{body}");
    assert!(!body.contains("not valid"), "{body}");

    sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
    let res = client
        .get(format!("{base}/confirm?token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        200,
        "the same link works once the database answers"
    );
    shutdown.trigger();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_refuses_a_signing_secret_generated_for_one_machine() {
    let Some(cluster) = pg::cluster() else {
        return;
    };
    let url = cluster.fresh_db().await;
    let site = site(&url);
    std::fs::create_dir_all(&site.data).unwrap();
    std::fs::write(site.data.join("signing-secret"), "ab".repeat(32)).unwrap();
    let env = [(
        "HERALD_SUBSCRIBERS__DATABASE_PASSWORD".to_string(),
        PASSWORD.to_string(),
    )];
    let config = herald::config::Config::parse_with_env(&site.config_text(), env).unwrap();
    let (_base, _shutdown, task) = spawn_daemon(config.clone()).await;
    let err = format!("{:#}", task.await.unwrap().unwrap_err());
    assert!(
        err.contains("signing-secret") && err.contains("every replica"),
        "{err}"
    );
    // Without the file, the replicas share one secret kept in the database.
    std::fs::remove_file(site.data.join("signing-secret")).unwrap();
    let store = herald::store::open(&config).await.unwrap();
    let a = Signer::for_store(&config, &*store).await.unwrap();
    let b = Signer::for_store(&config, &*store).await.unwrap();
    let token = a.sign(Purpose::Manage, 7, Utc::now() + chrono::Duration::hours(1));
    assert_eq!(b.verify(&token, Purpose::Manage, Utc::now()), Ok(7));
}
