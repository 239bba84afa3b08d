//! herald behind a real nginx (Debian's `nginx-light`) as reverse proxy:
//! twelve readers at twelve loopback addresses sign up through it, each
//! within the per-address limit; the consent records hold each reader's
//! own address, not the proxy's; a reader who forges `X-Forwarded-For`
//! gets their real address recorded, through the proxy and around it.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use herald::store::{SqliteStore, Store, SubscriberEmail, Subscribers};
use reqwest::StatusCode;

use crate::helpers::{free_port, spawn_daemon, KillOnDrop, TestSite};

/// nginx with its own prefix, config and logs, in the foreground as one
/// process (`master_process off`: nothing to drop privileges for, no
/// workers to leave behind).
struct Nginx {
    /// Stopped when the test ends, passed or not.
    _proc: KillOnDrop,
    port: u16,
    error_log: PathBuf,
}

fn nginx_binary() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

impl Nginx {
    /// Proxies every path to `upstream`. `None` (skipped) without nginx,
    /// except in CI, where that fails.
    fn start(dir: &Path, upstream: u16) -> Option<Nginx> {
        let Some(bin) = nginx_binary() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "nginx is not installed (apt-get install nginx-light); CI must run the proxy test"
            );
            eprintln!("SKIPPED: nginx is not installed (apt-get install nginx-light)");
            return None;
        };
        let port = free_port();
        let prefix = dir.join("nginx");
        std::fs::create_dir_all(prefix.join("tmp")).unwrap();
        let error_log = prefix.join("error.log");
        let tmp = prefix.join("tmp").display().to_string();
        let conf = format!(
            r#"daemon off;
master_process off;
pid {prefix}/nginx.pid;
error_log {error_log} warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
    }}
}}
"#,
            prefix = prefix.display(),
            error_log = error_log.display(),
        );
        let conf_path = prefix.join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child: Child = Command::new(bin)
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(&conf_path)
            .arg("-e")
            .arg(&error_log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx starts");
        let nginx = Nginx {
            _proc: KillOnDrop(child),
            port,
            error_log,
        };
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "nginx did not listen: {}",
                std::fs::read_to_string(&nginx.error_log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(nginx)
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

/// A client whose connections come from `ip` (any 127.0.0.0/8 address is
/// this machine's).
fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<IpAddr>().unwrap())
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn sign_up(
    client: &reqwest::Client,
    url: &str,
    email: &str,
    forged: Option<&str>,
) -> StatusCode {
    let mut req = client.post(url).form(&[("email", email)]);
    if let Some(xff) = forged {
        req = req.header("x-forwarded-for", xff);
    }
    req.send().await.expect("POST /subscribe").status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_nginx_each_reader_is_limited_and_recorded_by_their_own_address() {
    let mut site = TestSite::new();
    site.write(
        "a.md",
        "+++\ntitle = \"Alpha\"\ndate = 2024-01-02T00:00:00Z\n+++\nBody.\n",
    );
    let outbox = site.dir.path().join("outbox");
    site.extra = format!(
        r#"[server]
trusted_proxies = ["127.0.0.1"]
client_ip_header = "x-forwarded-for"
[rescan]
watch = false
[subscribers]
max_requests_per_ip_per_hour = 10
[mail]
outbox_dir = {outbox:?}
[[digest]]
name = "weekly"
schedule = "0 0 8 * * Mon"
"#,
        outbox = outbox.display().to_string()
    );
    let config = site.config();
    let db = config.database_path();
    let (base, shutdown, task) = spawn_daemon(config).await;
    let herald_port: u16 = base.rsplit(':').next().unwrap().parse().unwrap();
    let Some(nginx) = Nginx::start(site.dir.path(), herald_port) else {
        shutdown.trigger();
        task.await.unwrap().unwrap();
        return;
    };
    let subscribe = nginx.url("/subscribe");

    // Twelve readers: more than the limit of ten from any one address.
    for i in 2..=13 {
        let ip = format!("127.0.0.{i}");
        let status = sign_up(
            &client_from(&ip),
            &subscribe,
            &format!("reader{i}@example.org"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "reader at {ip}");
    }
    // One reader forges the header; nginx appends the real address.
    let forger = client_from("127.0.0.14");
    let status = sign_up(
        &forger,
        &subscribe,
        "forger@example.org",
        Some("203.0.113.66"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // Straight to herald from an address that is no trusted proxy: the
    // header is not believed at all.
    let direct = client_from("127.0.0.15");
    let status = sign_up(
        &direct,
        &format!("{base}/subscribe"),
        "direct@example.org",
        Some("203.0.113.77"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // The limit is per reader: the reader at .2 has nine more, then 429,
    // while the reader at .3 is not affected.
    let reader2 = client_from("127.0.0.2");
    for n in 0..9 {
        let status = sign_up(&reader2, &subscribe, &format!("more{n}@example.org"), None).await;
        assert_eq!(status, StatusCode::OK, "request {} from 127.0.0.2", n + 2);
    }
    let status = sign_up(&reader2, &subscribe, "one-too-many@example.org", None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let status = sign_up(
        &client_from("127.0.0.3"),
        &subscribe,
        "again3@example.org",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let store = SqliteStore::open(&db).await.unwrap();
    let recorded = |email: &str| {
        let store = store.clone();
        let email = SubscriberEmail::parse(email).unwrap();
        async move {
            let sub = store.find(&email).await.unwrap().expect("stored");
            let log = store.consent_log(&email).await.unwrap();
            assert_eq!(log.len(), 1, "{log:?}");
            assert_eq!(log[0].event, "subscribe");
            assert_eq!(log[0].ip, sub.consent.requested_ip, "{log:?}");
            sub.consent.requested_ip.unwrap_or_default()
        }
    };
    for i in 2..=13 {
        assert_eq!(
            recorded(&format!("reader{i}@example.org")).await,
            format!("127.0.0.{i}")
        );
    }
    assert_eq!(recorded("forger@example.org").await, "127.0.0.14");
    assert_eq!(recorded("direct@example.org").await, "127.0.0.15");
    assert_eq!(
        store
            .find(&SubscriberEmail::parse("one-too-many@example.org").unwrap())
            .await
            .unwrap(),
        None
    );
    store.close().await;
    drop(nginx);
    shutdown.trigger();
    task.await.unwrap().expect("the daemon stops cleanly");
}
