//! The providers' webhooks over a real socket (herald's router served on
//! loopback): Amazon SES through SNS (RSA signatures, SignatureVersion 1
//! and 2, checked against a certificate this test makes with openssl and
//! serves through the injected fetcher, which is only ever asked for SNS
//! hosts; subscription confirmation), Postmark (HTTP Basic), Mailgun
//! (HMAC-SHA256) and SendGrid (ECDSA P-256). For each: a valid call is
//! applied, a forged one is 401 with nothing changed, a replay is applied
//! once. Unconfigured endpoints are 404; bodies are bounded.

use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::Utc;
use herald::base::shutdown::Shutdown;
use herald::config::Config;
use herald::store::{ListFilter, Status, Store, SubscriberEmail};
use herald::subscribers::bounces::webhooks::sns::SnsFetch;
use herald::subscribers::bounces::webhooks::Webhooks;
use herald::subscribers::bounces::Bounces;
use herald::subscribers::tokens::Signer;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair};
use serde_json::{json, Value};
use url::Url;

use crate::helpers::TestSite;

const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:herald-feedback";
const CERT_URL: &str = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem";
const MAILGUN_KEY: &str = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0";
const POSTMARK_PASSWORD: &str = "correct horse battery staple";

/// Serves the test's certificate for [`CERT_URL`] and answers every other
/// (SNS) URL with "OK", recording what was asked.
struct TestFetch {
    cert_pem: Vec<u8>,
    asked: Arc<Mutex<Vec<String>>>,
}

#[async_trait::async_trait]
impl SnsFetch for TestFetch {
    async fn get(&self, url: &Url) -> anyhow::Result<Vec<u8>> {
        self.asked.lock().unwrap().push(url.to_string());
        if url.as_str() == CERT_URL {
            Ok(self.cert_pem.clone())
        } else {
            Ok(b"<ConfirmSubscriptionResponse/>".to_vec())
        }
    }
}

/// An RSA key (its PEM file) and a self-signed certificate (PEM) for the
/// SNS host, made with openssl; `None` when openssl is missing outside CI.
fn sns_key_and_cert(dir: &std::path::Path) -> Option<(std::path::PathBuf, Vec<u8>)> {
    let key = dir.join("sns.key");
    let cert = dir.join("sns.pem");
    let made = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=sns.us-east-1.amazonaws.com", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output();
    match made {
        Ok(o) => assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr)),
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("SKIPPED: openssl not runnable: {e}");
            return None;
        }
        Err(e) => panic!("openssl not runnable in CI: {e}"),
    }
    Some((key, std::fs::read(&cert).unwrap()))
}

/// An SNS message signed with `key` (SignatureVersion `version`).
fn sns(key: &std::path::Path, version: &str, kind: &str, id: &str, message: &str) -> Value {
    let ts = "2026-11-30T08:00:00.000Z";
    let subscribe =
        "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=x&Token=t";
    let text = if kind == "Notification" {
        format!("Message\n{message}\nMessageId\n{id}\nTimestamp\n{ts}\nTopicArn\n{TOPIC}\nType\n{kind}\n")
    } else {
        format!("Message\n{message}\nMessageId\n{id}\nSubscribeURL\n{subscribe}\nTimestamp\n{ts}\nToken\nt\nTopicArn\n{TOPIC}\nType\n{kind}\n")
    };
    // SHA-1 signatures are only verified by ring, not made: openssl signs.
    let mut child = std::process::Command::new("openssl")
        .args([
            "dgst",
            if version == "1" { "-sha1" } else { "-sha256" },
            "-sign",
        ])
        .arg(key)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), text.as_bytes()).unwrap();
    let sig = child.wait_with_output().unwrap().stdout;
    let mut v = json!({
        "Type": kind,
        "MessageId": id,
        "TopicArn": TOPIC,
        "Message": message,
        "Timestamp": ts,
        "SignatureVersion": version,
        "Signature": STANDARD.encode(sig),
        "SigningCertURL": CERT_URL,
    });
    if kind != "Notification" {
        v["SubscribeURL"] = subscribe.into();
        v["Token"] = "t".into();
    }
    v
}

fn ses_bounce(address: &str) -> String {
    json!({
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": "Permanent",
            "bounceSubType": "General",
            "bouncedRecipients": [{"emailAddress": address, "action": "failed", "status": "5.1.1",
                                   "diagnosticCode": "smtp; 550 5.1.1 user unknown"}],
            "timestamp": "2026-11-30T08:00:00.000Z",
            "feedbackId": "0100018c-bounce"
        },
        "mail": {"messageId": "0100018c-ses", "source": "news@example.org",
                 "commonHeaders": {"messageId": "<not-herald@example.org>"}}
    })
    .to_string()
}

struct App {
    base: String,
    store: Arc<dyn Store>,
    client: reqwest::Client,
    shutdown: Shutdown,
}

impl App {
    async fn post(
        &self,
        path: &str,
        headers: &[(&str, String)],
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, String) {
        let mut req = self.client.post(format!("{}{path}", self.base)).body(body);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        (status, res.text().await.unwrap_or_default())
    }

    async fn status(&self, who: &str) -> Status {
        self.store
            .find(&SubscriberEmail::parse(&format!("{who}@example.net")).unwrap())
            .await
            .unwrap()
            .unwrap()
            .status
    }

    async fn events(&self, who: &str, event: &str) -> usize {
        self.store
            .consent_log(&SubscriberEmail::parse(&format!("{who}@example.net")).unwrap())
            .await
            .unwrap()
            .iter()
            .filter(|e| e.event == event)
            .count()
    }
}

async fn serve(config: Config, webhooks: Option<Webhooks>, store: Arc<dyn Store>) -> App {
    let config = Arc::new(config);
    let state = herald::http::AppState {
        config: Arc::clone(&config),
        served: Arc::new(herald::base::served::ServedFeeds::new()),
        metrics: Arc::new(herald::base::metrics::Metrics::new()),
        ready: Arc::new(herald::base::ready::Readiness::ready()),
        templates: Arc::new(herald::templates::Templates::load(None).unwrap()),
        subscriptions: None,
        store: Some(Arc::clone(&store)),
        webhooks: webhooks.map(Arc::new),
        counts: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = Shutdown::new();
    tokio::spawn(herald::http::serve(
        listener,
        herald::http::router(state),
        shutdown.signal(),
        std::time::Duration::from_secs(1),
    ));
    App {
        base,
        store,
        client: reqwest::Client::new(),
        shutdown,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_providers_webhook_applies_signed_events_once_and_refuses_forgeries() {
    let dir = tempfile::tempdir().unwrap();
    let Some((sns_key, cert_pem)) = sns_key_and_cert(dir.path()) else {
        return;
    };
    let rng = SystemRandom::new();
    let sg_pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .unwrap();
    let sg_key = EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        sg_pkcs8.as_ref(),
        &rng,
    )
    .unwrap();
    // The verification key as SendGrid shows it: a base64 SPKI.
    let mut spki = hex::decode("3059301306072a8648ce3d020106082a8648ce3d030107034200").unwrap();
    spki.extend_from_slice(sg_key.public_key().as_ref());
    let mut site = TestSite::new();
    site.extra = format!(
        r#"
[mail]
bounce_limit = 1

[webhooks]
max_body_size = "64 KiB"

[webhooks.ses]
topic_arns = ["{TOPIC}"]

[webhooks.postmark]
username = "postmark"

[webhooks.sendgrid]
public_key = "{}"
"#,
        STANDARD.encode(&spki)
    );
    let env = [
        (
            "HERALD_WEBHOOKS__MAILGUN__SIGNING_KEY".to_string(),
            MAILGUN_KEY.to_string(),
        ),
        (
            "HERALD_WEBHOOKS__POSTMARK__PASSWORD".to_string(),
            POSTMARK_PASSWORD.to_string(),
        ),
    ];
    let config = Config::parse_with_env(&site.config_text(), env).unwrap();
    let store = herald::store::open(&config).await.unwrap();
    let readers = [
        "sam", "tom", "ula", "pm", "pm2", "mg", "mg2", "sg", "sg2", "sg3",
    ];
    let addresses: Vec<String> = readers.iter().map(|r| format!("{r}@example.net")).collect();
    let rows: Vec<(&str, &[&str], &[&str])> = addresses
        .iter()
        .map(|a| (a.as_str(), &[][..], &[][..]))
        .collect();
    crate::helpers::add_active(&*store, &rows).await;
    let asked = Arc::new(Mutex::new(Vec::new()));
    let fetch = TestFetch {
        cert_pem,
        asked: Arc::clone(&asked),
    };
    let bounces = Arc::new(Bounces::new(
        Arc::new(config.clone()),
        Arc::clone(&store),
        Signer::new(&[7; 32]).unwrap(),
    ));
    let webhooks = Webhooks::new(&config, bounces, Box::new(fetch)).unwrap();
    assert!(webhooks.any());
    let app = serve(config.clone(), Some(webhooks), Arc::clone(&store)).await;
    let json_body = |v: &Value| v.to_string();

    // SES through SNS: subscription confirmation, then notifications.
    let confirm = sns(
        &sns_key,
        "1",
        "SubscriptionConfirmation",
        "sub-1",
        "You have chosen to subscribe",
    );
    let (code, _) = app.post("/webhooks/ses", &[], json_body(&confirm)).await;
    assert_eq!(code, StatusCode::OK);
    assert!(asked
        .lock()
        .unwrap()
        .iter()
        .any(|u| u.contains("Action=ConfirmSubscription")));
    let bounce = sns(
        &sns_key,
        "1",
        "Notification",
        "n-1",
        &ses_bounce("sam@example.net"),
    );
    let (code, text) = app.post("/webhooks/ses", &[], json_body(&bounce)).await;
    assert_eq!(code, StatusCode::OK, "{text}");
    assert!(text.contains("\"applied\":1"), "{text}");
    assert_eq!(app.status("sam").await, Status::Bounced);
    let (code, text) = app.post("/webhooks/ses", &[], json_body(&bounce)).await;
    assert_eq!(code, StatusCode::OK);
    assert!(text.contains("\"duplicates\":1"), "{text}");
    assert_eq!(
        app.events("sam", "bounce").await,
        1,
        "replayed: applied once"
    );
    // Forged: the message changed after signing; a certificate elsewhere.
    let mut forged = sns(
        &sns_key,
        "1",
        "Notification",
        "n-2",
        &ses_bounce("tom@example.net"),
    );
    forged["Message"] = ses_bounce("ula@example.net").into();
    assert_eq!(
        app.post("/webhooks/ses", &[], json_body(&forged)).await.0,
        StatusCode::UNAUTHORIZED
    );
    let mut elsewhere = sns(
        &sns_key,
        "1",
        "Notification",
        "n-3",
        &ses_bounce("tom@example.net"),
    );
    elsewhere["SigningCertURL"] = "https://sns.us-east-1.amazonaws.com.evil.example/x.pem".into();
    assert_eq!(
        app.post("/webhooks/ses", &[], json_body(&elsewhere))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let mut other_topic = sns(
        &sns_key,
        "1",
        "Notification",
        "n-4",
        &ses_bounce("tom@example.net"),
    );
    other_topic["TopicArn"] = "arn:aws:sns:us-east-1:999999999999:other".into();
    assert_eq!(
        app.post("/webhooks/ses", &[], json_body(&other_topic))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert!(asked
        .lock()
        .unwrap()
        .iter()
        .all(|u| u.starts_with("https://sns.us-east-1.amazonaws.com/")));
    assert_eq!(app.status("tom").await, Status::Active);
    assert_eq!(app.status("ula").await, Status::Active);
    // SignatureVersion 2 (SHA-256), a complaint.
    let complaint = json!({
        "notificationType": "Complaint",
        "complaint": {"complainedRecipients": [{"emailAddress": "ula@example.net"}],
                      "complaintFeedbackType": "abuse", "feedbackId": "c-1"},
        "mail": {"messageId": "x", "source": "news@example.org"}
    })
    .to_string();
    let v2 = sns(&sns_key, "2", "Notification", "n-5", &complaint);
    assert_eq!(
        app.post("/webhooks/ses", &[], json_body(&v2)).await.0,
        StatusCode::OK
    );
    assert_eq!(app.status("ula").await, Status::Complained);

    // Postmark: HTTP Basic credentials.
    let basic = |pass: &str| format!("Basic {}", STANDARD.encode(format!("postmark:{pass}")));
    let pm = json!({"RecordType": "Bounce", "ID": 4323372036854775807u64, "Type": "HardBounce",
                    "TypeCode": 1, "Email": "pm@example.net", "Details": "smtp;550 5.1.1 unknown",
                    "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483"});
    let (code, _) = app
        .post(
            "/webhooks/postmark",
            &[("authorization", basic(POSTMARK_PASSWORD))],
            json_body(&pm),
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(app.status("pm").await, Status::Bounced);
    let (_, text) = app
        .post(
            "/webhooks/postmark",
            &[("authorization", basic(POSTMARK_PASSWORD))],
            json_body(&pm),
        )
        .await;
    assert!(text.contains("\"duplicates\":1"), "{text}");
    let spam = json!({"RecordType": "SpamComplaint", "ID": 99, "Type": "SpamComplaint", "Email": "pm2@example.net"});
    for auth in [basic("wrong"), String::new()] {
        let (code, _) = app
            .post(
                "/webhooks/postmark",
                &[("authorization", auth)],
                json_body(&spam),
            )
            .await;
        assert_eq!(code, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(app.status("pm2").await, Status::Active);

    // Mailgun: HMAC-SHA256 of timestamp and token.
    let mailgun = |ts: i64, token: &str, event: Value, key: &str| {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(format!("{ts}{token}").as_bytes());
        let sig = hex::encode(mac.finalize().into_bytes());
        json!({"signature": {"timestamp": ts.to_string(), "token": token, "signature": sig},
               "event-data": event})
    };
    let failed = json!({"event": "failed", "severity": "permanent", "id": "mg-evt-1",
                        "recipient": "mg@example.net", "reason": "bounce",
                        "delivery-status": {"code": 550, "message": "5.1.1 no such user"},
                        "message": {"headers": {"message-id": "x@example.org"}}});
    let now = Utc::now().timestamp();
    let good = mailgun(
        now,
        "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0",
        failed.clone(),
        MAILGUN_KEY,
    );
    assert_eq!(
        app.post("/webhooks/mailgun", &[], json_body(&good)).await.0,
        StatusCode::OK
    );
    assert_eq!(app.status("mg").await, Status::Bounced);
    let (_, text) = app.post("/webhooks/mailgun", &[], json_body(&good)).await;
    assert!(text.contains("\"duplicates\":1"), "{text}");
    let complained =
        json!({"event": "complained", "id": "mg-evt-2", "recipient": "mg2@example.net"});
    for forged in [
        mailgun(now, "tok", complained.clone(), "some-other-key"),
        mailgun(now - 7200, "tok", complained.clone(), MAILGUN_KEY),
    ] {
        assert_eq!(
            app.post("/webhooks/mailgun", &[], json_body(&forged))
                .await
                .0,
            StatusCode::UNAUTHORIZED
        );
    }
    // Mailgun signs timestamp and token, not the body: a captured
    // signature with another event in it changes nothing (the token was
    // used), while a fresh one applies.
    let mut swapped = good.clone();
    swapped["event-data"] = complained.clone();
    let (code, text) = app
        .post("/webhooks/mailgun", &[], json_body(&swapped))
        .await;
    assert_eq!(code, StatusCode::OK);
    assert!(text.contains("\"duplicates\":1"), "{text}");
    assert_eq!(app.status("mg2").await, Status::Active);
    let fresh = mailgun(now, "f1e2d3c4b5a6", complained, MAILGUN_KEY);
    assert_eq!(
        app.post("/webhooks/mailgun", &[], json_body(&fresh))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(app.status("mg2").await, Status::Complained);

    // SendGrid: ECDSA P-256 over timestamp and body.
    let events = json!([
        {"email": "sg@example.net", "event": "bounce", "type": "bounce", "sg_event_id": "sg-1",
         "status": "5.1.1", "reason": "550 5.1.1 unknown", "smtp-id": "<x@example.org>"},
        {"email": "sg2@example.net", "event": "spamreport", "sg_event_id": "sg-2"},
        {"email": "sg3@example.net", "event": "delivered", "sg_event_id": "sg-3"}
    ])
    .to_string();
    let ts = now.to_string();
    let sign = |body: &str| {
        let mut signed = ts.as_bytes().to_vec();
        signed.extend_from_slice(body.as_bytes());
        STANDARD.encode(sg_key.sign(&rng, &signed).unwrap())
    };
    let headers = |sig: String| {
        vec![
            ("x-twilio-email-event-webhook-signature", sig),
            ("x-twilio-email-event-webhook-timestamp", ts.clone()),
        ]
    };
    let (code, text) = app
        .post(
            "/webhooks/sendgrid",
            &headers(sign(&events)),
            events.clone(),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{text}");
    assert!(
        text.contains("\"applied\":2") && text.contains("\"ignored\":1"),
        "{text}"
    );
    assert_eq!(app.status("sg").await, Status::Bounced);
    assert_eq!(app.status("sg2").await, Status::Complained);
    let (_, text) = app
        .post(
            "/webhooks/sendgrid",
            &headers(sign(&events)),
            events.clone(),
        )
        .await;
    assert!(text.contains("\"duplicates\":2"), "{text}");
    let altered = events.replace(
        "sg3@example.net\", \"event\": \"delivered",
        "sg3@example.net\", \"event\": \"spamreport",
    );
    let altered = altered.replace("\"delivered\"", "\"spamreport\"");
    let (code, _) = app
        .post("/webhooks/sendgrid", &headers(sign(&events)), altered)
        .await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.post("/webhooks/sendgrid", &[], events.clone()).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.status("sg3").await, Status::Active);

    // Bounded bodies: past webhooks.max_body_size, 413.
    let big = vec![b' '; 128 * 1024];
    assert_eq!(
        app.post("/webhooks/ses", &[], big).await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    // Mailgun is not configured in this second server: 404.
    let bare = serve(
        Config::parse(&TestSite::new().config_text()).unwrap(),
        None,
        Arc::clone(&store),
    )
    .await;
    for path in ["/webhooks/ses", "/webhooks/mailgun"] {
        assert_eq!(
            bare.post(path, &[], "{}").await.0,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    let unconfigured = Webhooks::new(
        &Config::parse(&TestSite::new().config_text()).unwrap(),
        Arc::new(Bounces::new(
            Arc::new(config.clone()),
            Arc::clone(&store),
            Signer::new(&[7; 32]).unwrap(),
        )),
        Box::new(TestFetch {
            cert_pem: vec![],
            asked: Arc::new(Mutex::new(vec![])),
        }),
    )
    .unwrap();
    assert!(
        !unconfigured.any(),
        "every endpoint is off until configured"
    );
    let everyone = store.list(&ListFilter::default()).await.unwrap();
    assert_eq!(everyone.len(), readers.len());
    app.shutdown.trigger();
    bare.shutdown.trigger();
}
