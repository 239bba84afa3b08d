//! Double opt-in over the running daemon: real HTTP on port 0, a real SMTP
//! server (Python's aiosmtpd) on loopback receiving the confirmation mail,
//! a real SQLite file.

use std::time::Duration;

use herald::base::shutdown::Shutdown;
use herald::store::{SqliteStore, Status, SubscriberEmail, Subscribers};
use herald::subscribers::tokens::{Purpose, Signer};
use reqwest::StatusCode;

use crate::helpers::TestSite;
use crate::smtp::SmtpServer;

pub(crate) struct App {
    pub(crate) site: TestSite,
    pub(crate) smtp: SmtpServer,
    pub(crate) base: String,
    pub(crate) shutdown: Shutdown,
    pub(crate) task: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub(crate) client: reqwest::Client,
}

impl App {
    /// `None` when the SMTP server cannot run here (outside CI only).
    pub(crate) async fn start(per_ip: u32) -> Option<App> {
        let smtp = SmtpServer::start()?;
        let mut site = TestSite::new();
        site.write(
            "a.md",
            "+++\ntitle = \"Alpha\"\ndate = 2024-01-02T00:00:00Z\ntags = [\"rust\"]\n+++\nBody.\n",
        );
        site.extra = format!(
            r#"[rescan]
schedule = "0 0 * * * *"
[subscribers]
tags = ["rust", "web"]
max_requests_per_ip_per_hour = {per_ip}
[mail]
transport = "smtp"
from = "Herald Test <news@example.org>"
[mail.smtp]
host = "127.0.0.1"
port = {port}
tls = "none"
[[digest]]
name = "weekly"
description = "Every Monday"
schedule = "0 0 8 * * Mon"
[[digest]]
name = "daily"
schedule = "0 0 8 * * *"
[[feeds.section]]
path = "news"
title = "Station news"
"#,
            port = smtp.port()
        );
        let config = site.config();
        let (base, shutdown, task) = crate::helpers::spawn_daemon(config).await;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let app = App {
            site,
            smtp,
            base,
            shutdown,
            task,
            client,
        };
        app.wait_until("the daemon answers", || async {
            app.client
                .get(format!("{}/healthz", app.base))
                .send()
                .await
                .is_ok()
        })
        .await;
        Some(app)
    }

    pub(crate) async fn wait_until<F, Fut>(&self, what: &str, check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        crate::helpers::eventually(what, check).await
    }

    pub(crate) async fn subscribe(&self, form: &[(&str, &str)]) -> (StatusCode, String) {
        let r = self
            .client
            .post(format!("{}/subscribe", self.base))
            .form(form)
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    }

    /// A link that manages subscriber `id`'s preferences for 30 days.
    pub(crate) fn manage_token(&self, id: i64) -> String {
        self.signer().sign(
            Purpose::Manage,
            id,
            chrono::Utc::now() + chrono::Duration::days(30),
        )
    }

    /// Posts the preferences form with `token`.
    pub(crate) async fn save_preferences(&self, token: &str, form: &[(&str, &str)]) -> StatusCode {
        self.client
            .post(format!("{}/preferences?token={token}", self.base))
            .form(form)
            .send()
            .await
            .unwrap()
            .status()
    }

    pub(crate) async fn get(&self, path_and_query: &str) -> (StatusCode, String) {
        let r = self
            .client
            .get(format!("{}{path_and_query}", self.base))
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    }

    /// Messages the SMTP server received for `rcpt`, parsed.
    pub(crate) fn mail_to(&self, rcpt: &str) -> Vec<Vec<u8>> {
        self.smtp
            .messages()
            .into_iter()
            .filter(|(to, _)| to.eq_ignore_ascii_case(rcpt))
            .map(|(_, raw)| raw)
            .collect()
    }

    pub(crate) async fn wait_for_mail(&self, rcpt: &str) -> Vec<u8> {
        self.wait_until(&format!("mail reaches {rcpt}"), || async {
            !self.mail_to(rcpt).is_empty()
        })
        .await;
        self.mail_to(rcpt).pop().unwrap()
    }

    /// The site's own path of the link (the link points at the public URL).
    pub(crate) fn local(&self, link: &str) -> String {
        let url = url::Url::parse(link).unwrap();
        format!("{}?{}", url.path(), url.query().unwrap_or(""))
    }

    pub(crate) async fn db(&self) -> SqliteStore {
        SqliteStore::open(&self.site.data.join("herald.sqlite3"))
            .await
            .unwrap()
    }

    pub(crate) async fn status_of(&self, email: &str) -> Option<Status> {
        self.db()
            .await
            .find(&SubscriberEmail::parse(email).unwrap())
            .await
            .unwrap()
            .map(|s| s.status)
    }

    pub(crate) fn signer(&self) -> Signer {
        let secret = std::fs::read_to_string(self.site.data.join("signing-secret")).unwrap();
        Signer::new(secret.trim().as_bytes()).unwrap()
    }

    pub(crate) async fn stop(self) {
        self.shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("daemon stops")
            .unwrap()
            .expect("daemon returns Ok");
    }
}

/// The confirmation link in a received message's text part.
fn confirm_link(raw: &[u8]) -> String {
    let msg = mail_parser::MessageParser::default()
        .parse(raw)
        .expect("valid MIME");
    let text = msg.body_text(0).expect("a text part").to_string();
    text.split_whitespace()
        .find(|w| w.contains("/confirm?token="))
        .expect("a confirmation link in the text part")
        .to_string()
}

/// Subscribes `email` and follows the mailed link; returns the subscriber id.
async fn subscribed(app: &App, email: &str) -> i64 {
    let (status, _) = app
        .subscribe(&[("email", email), ("schedule", "weekly"), ("tag", "rust")])
        .await;
    assert_eq!(status, StatusCode::OK);
    let raw = app.wait_for_mail(email).await;
    let (status, page) = app.get(&app.local(&confirm_link(&raw))).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let sub = app
        .db()
        .await
        .find(&SubscriberEmail::parse(email).unwrap())
        .await
        .unwrap()
        .unwrap();
    sub.id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribing_mails_a_confirmation_whose_link_makes_the_subscriber_active() {
    let Some(app) = App::start(1000).await else {
        return;
    };
    let (status, page) = app
        .subscribe(&[
            ("email", "Ann@Example.org"),
            ("schedule", "weekly"),
            ("tag", "rust"),
        ])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Check your inbox"), "{page}");
    assert_eq!(
        app.status_of("ann@example.org").await,
        Some(Status::Pending),
        "nothing active before the link"
    );

    let raw = app.wait_for_mail("Ann@example.org").await;
    let msg = mail_parser::MessageParser::default()
        .parse(&raw[..])
        .unwrap();
    assert_eq!(
        msg.subject(),
        Some("Confirm your subscription to Test Site")
    );
    // (Handlebars writes `=` as `&#x3D;` in HTML; browsers read it back.)
    assert!(msg
        .body_html(0)
        .unwrap()
        .contains("https://example.org/confirm?token"));
    let link = confirm_link(&raw);
    assert!(
        link.starts_with("https://example.org/confirm?token="),
        "{link}"
    );

    let (status, page) = app.get(&app.local(&link)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("You are subscribed"), "{page}");
    let sub = app
        .db()
        .await
        .find(&SubscriberEmail::parse("ann@example.org").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sub.status, Status::Active);
    assert_eq!(sub.schedules, ["weekly"]);
    assert_eq!(sub.tags, ["rust"]);
    assert_eq!(sub.consent.source, "web-form");
    assert_eq!(sub.consent.requested_ip.as_deref(), Some("127.0.0.1"));
    assert!(sub.consent.confirmed_at.is_some());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_tampered_and_random_tokens_are_refused_and_change_nothing() {
    let Some(app) = App::start(1000).await else {
        return;
    };
    app.subscribe(&[("email", "bo@example.org")]).await;
    let raw = app.wait_for_mail("bo@example.org").await;
    let link = app.local(&confirm_link(&raw));
    let id = app
        .db()
        .await
        .find(&SubscriberEmail::parse("bo@example.org").unwrap())
        .await
        .unwrap()
        .unwrap()
        .id;

    let expired = app.signer().sign(
        Purpose::Confirm,
        id,
        chrono::Utc::now() - chrono::Duration::minutes(1),
    );
    let (status, page) = app.get(&format!("/confirm?token={expired}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("expired"), "{page}");

    let mut tampered = link.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let (status, page) = app.get(&tampered).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("not valid"), "{page}");

    // A management token is not a confirmation token.
    let manage = app.signer().sign(
        Purpose::Manage,
        id,
        chrono::Utc::now() + chrono::Duration::days(1),
    );
    assert_eq!(
        app.get(&format!("/confirm?token={manage}")).await.0,
        StatusCode::BAD_REQUEST
    );

    // 10,000 random tokens of the real length, over HTTP, 16 at a time.
    let token_len = link.split("token=").nth(1).unwrap().len();
    let alphabet: Vec<char> = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
        .chars()
        .collect();
    let mut seed: u64 = 0x5eed;
    let mut accepted = 0;
    for _batch in 0..625 {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..16 {
            let token: String = (0..token_len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    alphabet[(seed % alphabet.len() as u64) as usize]
                })
                .collect();
            let (client, base) = (app.client.clone(), app.base.clone());
            set.spawn(async move {
                let path = if token.len().is_multiple_of(2) {
                    "confirm"
                } else {
                    "unsubscribe"
                };
                client
                    .get(format!("{base}/{path}?token={token}"))
                    .send()
                    .await
                    .unwrap()
                    .status()
            });
        }
        while let Some(status) = set.join_next().await {
            if status.unwrap() != StatusCode::BAD_REQUEST {
                accepted += 1;
            }
        }
    }
    assert_eq!(accepted, 0, "random tokens accepted");
    assert_eq!(
        app.status_of("bo@example.org").await,
        Some(Status::Pending),
        "still pending after all that"
    );

    // The real link still works.
    assert_eq!(app.get(&link).await.0, StatusCode::OK);
    assert_eq!(app.status_of("bo@example.org").await, Some(Status::Active));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_on_an_unsubscribe_link_changes_nothing_and_the_one_click_post_unsubscribes() {
    let Some(app) = App::start(1000).await else {
        return;
    };
    let id = subscribed(&app, "cy@example.org").await;
    let token = app.signer().sign(
        Purpose::Manage,
        id,
        chrono::Utc::now() + chrono::Duration::days(30),
    );

    for _ in 0..3 {
        let (status, page) = app.get(&format!("/unsubscribe?token={token}")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains("<button"), "a button, not an action: {page}");
    }
    assert_eq!(
        app.status_of("cy@example.org").await,
        Some(Status::Active),
        "GET changed nothing"
    );

    // RFC 8058: the provider POSTs this body, with no cookies and no auth.
    let r = app
        .client
        .post(format!("{}/unsubscribe?token={token}", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "200, no redirect");
    assert!(r.headers().get("location").is_none());
    let sub = app.db().await.get(id).await.unwrap().unwrap();
    assert_eq!(sub.status, Status::Unsubscribed);
    assert_eq!(sub.consent.left_how.as_deref(), Some("one-click"));
    assert!(sub.consent.left_at.is_some());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_preferences_page_changes_schedules_and_tags() {
    let Some(app) = App::start(1000).await else {
        return;
    };
    let id = subscribed(&app, "di@example.org").await;
    let token = app.manage_token(id);
    let (status, page) = app.get(&format!("/preferences?token={token}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("value=\"daily\""), "{page}");
    let status = app
        .save_preferences(
            &token,
            &[
                ("schedule", "daily"),
                ("schedule", "weekly"),
                ("tag", "web"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let sub = app.db().await.get(id).await.unwrap().unwrap();
    let mut schedules = sub.schedules.clone();
    schedules.sort();
    assert_eq!(schedules, ["daily", "weekly"]);
    assert_eq!(sub.tags, ["web"]);
    let status = app
        .save_preferences(&token, &[("tag", "not-offered")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_subscribe_form_and_preferences_offer_the_configured_sections() {
    let Some(app) = App::start(1000).await else {
        return;
    };
    let (status, form) = app.get("/subscribe").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        form.contains("<input type=\"checkbox\" name=\"tag\" value=\"section:news\"> Station news"),
        "{form}"
    );
    let id = subscribed(&app, "sections@example.org").await;
    let token = app.manage_token(id);
    let status = app
        .save_preferences(
            &token,
            &[
                ("schedule", "weekly"),
                ("tag", "section:news"),
                ("tag", "rust"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let sub = app.db().await.get(id).await.unwrap().unwrap();
    assert_eq!(sub.tags, ["rust", "section:news"]);
    let (_, page) = app.get(&format!("/preferences?token={token}")).await;
    assert!(
        page.contains("value=\"section:news\" checked> Station news"),
        "{page}"
    );
    // Only configured sections are offered.
    let status = app
        .save_preferences(&token, &[("tag", "section:secret")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_subscribe_requests_from_one_ip_are_limited() {
    let Some(app) = App::start(3).await else {
        return;
    };
    for i in 0..3 {
        let (status, _) = app
            .subscribe(&[("email", &format!("r{i}@example.org"))])
            .await;
        assert_eq!(status, StatusCode::OK, "request {i}");
    }
    let r = app
        .client
        .post(format!("{}/subscribe", app.base))
        .form(&[("email", "r9@example.org")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().get("retry-after").is_some());
    assert_eq!(
        app.status_of("r9@example.org").await,
        None,
        "the limited request stored nothing"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_answer_for_a_known_and_an_unknown_address_is_identical_and_resends_are_throttled() {
    let Some(app) = App::start(1000).await else {
        return;
    };
    subscribed(&app, "known@example.org").await;
    let known = app.subscribe(&[("email", "known@example.org")]).await;
    let unknown = app.subscribe(&[("email", "unknown@example.org")]).await;
    assert_eq!(known, unknown, "status and body are the same");

    // A second request for a pending address within resend_after sends no
    // second email.
    app.wait_for_mail("unknown@example.org").await;
    let again = app.subscribe(&[("email", "unknown@example.org")]).await;
    assert_eq!(again, unknown);
    let received = app.smtp.stats()["messages_accepted"].as_u64().unwrap_or(0);
    assert_eq!(
        app.mail_to("unknown@example.org").len(),
        1,
        "one confirmation only"
    );
    assert_eq!(
        app.mail_to("known@example.org").len(),
        1,
        "active subscribers get no new confirmation"
    );
    assert!(received >= 2);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addresses_with_cr_lf_or_300_characters_are_refused_before_reaching_the_mail_server() {
    let Some(app) = App::start(1000).await else {
        return;
    };
    let long = format!("{}@example.org", "a".repeat(288));
    assert_eq!(long.chars().count(), 300);
    for bad in [
        "eve@example.org\r\nBcc: all@example.org",
        "eve@example.org\n",
        long.as_str(),
        "not-an-address",
        "",
    ] {
        let (status, page) = app.subscribe(&[("email", bad)]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad:?}");
        assert!(page.contains("Please check the form"), "{page}");
        assert!(
            !page.contains("Bcc"),
            "input with line breaks is not echoed back"
        );
    }
    let stats = app.smtp.stats();
    assert_eq!(
        stats["connections"].as_u64().unwrap_or(0),
        0,
        "nothing reached the mail server: {stats}"
    );
    assert!(app.smtp.messages().is_empty());
    assert!(
        app.db()
            .await
            .list(&Default::default())
            .await
            .unwrap()
            .is_empty(),
        "nothing stored"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_subscribe_form_offers_the_configured_choices_and_works_without_javascript() {
    let Some(app) = App::start(1000).await else {
        return;
    };
    let (status, page) = app.get("/subscribe").await;
    assert_eq!(status, StatusCode::OK);
    for needle in [
        "<form method=\"post\" action=\"/subscribe\"",
        "type=\"email\"",
        "<label for=\"email\">",
        "value=\"weekly\"",
        "Every Monday",
        "value=\"daily\"",
        "value=\"rust\"",
        "value=\"web\"",
    ] {
        assert!(page.contains(needle), "{needle} in {page}");
    }
    assert!(!page.contains("<script"), "no JavaScript");
    app.stop().await;
}
