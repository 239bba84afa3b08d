//! WebSub publishing against real hubs on loopback: what a hub receives,
//! retries and give-ups as the metrics count them, and shutdown cutting
//! retries short.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::Router;
use herald::base::metrics::Metrics;
use herald::base::shutdown::Shutdown;
use herald::daemon::websub::{RetryPolicy, WebSub};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use url::Url;

/// One request as a hub saw it.
#[derive(Debug, Clone)]
struct Received {
    method: Method,
    content_type: Option<String>,
    user_agent: Option<String>,
    form: Vec<(String, String)>,
}

type Answer = Arc<dyn Fn(usize) -> StatusCode + Send + Sync>;

#[derive(Clone)]
struct HubState {
    received: Arc<Mutex<Vec<Received>>>,
    count: watch::Sender<usize>,
    /// Given the 0-based number of the request, the status to answer.
    answer: Answer,
}

/// A WebSub hub on 127.0.0.1 that records every request.
struct Hub {
    url: Url,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Hub {
    async fn start(answer: impl Fn(usize) -> StatusCode + Send + Sync + 'static) -> Hub {
        let received = Arc::new(Mutex::new(Vec::new()));
        let (count, _) = watch::channel(0);
        let state = HubState {
            received: Arc::clone(&received),
            count,
            answer: Arc::new(answer),
        };
        let app = Router::new()
            .route("/hub", axum::routing::any(record))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Hub {
            url: Url::parse(&format!("http://{addr}/hub")).unwrap(),
            received,
        }
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// The `hub.url` of every request, sorted.
    fn topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = self
            .received()
            .iter()
            .map(|r| field(r, "hub.url").to_string())
            .collect();
        topics.sort();
        topics
    }
}

async fn record(
    State(hub): State<HubState>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let form = url::form_urlencoded::parse(&body).into_owned().collect();
    let n = {
        let mut received = hub.received.lock().unwrap();
        received.push(Received {
            method,
            content_type: text(header::CONTENT_TYPE),
            user_agent: text(header::USER_AGENT),
            form,
        });
        received.len()
    };
    hub.count.send_replace(n);
    (hub.answer)(n - 1)
}

fn field<'a>(r: &'a Received, name: &str) -> &'a str {
    let mut values = r.form.iter().filter(|(k, _)| k == name);
    let (_, v) = values
        .next()
        .unwrap_or_else(|| panic!("no `{name}` in {:?}", r.form));
    assert!(
        values.next().is_none(),
        "`{name}` given twice in {:?}",
        r.form
    );
    v
}

/// Millisecond backoffs so that retries cost the test nothing.
fn quick_policy(attempts: u32) -> RetryPolicy {
    RetryPolicy {
        attempts,
        first_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(4),
        request_timeout: Duration::from_secs(5),
    }
}

struct Publisher {
    websub: WebSub,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
}

fn publisher(hubs: &[&Hub], policy: RetryPolicy) -> Publisher {
    let metrics = Arc::new(Metrics::new());
    let shutdown = Shutdown::new();
    let hubs = hubs.iter().map(|h| h.url.clone()).collect();
    let websub = WebSub::new(hubs, Arc::clone(&metrics), shutdown.signal(), policy);
    Publisher {
        websub,
        metrics,
        shutdown,
    }
}

impl Publisher {
    fn ok(&self) -> u64 {
        self.metrics.websub_pings(true)
    }
    fn failed(&self) -> u64 {
        self.metrics.websub_pings(false)
    }
}

fn topic(s: &str) -> Url {
    Url::parse(s).unwrap()
}

/// Awaits the deliveries, failing the test (rather than hanging it) if they
/// outlast `bound`.
async fn finished_within(bound: Duration, handle: JoinHandle<()>) {
    tokio::time::timeout(bound, handle)
        .await
        .expect("the deliveries did not end")
        .expect("the delivery task panicked");
}

#[tokio::test]
async fn every_configured_hub_receives_a_publish_ping_for_each_topic() {
    let first = Hub::start(|_| StatusCode::NO_CONTENT).await;
    let second = Hub::start(|_| StatusCode::ACCEPTED).await;
    let p = publisher(&[&first, &second], quick_policy(3));
    assert!(p.websub.is_enabled());
    let topics = vec![
        topic("https://example.org/feeds/atom.xml"),
        topic("https://example.org/feeds/feed.json"),
        topic("https://example.org/feeds/rss.xml"),
    ];

    finished_within(Duration::from_secs(10), p.websub.notify(topics.clone())).await;

    let expected: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
    for hub in [&first, &second] {
        let received = hub.received();
        assert_eq!(received.len(), 3, "{received:#?}");
        for r in &received {
            assert_eq!(r.method, Method::POST);
            assert_eq!(
                r.content_type.as_deref(),
                Some("application/x-www-form-urlencoded")
            );
            let ua = r.user_agent.as_deref().unwrap_or_default();
            assert_eq!(ua, concat!("herald/", env!("CARGO_PKG_VERSION")));
            assert_eq!(field(r, "hub.mode"), "publish");
            assert_eq!(r.form.len(), 2, "{:?}", r.form);
        }
        assert_eq!(hub.topics(), expected);
    }
    assert_eq!(p.ok(), 6);
    assert_eq!(p.failed(), 0);
}

#[tokio::test]
async fn a_hub_that_fails_twice_then_accepts_gets_the_ping_delivered_once() {
    let hub = Hub::start(|n| {
        if n < 2 {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::NO_CONTENT
        }
    })
    .await;
    let p = publisher(&[&hub], quick_policy(5));

    finished_within(
        Duration::from_secs(10),
        p.websub.notify(vec![topic("https://example.org/atom.xml")]),
    )
    .await;

    assert_eq!(hub.received().len(), 3);
    assert!(hub
        .received()
        .iter()
        .all(|r| field(r, "hub.url") == "https://example.org/atom.xml"));
    assert_eq!(p.ok(), 1);
    assert_eq!(p.failed(), 0);
}

#[tokio::test]
async fn a_hub_that_always_answers_503_gets_exactly_the_policy_attempts_and_one_failure() {
    let hub = Hub::start(|_| StatusCode::SERVICE_UNAVAILABLE).await;
    let p = publisher(&[&hub], quick_policy(4));

    finished_within(
        Duration::from_secs(10),
        p.websub.notify(vec![topic("https://example.org/atom.xml")]),
    )
    .await;

    assert_eq!(hub.received().len(), 4);
    assert_eq!(p.ok(), 0);
    assert_eq!(p.failed(), 1);
}

#[tokio::test]
async fn a_hub_where_nothing_listens_fails_and_is_counted_within_the_policy_bounds() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let policy = RetryPolicy {
        request_timeout: Duration::from_secs(2),
        ..quick_policy(3)
    };
    let metrics = Arc::new(Metrics::new());
    let shutdown = Shutdown::new();
    let hub = Url::parse(&format!("http://{addr}/hub")).unwrap();
    let websub = WebSub::new(vec![hub], Arc::clone(&metrics), shutdown.signal(), policy);

    // Every attempt may take the whole request timeout and every wait the
    // whole cap; the deliveries cannot outlast that.
    let bound =
        (policy.request_timeout + policy.max_backoff) * policy.attempts + Duration::from_secs(5);
    finished_within(
        bound,
        websub.notify(vec![topic("https://example.org/atom.xml")]),
    )
    .await;

    assert_eq!(metrics.websub_pings(true), 0);
    assert_eq!(metrics.websub_pings(false), 1);
}

#[tokio::test]
async fn shutdown_during_the_backoff_wait_ends_the_delivery_without_further_requests() {
    let hub = Hub::start(|_| StatusCode::SERVICE_UNAVAILABLE).await;
    // Waits of an hour: only shutdown can end this delivery in time.
    let policy = RetryPolicy {
        attempts: 5,
        first_backoff: Duration::from_secs(3600),
        max_backoff: Duration::from_secs(3600),
        request_timeout: Duration::from_secs(5),
    };
    let p = publisher(&[&hub], policy);
    let logs = Logs::capture();
    let _guard = tracing::subscriber::set_default(logs.subscriber());

    let handle = p.websub.notify(vec![topic("https://example.org/atom.xml")]);
    logs.wait_for("will retry").await;
    p.shutdown.trigger();
    finished_within(Duration::from_secs(5), handle).await;

    assert_eq!(hub.received().len(), 1);
    assert_eq!(p.ok(), 0);
    assert_eq!(p.failed(), 0, "an abandoned ping is not a hub failure");
    let abandoned = logs.matching("abandoned at shutdown");
    assert_eq!(abandoned.len(), 1, "{:#?}", logs.all());
    assert!(
        abandoned[0].contains("https://example.org/atom.xml"),
        "{}",
        abandoned[0]
    );
    assert!(abandoned[0].contains(hub.url.as_str()), "{}", abandoned[0]);
}

#[tokio::test]
async fn a_topic_with_characters_needing_encoding_arrives_intact() {
    let hub = Hub::start(|_| StatusCode::NO_CONTENT).await;
    let p = publisher(&[&hub], quick_policy(3));
    let tricky = topic("https://example.org/my feeds/atom.xml?tag=rust & go&lang=en+fr&q=a=b#top");

    finished_within(
        Duration::from_secs(10),
        p.websub.notify(vec![tricky.clone()]),
    )
    .await;

    let received = hub.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].form.len(), 2, "{:?}", received[0].form);
    assert_eq!(field(&received[0], "hub.mode"), "publish");
    assert_eq!(field(&received[0], "hub.url"), tricky.as_str());
    assert_eq!(Url::parse(field(&received[0], "hub.url")).unwrap(), tricky);
    assert_eq!(p.ok(), 1);
}

#[tokio::test]
async fn without_hubs_websub_is_disabled_and_notify_ends_at_once() {
    let p = publisher(&[], quick_policy(3));
    assert!(!p.websub.is_enabled());
    finished_within(
        Duration::from_secs(5),
        p.websub.notify(vec![topic("https://example.org/atom.xml")]),
    )
    .await;
    assert_eq!(p.ok() + p.failed(), 0);
}

/// Log events captured on the test's thread, so that a test can wait for a
/// delivery to reach a given step instead of sleeping.
#[derive(Clone)]
struct Logs {
    lines: Arc<Mutex<Vec<String>>>,
    count: watch::Sender<usize>,
}

impl Logs {
    fn capture() -> Logs {
        Logs {
            lines: Arc::default(),
            count: watch::channel(0).0,
        }
    }

    fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync {
        use tracing_subscriber::layer::SubscriberExt;
        tracing_subscriber::registry().with(self.clone())
    }

    fn all(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    fn matching(&self, needle: &str) -> Vec<String> {
        self.all()
            .into_iter()
            .filter(|l| l.contains(needle))
            .collect()
    }

    async fn wait_for(&self, needle: &str) {
        let mut count = self.count.subscribe();
        let seen = count.wait_for(|_| !self.matching(needle).is_empty());
        tokio::time::timeout(Duration::from_secs(10), seen)
            .await
            .unwrap_or_else(|_| panic!("no log line with `{needle}` in {:#?}", self.all()))
            .expect("log channel open");
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Logs {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut line = format!("{} ", event.metadata().level());
        event.record(&mut |f: &tracing::field::Field, v: &dyn std::fmt::Debug| {
            let _ = write!(line, "{}={:?} ", f.name(), v);
        });
        let n = {
            let mut lines = self.lines.lock().unwrap();
            lines.push(line);
            lines.len()
        };
        self.count.send_replace(n);
    }
}
