//! The HTTP server: feeds with validators, conditional GET and content
//! codings, the index page, probes and metrics, paths that must lead
//! nowhere, and graceful shutdown over a real socket.
//!
//! Most tests drive the router with `oneshot`, no socket; the last group
//! binds 127.0.0.1:0 and talks to `serve` with reqwest or raw TCP.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use herald::base::metrics::Metrics;
use herald::base::ready::{Readiness, ReadyState};
use herald::base::served::{FeedFile, ServedFeeds, Snapshot};
use herald::base::shutdown::Shutdown;
use herald::base::FeedFormat;
use herald::cli::site::{build, BuildOptions};
use herald::config::Config;
use herald::http::{router, serve, AppState};
use herald::templates::Templates;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

use crate::helpers::TestSite;

/// Last-Modified of every fixture feed: 2024-03-20T12:00:00Z.
const LAST_MODIFIED_SECS: u64 = 1_710_936_000;
const LAST_MODIFIED: &str = "Wed, 20 Mar 2024 12:00:00 GMT";
/// Upper bound for anything that should happen at once; never a delay.
const PATIENCE: Duration = Duration::from_secs(20);

fn last_modified() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(LAST_MODIFIED_SECS)
}

/// A built site and the application serving its feeds from memory.
struct Fixture {
    site: TestSite,
    state: AppState,
    app: Router,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::with(|s| s)
    }

    /// A fixture whose config text is first passed through `edit`, for the
    /// build and for the server alike.
    fn with(edit: impl FnOnce(String) -> String) -> Fixture {
        let site = TestSite::new();
        write_articles(&site);
        let config = Config::parse(&edit(site.config_text())).expect("config parses");
        let options = BuildOptions {
            write: true,
            now: chrono::Utc::now(),
        };
        build(&config, options).expect("the site builds");
        let state = AppState {
            config: Arc::new(config),
            served: Arc::new(load_served(&site.feeds)),
            metrics: Arc::new(Metrics::new()),
            ready: Arc::new(Readiness::ready()),
            templates: Arc::new(Templates::load(None).unwrap()),
            subscriptions: None,
            store: None,
            webhooks: None,
            counts: None,
        };
        let app = router(state.clone());
        Fixture { site, state, app }
    }

    fn file(&self, key: &str) -> Arc<FeedFile> {
        self.state
            .served
            .get(key)
            .unwrap_or_else(|| panic!("{key} in the served snapshot"))
    }

    async fn get(&self, uri: &str) -> Resp {
        self.send(Method::GET, uri, &[]).await
    }

    async fn send(&self, method: Method, uri: &str, headers: &[(&str, &str)]) -> Resp {
        let mut req = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Body::empty()).expect("request builds");
        let res = self.app.clone().oneshot(req).await.expect("infallible");
        let status = res.status();
        let headers = res.headers().clone();
        let body = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .expect("body");
        Resp {
            status,
            headers,
            body,
        }
    }
}

struct Resp {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("visible ASCII"))
    }
    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("UTF-8 body")
    }
}

fn write_articles(site: &TestSite) {
    site.write(
        "posts/2024-01-10-first.md",
        "+++\ntitle = \"First post\"\ntags = [\"rust\", \"web\"]\n+++\nSome *Markdown* with a [link](/about/).\n",
    );
    site.write(
        "posts/2024-02-11-second.md",
        "+++\ntitle = \"Second post\"\ntags = [\"rust\", \"Café\"]\n+++\nMore words, enough to compress. ".to_string()
            + &"All work and no play makes a feed. ".repeat(200)
            + "\n",
    );
    site.write(
        "notes/2024-03-12-note.txt",
        "A dated note\n\nIts date is in the file name.\n",
    );
}

/// Every file under the feeds directory, as the daemon would publish it.
fn load_served(dir: &Path) -> ServedFeeds {
    let mut files = BTreeMap::new();
    for entry in walkdir::WalkDir::new(dir) {
        let entry = entry.expect("walk feeds");
        if !entry.file_type().is_file() {
            continue;
        }
        let rel = entry
            .path()
            .strip_prefix(dir)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let format = match entry.file_name().to_str() {
            Some("rss.xml") => FeedFormat::Rss,
            Some("atom.xml") => FeedFormat::Atom,
            Some("feed.json") => FeedFormat::Json,
            _ => continue,
        };
        let body = std::fs::read(entry.path()).unwrap();
        let file = FeedFile::new(rel.clone(), format, body, last_modified());
        files.insert(rel, Arc::new(file));
    }
    assert!(
        files.len() >= 12,
        "site-wide and tag feeds: {:?}",
        files.keys()
    );
    let served = ServedFeeds::new();
    served.publish(Snapshot { files });
    served
}

fn gunzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b)
        .read_to_end(&mut out)
        .expect("valid gzip");
    out
}

fn unbrotli(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(b, 4096)
        .read_to_end(&mut out)
        .expect("valid brotli");
    out
}

/// The `rel=self` address a feed gives for itself.
fn self_link(file: &FeedFile) -> String {
    match file.format {
        FeedFormat::Json => {
            let v: serde_json::Value = serde_json::from_slice(&file.body).unwrap();
            v["feed_url"].as_str().expect("feed_url").to_string()
        }
        _ => {
            feed_rs::parser::parse(&file.body[..])
                .expect("feed parses")
                .links
                .into_iter()
                .find(|l| l.rel.as_deref() == Some("self"))
                .expect("a self link")
                .href
        }
    }
}

// ---------------------------------------------------------------- feeds --

#[tokio::test]
async fn every_feed_is_served_at_the_path_of_its_self_link() {
    let fx = Fixture::new();
    let snapshot = fx.state.served.snapshot();
    assert!(snapshot.files.contains_key("tags/café/atom.xml"));
    for (key, file) in &snapshot.files {
        let href = self_link(file);
        let url = url::Url::parse(&href).unwrap();
        assert_eq!(url.host_str(), Some("example.org"), "{key}");
        let res = fx.get(url.path()).await;
        assert_eq!(res.status, StatusCode::OK, "{key} at {}", url.path());
        assert_eq!(res.body, file.body, "{key}");
    }
    // The non-ASCII tag travels percent-encoded, as its self link has it.
    let res = fx.get("/tags/caf%C3%A9/atom.xml").await;
    assert_eq!(res.status, StatusCode::OK);
}

#[tokio::test]
async fn feeds_are_served_with_their_content_type_and_charset() {
    let fx = Fixture::new();
    for (path, ct) in [
        ("/rss.xml", "application/rss+xml; charset=utf-8"),
        ("/atom.xml", "application/atom+xml; charset=utf-8"),
        ("/feed.json", "application/feed+json; charset=utf-8"),
        ("/tags/rust/rss.xml", "application/rss+xml; charset=utf-8"),
        ("/tags/web/atom.xml", "application/atom+xml; charset=utf-8"),
        (
            "/tags/rust/feed.json",
            "application/feed+json; charset=utf-8",
        ),
    ] {
        let res = fx.get(path).await;
        assert_eq!(res.status, StatusCode::OK, "{path}");
        assert_eq!(res.header("content-type"), Some(ct), "{path}");
        assert_eq!(res.header("x-content-type-options"), Some("nosniff"));
    }
}

#[tokio::test]
async fn a_feed_response_carries_a_strong_etag_last_modified_and_cache_headers() {
    let fx = Fixture::new();
    let file = fx.file("atom.xml");
    let res = fx.get("/atom.xml").await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(
        res.header("etag"),
        Some(format!("\"{}\"", file.digest).as_str())
    );
    assert_eq!(res.header("last-modified"), Some(LAST_MODIFIED));
    assert_eq!(res.header("cache-control"), Some("public, max-age=300"));
    assert_eq!(res.header("vary"), Some("Accept-Encoding"));
    assert_eq!(res.header("content-encoding"), None);
    assert_eq!(
        res.header("content-length"),
        Some(file.body.len().to_string().as_str())
    );
    assert_eq!(res.body, file.body);
}

#[tokio::test]
async fn cache_control_comes_from_the_config() {
    let fx = Fixture::with(|t| {
        t + "\n[server]\ncache_control = \"public, max-age=60, stale-while-revalidate=600\"\n"
    });
    let res = fx.get("/rss.xml").await;
    assert_eq!(
        res.header("cache-control"),
        Some("public, max-age=60, stale-while-revalidate=600")
    );
}

#[tokio::test]
async fn a_query_string_does_not_change_which_feed_is_served() {
    let fx = Fixture::new();
    let res = fx.get("/atom.xml?utm_source=reader").await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.body, fx.file("atom.xml").body);
}

#[tokio::test]
async fn a_publish_is_seen_by_the_next_request() {
    let fx = Fixture::new();
    let old = fx.get("/atom.xml").await;
    let old_etag = old.header("etag").unwrap().to_string();

    let mut files = fx.state.served.snapshot().files.clone();
    let changed = FeedFile::new(
        "atom.xml".into(),
        FeedFormat::Atom,
        b"<feed xmlns=\"http://www.w3.org/2005/Atom\"/>".to_vec(),
        last_modified() + Duration::from_secs(60),
    );
    files.insert("atom.xml".into(), Arc::new(changed));
    fx.state.served.publish(Snapshot { files });

    let res = fx
        .send(Method::GET, "/atom.xml", &[("if-none-match", &old_etag)])
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_ne!(res.header("etag"), Some(old_etag.as_str()));
    assert_eq!(
        res.header("last-modified"),
        Some("Wed, 20 Mar 2024 12:01:00 GMT")
    );
    assert_eq!(
        &res.body[..],
        b"<feed xmlns=\"http://www.w3.org/2005/Atom\"/>"
    );
}

// ------------------------------------------------------ conditional GET --

fn assert_not_modified(res: &Resp, etag: &str) {
    assert_eq!(res.status, StatusCode::NOT_MODIFIED);
    assert!(res.body.is_empty(), "a 304 has no body");
    assert_eq!(res.header("etag"), Some(etag));
    assert_eq!(res.header("last-modified"), Some(LAST_MODIFIED));
    assert_eq!(res.header("cache-control"), Some("public, max-age=300"));
    assert_eq!(res.header("vary"), Some("Accept-Encoding"));
    assert_eq!(res.header("content-type"), None);
    assert_eq!(res.header("content-encoding"), None);
}

#[tokio::test]
async fn if_none_match_with_the_current_etag_answers_304_without_a_body() {
    let fx = Fixture::new();
    let etag = format!("\"{}\"", fx.file("rss.xml").digest);
    for inm in [
        etag.clone(),
        format!("\"stale\", {etag}, \"older\""),
        format!("\"stale\",{etag}"),
        "*".to_string(),
        format!("W/{etag}"),
        format!("W/\"stale\", W/{etag}"),
    ] {
        let res = fx
            .send(Method::GET, "/rss.xml", &[("if-none-match", &inm)])
            .await;
        assert_not_modified(&res, &etag);
    }
}

#[tokio::test]
async fn if_none_match_split_over_several_fields_still_matches() {
    let fx = Fixture::new();
    let etag = format!("\"{}\"", fx.file("rss.xml").digest);
    let res = fx
        .send(
            Method::GET,
            "/rss.xml",
            &[("if-none-match", "\"stale\""), ("if-none-match", &etag)],
        )
        .await;
    assert_not_modified(&res, &etag);
}

#[tokio::test]
async fn if_none_match_with_other_etags_answers_200() {
    let fx = Fixture::new();
    for inm in ["\"stale\"", "\"a\", W/\"b\"", "not-an-etag", ""] {
        let res = fx
            .send(Method::GET, "/rss.xml", &[("if-none-match", inm)])
            .await;
        assert_eq!(res.status, StatusCode::OK, "{inm}");
        assert_eq!(res.body, fx.file("rss.xml").body);
    }
}

#[tokio::test]
async fn if_modified_since_equal_to_or_later_than_last_modified_answers_304() {
    let fx = Fixture::new();
    let etag = format!("\"{}\"", fx.file("feed.json").digest);
    let later = httpdate::fmt_http_date(last_modified() + Duration::from_secs(1));
    for ims in [
        LAST_MODIFIED,
        later.as_str(),
        "Wednesday, 20-Mar-24 12:00:00 GMT",
    ] {
        let res = fx
            .send(Method::GET, "/feed.json", &[("if-modified-since", ims)])
            .await;
        assert_not_modified(&res, &etag);
    }
}

#[tokio::test]
async fn if_modified_since_earlier_than_last_modified_answers_200() {
    let fx = Fixture::new();
    let earlier = httpdate::fmt_http_date(last_modified() - Duration::from_secs(1));
    let res = fx
        .send(
            Method::GET,
            "/feed.json",
            &[("if-modified-since", &earlier)],
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.body, fx.file("feed.json").body);
}

#[tokio::test]
async fn if_modified_since_that_does_not_parse_is_ignored() {
    let fx = Fixture::new();
    for ims in [
        "yesterday",
        "2024-03-20T12:00:00Z",
        "Wed, 20 Mar 2024 12:00:00 GMT, again",
    ] {
        let res = fx
            .send(Method::GET, "/feed.json", &[("if-modified-since", ims)])
            .await;
        assert_eq!(res.status, StatusCode::OK, "{ims}");
    }
}

#[tokio::test]
async fn if_none_match_takes_precedence_over_if_modified_since() {
    let fx = Fixture::new();
    let res = fx
        .send(
            Method::GET,
            "/atom.xml",
            &[
                ("if-none-match", "\"stale\""),
                ("if-modified-since", LAST_MODIFIED),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.body, fx.file("atom.xml").body);
}

#[tokio::test]
async fn if_match_and_if_unmodified_since_answer_412_when_false() {
    let fx = Fixture::new();
    let etag = format!("\"{}\"", fx.file("atom.xml").digest);
    let earlier = httpdate::fmt_http_date(last_modified() - Duration::from_secs(1));
    for (name, value, status) in [
        ("if-match", "\"stale\"", StatusCode::PRECONDITION_FAILED),
        ("if-match", etag.as_str(), StatusCode::OK),
        ("if-match", "*", StatusCode::OK),
        (
            "if-unmodified-since",
            earlier.as_str(),
            StatusCode::PRECONDITION_FAILED,
        ),
        ("if-unmodified-since", LAST_MODIFIED, StatusCode::OK),
    ] {
        let res = fx.send(Method::GET, "/atom.xml", &[(name, value)]).await;
        assert_eq!(res.status, status, "{name}: {value}");
    }
    // A weak tag never passes If-Match, which compares strongly.
    let weak = format!("W/{etag}");
    let res = fx
        .send(Method::GET, "/atom.xml", &[("if-match", &weak)])
        .await;
    assert_eq!(res.status, StatusCode::PRECONDITION_FAILED);
}

// ----------------------------------------------------- content codings --

#[tokio::test]
async fn gzip_is_sent_when_accepted_and_decodes_to_the_identity_body() {
    let fx = Fixture::new();
    let file = fx.file("tags/rust/atom.xml");
    let res = fx
        .send(
            Method::GET,
            "/tags/rust/atom.xml",
            &[("accept-encoding", "gzip")],
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.header("content-encoding"), Some("gzip"));
    assert_eq!(
        res.header("content-length"),
        Some(res.body.len().to_string().as_str())
    );
    assert_eq!(
        res.header("content-type"),
        Some("application/atom+xml; charset=utf-8")
    );
    assert_eq!(gunzip(&res.body), file.body);
    assert!(res.body.len() < file.body.len());
}

#[tokio::test]
async fn brotli_is_preferred_over_gzip_at_equal_quality() {
    let fx = Fixture::new();
    let file = fx.file("rss.xml");
    for ae in ["gzip, deflate, br", "br, gzip", "gzip;q=0.9, br;q=0.9", "*"] {
        let res = fx
            .send(Method::GET, "/rss.xml", &[("accept-encoding", ae)])
            .await;
        assert_eq!(res.header("content-encoding"), Some("br"), "{ae}");
        assert_eq!(
            res.header("content-length"),
            Some(res.body.len().to_string().as_str())
        );
        assert_eq!(unbrotli(&res.body), file.body, "{ae}");
    }
}

#[tokio::test]
async fn quality_values_decide_the_coding() {
    let fx = Fixture::new();
    let file = fx.file("feed.json");
    for (ae, want) in [
        ("br;q=0.5, gzip;q=0.8", Some("gzip")),
        ("gzip;q=0.2, br", Some("br")),
        ("gzip;q=0, br;q=0", None),
        ("identity;q=0, gzip", Some("gzip")),
        ("br;q=0, *", Some("gzip")),
        ("*;q=0, identity", None),
        ("gzip;q=0.5, identity", None),
        ("identity", None),
        ("x-gzip", Some("gzip")),
        ("GZip", Some("gzip")),
        ("", None),
        ("compress, deflate", None),
    ] {
        let res = fx
            .send(Method::GET, "/feed.json", &[("accept-encoding", ae)])
            .await;
        assert_eq!(res.status, StatusCode::OK, "{ae}");
        assert_eq!(res.header("content-encoding"), want, "{ae}");
        let decoded = match want {
            Some("gzip") => gunzip(&res.body),
            Some("br") => unbrotli(&res.body),
            _ => res.body.to_vec(),
        };
        assert_eq!(decoded, file.body, "{ae}");
    }
}

#[tokio::test]
async fn a_client_that_refuses_every_coding_gets_406() {
    let fx = Fixture::new();
    for ae in ["identity;q=0", "*;q=0", "gzip;q=0, br;q=0, identity;q=0"] {
        let res = fx
            .send(Method::GET, "/feed.json", &[("accept-encoding", ae)])
            .await;
        assert_eq!(res.status, StatusCode::NOT_ACCEPTABLE, "{ae}");
        assert_eq!(res.header("vary"), Some("Accept-Encoding"));
        assert_eq!(
            res.header("content-type"),
            Some("text/plain; charset=utf-8")
        );
    }
}

#[tokio::test]
async fn each_content_coding_has_its_own_strong_etag() {
    let fx = Fixture::new();
    let digest = fx.file("atom.xml").digest.clone();
    let mut etags = Vec::new();
    for ae in ["identity", "gzip", "br"] {
        let res = fx
            .send(Method::GET, "/atom.xml", &[("accept-encoding", ae)])
            .await;
        etags.push(res.header("etag").unwrap().to_string());
    }
    assert_eq!(
        etags,
        [
            format!("\"{digest}\""),
            format!("\"{digest}-gz\""),
            format!("\"{digest}-br\"")
        ]
    );

    // The gzip ETag validates the gzip representation only.
    let gz = etags[1].as_str();
    let res = fx
        .send(
            Method::GET,
            "/atom.xml",
            &[("accept-encoding", "gzip"), ("if-none-match", gz)],
        )
        .await;
    assert_not_modified(&res, gz);
    let res = fx
        .send(
            Method::GET,
            "/atom.xml",
            &[("accept-encoding", "br"), ("if-none-match", gz)],
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.header("etag"), Some(etags[2].as_str()));
    let res = fx
        .send(Method::GET, "/atom.xml", &[("if-none-match", gz)])
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.header("etag"), Some(etags[0].as_str()));
}

#[tokio::test]
async fn head_answers_with_the_get_headers_and_no_body() {
    let fx = Fixture::new();
    for ae in ["identity", "gzip", "br"] {
        let h = [("accept-encoding", ae)];
        let get = fx.send(Method::GET, "/tags/rust/rss.xml", &h).await;
        let head = fx.send(Method::HEAD, "/tags/rust/rss.xml", &h).await;
        assert_eq!(head.status, StatusCode::OK);
        assert!(head.body.is_empty(), "{ae}");
        assert_eq!(
            head.header("content-length"),
            Some(get.body.len().to_string().as_str())
        );
        for name in [
            "content-type",
            "content-length",
            "content-encoding",
            "etag",
            "last-modified",
            "cache-control",
            "vary",
        ] {
            assert_eq!(head.header(name), get.header(name), "{ae}: {name}");
        }
    }
    let etag = format!("\"{}\"", fx.file("tags/rust/rss.xml").digest);
    let res = fx
        .send(
            Method::HEAD,
            "/tags/rust/rss.xml",
            &[("if-none-match", &etag)],
        )
        .await;
    assert_not_modified(&res, &etag);
}

// --------------------------------------------------- paths and methods --

async fn assert_plain_404(fx: &Fixture, uri: &str) {
    let res = fx.get(uri).await;
    assert_eq!(res.status, StatusCode::NOT_FOUND, "{uri}");
    assert_eq!(
        res.header("content-type"),
        Some("text/plain; charset=utf-8"),
        "{uri}"
    );
    assert_eq!(res.text(), "not found\n", "{uri}");
}

#[tokio::test]
async fn paths_that_climb_out_or_alias_a_feed_answer_404_with_a_plain_body() {
    let fx = Fixture::new();
    let paths = [
        "/../Cargo.toml",
        "/../../../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/%2E%2E/Cargo.toml",
        "/%252e%252e/Cargo.toml",
        "/tags/..%2f..%2fCargo.toml",
        "/tags/rust/../../atom.xml",
        "/tags/rust/%2e%2e/%2e%2e/atom.xml",
        "/./atom.xml",
        "/atom%2exml",
        "/%61tom.xml",
        "/tags%2frust%2fatom.xml",
        "/tags%2Frust%2Fatom.xml",
        "//etc/passwd",
        "//atom.xml",
        "/tags//rust/atom.xml",
        "/..%5c..%5cCargo.toml",
        "/tags%5crust%5catom.xml",
        "/atom.xml%00",
        "/atom.xml%00.html",
        "/%00",
        "/etc/passwd",
        "/Cargo.toml",
        "/src/lib.rs",
        "/ATOM.XML",
        "/atom.xml/",
        "/atom.xml/..",
        "/tags/",
        "/tags/rust/",
        "/tags/rust",
        "/tags/caf%C3%A9%2fatom.xml",
        "/tags/caf%C3/atom.xml",
        "/healthz/",
    ];
    assert!(paths.len() >= 10);
    for uri in paths {
        assert_plain_404(&fx, uri).await;
    }
    // Absolute-form request targets name the same paths.
    assert_plain_404(&fx, "http://example.org/../Cargo.toml").await;
    let res = fx.get("http://example.org/atom.xml").await;
    assert_eq!(res.status, StatusCode::OK);
}

#[cfg(unix)]
#[tokio::test]
async fn files_and_symlinks_on_disk_beside_the_feeds_are_never_served() {
    use std::os::unix::fs::symlink;
    let fx = Fixture::new();
    let feeds = &fx.site.feeds;
    let config = fx.site.config_path();
    symlink("/etc/passwd", feeds.join("passwd")).unwrap();
    symlink(&config, feeds.join("tags/rust/herald.xml")).unwrap();
    symlink("/", feeds.join("root")).unwrap();
    std::fs::write(feeds.join("stray.xml"), "<rss/>").unwrap();
    // The links work on disk; the server must not care.
    assert!(std::fs::read(feeds.join("tags/rust/herald.xml")).is_ok());
    assert!(feeds.join("root/etc").is_dir());
    for uri in [
        "/passwd",
        "/tags/rust/herald.xml",
        "/root/etc/passwd",
        "/root/",
        "/stray.xml",
    ] {
        assert_plain_404(&fx, uri).await;
    }
}

#[tokio::test]
async fn methods_other_than_get_and_head_answer_405_with_allow() {
    let fx = Fixture::new();
    for method in [
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::OPTIONS,
    ] {
        for uri in ["/atom.xml", "/", "/healthz", "/readyz", "/metrics"] {
            let res = fx.send(method.clone(), uri, &[]).await;
            assert_eq!(res.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
            assert_eq!(res.header("allow"), Some("GET, HEAD"), "{method} {uri}");
        }
    }
    // Nothing there: not found, whatever the method.
    let res = fx.send(Method::POST, "/nothing.xml", &[]).await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
}

// ------------------------------------------------ probes, metrics, index --

#[tokio::test]
async fn healthz_answers_ok_as_long_as_the_process_runs() {
    let fx = Fixture::new();
    fx.state.ready.set(ReadyState::Starting);
    let res = fx.get("/healthz").await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.text(), "ok");
    assert_eq!(res.header("cache-control"), Some("no-store"));
}

#[tokio::test]
async fn readyz_answers_503_until_the_first_build_then_200() {
    let fx = Fixture::new();
    fx.state.ready.set(ReadyState::Starting);
    let res = fx.get("/readyz").await;
    assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.text().contains("first build"), "{}", res.text());
    assert_eq!(
        res.header("content-type"),
        Some("text/plain; charset=utf-8")
    );

    fx.state.ready.set(ReadyState::Ready);
    let res = fx.get("/readyz").await;
    assert_eq!(res.status, StatusCode::OK);
}

#[tokio::test]
async fn metrics_count_responses_by_route_and_status_never_by_path() {
    let fx = Fixture::new();
    let etag = format!("\"{}\"", fx.file("atom.xml").digest);
    fx.get("/atom.xml").await;
    fx.get("/tags/rust/feed.json").await;
    fx.send(Method::GET, "/atom.xml", &[("if-none-match", &etag)])
        .await;
    fx.send(Method::POST, "/atom.xml", &[]).await;
    fx.get("/nothing-here.xml").await;
    fx.get("/../etc/passwd").await;
    fx.get("/").await;
    fx.get("/healthz").await;
    fx.send(Method::POST, "/healthz", &[]).await;
    fx.get("/readyz").await;

    let res = fx.get("/metrics").await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(
        res.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = res.text();
    for line in [
        r#"herald_http_requests_total{route="feed",status="200"} 2"#,
        r#"herald_http_requests_total{route="feed",status="304"} 1"#,
        r#"herald_http_requests_total{route="feed",status="405"} 1"#,
        r#"herald_http_requests_total{route="not_found",status="404"} 2"#,
        r#"herald_http_requests_total{route="index",status="200"} 1"#,
        r#"herald_http_requests_total{route="healthz",status="200"} 1"#,
        r#"herald_http_requests_total{route="healthz",status="405"} 1"#,
        r#"herald_http_requests_total{route="readyz",status="200"} 1"#,
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in\n{text}"
        );
    }
    assert!(!text.contains("passwd") && !text.contains("nothing-here"));
    // The scrape itself is counted once it has been answered.
    assert_eq!(fx.state.metrics.requests("metrics", 200), 1);
}

#[tokio::test]
async fn the_index_lists_every_feed_with_autodiscovery_links() {
    let fx = Fixture::new();
    let res = fx.get("/").await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.header("content-type"), Some("text/html; charset=utf-8"));
    let html = res.text();
    assert!(html.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"));
    assert!(html.contains("<title>Feeds – Test Site</title>"));
    assert!(html.contains("<meta charset=\"utf-8\">"));
    assert!(!html.to_ascii_lowercase().contains("<script"));

    let head = &html[..html.find("</head>").expect("a head")];
    let body = &html[html.find("<body>").expect("a body")..];
    for (key, file) in fx.state.served.snapshot().files.iter() {
        let href = format!("href=\"{}\"", self_link(file));
        assert!(head.contains(&href), "no <link> for {key}");
        assert!(body.contains(&href), "no <a> for {key}");
    }
    assert!(head.contains(
        "<link rel=\"alternate\" type=\"application/atom+xml\" title=\"Test Site (Atom)\" href=\"https://example.org/atom.xml\">"
    ));
    assert!(head.contains(
        "<link rel=\"alternate\" type=\"application/rss+xml\" title=\"Test Site – rust (RSS)\" href=\"https://example.org/tags/rust/rss.xml\">"
    ));
    assert!(head.contains(
        "type=\"application/feed+json\" title=\"Test Site (JSON Feed)\" href=\"https://example.org/feed.json\""
    ));
    // Site-wide feeds come first, in the head and in the list.
    for part in [head, body] {
        let site = part.find("https://example.org/rss.xml").unwrap();
        let first_tag = part.find("https://example.org/tags/").unwrap();
        assert!(site < first_tag);
    }
    let res = fx.send(Method::HEAD, "/", &[]).await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(res.body.is_empty());
}

#[tokio::test]
async fn the_index_escapes_every_text_it_shows() {
    let fx = Fixture::with(|t| {
        t.replace(
            "title = \"Test Site\"",
            r#"title = "Tom & Jerry's <script>alert(1)</script> \"Site\"""#,
        )
    });
    let html = fx.get("/").await.text().to_string();
    assert!(!html.contains("<script>"));
    assert!(html.contains(
        "<h1>Tom &amp; Jerry&#39;s &lt;script&gt;alert(1)&lt;/script&gt; &quot;Site&quot;</h1>"
    ));
    assert!(html.contains(
        "title=\"Tom &amp; Jerry&#39;s &lt;script&gt;alert(1)&lt;/script&gt; &quot;Site&quot; (Atom)\""
    ));
}

#[tokio::test]
async fn the_index_of_an_empty_store_says_nothing_is_published_yet() {
    let fx = Fixture::new();
    fx.state.served.publish(Snapshot::default());
    let res = fx.get("/").await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(res.text().contains("No feeds have been published yet."));
    assert_plain_404(&fx, "/atom.xml").await;
}

#[tokio::test]
async fn a_feeds_base_url_with_a_path_moves_feeds_and_index_under_it() {
    let fx = Fixture::with(|t| {
        t.replace(
            "\n[feeds]\n",
            "\n[feeds]\nbase_url = \"https://example.org/feeds/\"\n",
        )
    });
    let file = fx.file("atom.xml");
    assert_eq!(self_link(&file), "https://example.org/feeds/atom.xml");

    let res = fx.get("/feeds/atom.xml").await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.body, file.body);
    assert_eq!(
        fx.get("/feeds/tags/rust/rss.xml").await.status,
        StatusCode::OK
    );
    let index = fx.get("/feeds/").await;
    assert_eq!(index.status, StatusCode::OK);
    assert!(index
        .text()
        .contains("href=\"https://example.org/feeds/atom.xml\""));
    // Probes stay at the root.
    assert_eq!(fx.get("/healthz").await.status, StatusCode::OK);
    for uri in [
        "/atom.xml",
        "/",
        "/feeds",
        "/feeds//atom.xml",
        "/feeds/../atom.xml",
    ] {
        assert_plain_404(&fx, uri).await;
    }
}

// -------------------------------------------------------- over a socket --

struct Running {
    addr: std::net::SocketAddr,
    shutdown: Shutdown,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start(app: Router, grace: Duration) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = Shutdown::new();
    let server = tokio::spawn(serve(listener, app, shutdown.signal(), grace));
    Running {
        addr,
        shutdown,
        server,
    }
}

impl Running {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn stop(self) {
        self.shutdown.trigger();
        let res = tokio::time::timeout(PATIENCE, self.server)
            .await
            .expect("serve returns after shutdown")
            .expect("serve task does not panic");
        res.expect("serve returns Ok");
    }
}

/// A client that neither decompresses nor uses a proxy: raw bytes.
fn raw_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_gzip()
        .no_brotli()
        .no_proxy()
        .build()
        .unwrap()
}

#[tokio::test]
async fn serve_answers_over_a_socket_and_returns_after_shutdown() {
    let fx = Fixture::new();
    let file = fx.file("atom.xml");
    let running = start(fx.app.clone(), Duration::from_secs(5)).await;

    // reqwest asks for br and gzip and decodes what it gets.
    let decoding = reqwest::Client::builder().no_proxy().build().unwrap();
    let res = decoding.get(running.url("/atom.xml")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-type"],
        "application/atom+xml; charset=utf-8"
    );
    assert_eq!(res.bytes().await.unwrap(), file.body);

    let res = raw_client()
        .get(running.url("/atom.xml"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-encoding"], "gzip");
    assert_eq!(
        res.headers()["content-length"],
        file.gzip().len().to_string().as_str()
    );
    assert_eq!(res.bytes().await.unwrap(), file.gzip());

    let etag = format!("\"{}-gz\"", file.digest);
    let res = raw_client()
        .get(running.url("/atom.xml"))
        .header("accept-encoding", "gzip")
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 304);
    assert_eq!(res.headers()["etag"], etag.as_str());
    assert!(res.headers().get("content-length").is_none());
    assert!(res.bytes().await.unwrap().is_empty());

    let res = raw_client()
        .head(running.url("/atom.xml"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["content-length"],
        file.body.len().to_string().as_str()
    );
    assert!(res.bytes().await.unwrap().is_empty());

    let addr = running.addr;
    running.stop().await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "nothing listens once serve has returned"
    );
}

#[tokio::test]
async fn raw_request_targets_that_climb_out_are_refused_over_a_socket() {
    let fx = Fixture::new();
    let running = start(fx.app.clone(), Duration::from_secs(5)).await;
    for target in [
        "/../Cargo.toml",
        "/tags/rust/../../atom.xml",
        "//etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/..\\Cargo.toml",
        "/atom.xml\\",
    ] {
        let mut tcp = tokio::net::TcpStream::connect(running.addr).await.unwrap();
        let request =
            format!("GET {target} HTTP/1.1\r\nHost: example.org\r\nConnection: close\r\n\r\n");
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        tcp.read_to_end(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer);
        let status = answer.lines().next().unwrap_or_default();
        assert!(
            status == "HTTP/1.1 404 Not Found" || status == "HTTP/1.1 400 Bad Request",
            "{target}: {status}"
        );
    }
    running.stop().await;
}

/// An application serving one feed far larger than any socket buffer, so
/// that its response cannot finish before the client reads it. Built
/// without compressed bodies: compressing this much takes long in debug
/// builds, and the raw client asks for identity anyway.
fn big_feed_app() -> (Router, Arc<FeedFile>) {
    let fx = Fixture::new();
    let mut body = b"<rss version=\"2.0\"><channel><title>Big</title>".to_vec();
    body.resize(64 << 20, b' ');
    body.extend_from_slice(b"</channel></rss>");
    let file = Arc::new(
        FeedFile::identity_only("big.xml".into(), FeedFormat::Rss, body, last_modified())
            .with_title("Big"),
    );
    let mut files = BTreeMap::new();
    files.insert("big.xml".to_string(), Arc::clone(&file));
    fx.state.served.publish(Snapshot { files });
    (fx.app.clone(), file)
}

#[tokio::test]
async fn a_request_in_flight_at_shutdown_still_completes() {
    let (app, file) = big_feed_app();
    let running = start(app, Duration::from_secs(60)).await;

    let mut res = raw_client()
        .get(running.url("/big.xml"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-length"],
        file.body.len().to_string().as_str()
    );

    // The headers are here, the body is not: shut down now.
    running.shutdown.trigger();
    let mut received = 0;
    while let Some(chunk) = res.chunk().await.expect("the body keeps coming") {
        if received == 0 {
            // 64 MiB cannot sit in socket buffers: the server is still
            // writing, so serve cannot have returned.
            assert!(!running.server.is_finished());
        }
        let end = received + chunk.len();
        assert!(end <= file.body.len(), "no more than the body");
        assert!(
            chunk == file.body[received..end],
            "bytes {received}..{end} intact"
        );
        received = end;
    }
    assert_eq!(received, file.body.len(), "the whole body");

    let res = tokio::time::timeout(PATIENCE, running.server)
        .await
        .expect("serve returns once the response is done")
        .unwrap();
    res.unwrap();
}

#[tokio::test]
async fn serve_returns_after_the_grace_period_when_a_client_stalls() {
    let (app, _file) = big_feed_app();
    let running = start(app, Duration::from_millis(200)).await;

    // Read the headers, then never read the body.
    let stalled = raw_client()
        .get(running.url("/big.xml"))
        .send()
        .await
        .unwrap();
    assert_eq!(stalled.status(), 200);

    running.shutdown.trigger();
    let res = tokio::time::timeout(PATIENCE, running.server)
        .await
        .expect("serve gives up on the stalled client after the grace period")
        .unwrap();
    res.expect("cut short is still Ok");
    drop(stalled);
}
