//! The HTTP edge under clients that misbehave, over real sockets against
//! the real binary: slow request heads are cut off at
//! `server.header_read_timeout` while readers keep being served; the
//! connection cap holds (counted in the process's own file descriptors)
//! and the daemon stays reachable; and with a soft fd limit of 1024 the
//! daemon raises its own limit and serves under 2,000 slow clients.

use std::time::{Duration, Instant};

use crate::child::{
    closed_by_server, enough_fds, plain_client, sample, silent_clients, slow_header_clients, Daemon,
};
use crate::helpers::TestSite;

fn site(server: &str) -> TestSite {
    let mut site = TestSite::new();
    site.write(
        "a.md",
        "+++\ntitle = \"Alpha\"\ndate = 2024-01-02T00:00:00Z\n+++\nBody.\n",
    );
    site.extra = format!("[server]\n{server}\n[rescan]\nwatch = false\n");
    site
}

/// GETs `path` once; its status and how long it took.
async fn timed_get(client: &reqwest::Client, url: &str) -> (u16, Duration) {
    let start = Instant::now();
    let status = match client.get(url).send().await {
        Ok(r) => r.status().as_u16(),
        Err(e) => panic!("GET {url} failed: {e}"),
    };
    (status, start.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_header_clients_are_closed_within_the_timeout_while_readers_get_200s() {
    const SLOW: usize = 500;
    let timeout = Duration::from_secs(2);
    assert!(enough_fds(SLOW as u64 + 100), "500 client sockets");
    let site = site("header_read_timeout = \"2s\"\nmax_connections = 2000");
    let mut daemon = Daemon::start(&site, None);
    daemon.wait_ready().await;

    let reader = {
        let url = daemon.url("/atom.xml");
        tokio::spawn(async move {
            // A new connection per request, as feed readers do.
            let mut results = Vec::new();
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(4) {
                let client = plain_client();
                results.push(timed_get(&client, &url).await);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            results
        })
    };
    let slow = slow_header_clients(
        daemon.port,
        SLOW,
        Duration::from_millis(500),
        Duration::from_secs(10),
    )
    .await;
    let mut closed_after = Vec::new();
    for c in slow {
        closed_after.push(c.await.unwrap().expect("closed by the server within 10 s"));
    }
    closed_after.sort();
    let (first, last) = (closed_after[0], closed_after[SLOW - 1]);
    eprintln!(
        "{SLOW} slow-header clients closed after {first:?} .. {last:?} (median {:?}); header_read_timeout {timeout:?}",
        closed_after[SLOW / 2]
    );
    assert!(
        first >= timeout - Duration::from_millis(50),
        "closed early: {first:?}"
    );
    assert!(
        last <= timeout + Duration::from_secs(1),
        "closed late: {last:?}"
    );

    let results = reader.await.unwrap();
    let slowest = results.iter().map(|(_, d)| *d).max().unwrap();
    eprintln!(
        "meanwhile {} reader requests, all 200, slowest {slowest:?}",
        results.len()
    );
    assert!(results.len() >= 20, "{results:?}");
    assert!(results.iter().all(|(s, _)| *s == 200), "{results:?}");
    assert!(slowest < Duration::from_secs(1), "{results:?}");

    let metrics = daemon.metrics().await;
    let timed_out = sample(
        &metrics,
        "herald_http_connections_closed_total{reason=\"header_timeout\"}",
    );
    assert!(timed_out >= SLOW as f64, "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_cap_holds_and_the_daemon_stays_reachable() {
    const CAP: usize = 100;
    const CLIENTS: usize = 300;
    assert!(enough_fds(CLIENTS as u64 + 100), "client sockets");
    let site = site(&format!(
        "max_connections = {CAP}\nheader_read_timeout = \"30s\"\nkeepalive_timeout = \"30s\""
    ));
    let mut daemon = Daemon::start(&site, None);
    daemon.wait_ready().await;
    let idle_before = daemon.sockets();

    let mut idle = silent_clients(daemon.port, CLIENTS).await;
    // Every connection is accepted in turn; past the cap, each one makes
    // the longest-idle one close.
    let start = Instant::now();
    let mut closed = 0;
    while start.elapsed() < Duration::from_secs(10) {
        closed = 0;
        for s in idle.iter_mut() {
            if closed_by_server(s).await {
                closed += 1;
            }
        }
        if closed >= CLIENTS - CAP {
            break;
        }
    }
    let held = daemon.sockets();
    eprintln!(
        "{CLIENTS} silent clients at a cap of {CAP}: {closed} closed to make room, the daemon holds {held} sockets ({idle_before} before)"
    );
    assert_eq!(closed, CLIENTS - CAP, "the rest are served");
    assert!(
        held <= CAP + idle_before,
        "{held} sockets at a cap of {CAP} ({idle_before} without clients)"
    );

    // Readers still get in: each new connection takes an idle one's slot.
    for i in 0..20 {
        let (status, took) = timed_get(&plain_client(), &daemon.url("/atom.xml")).await;
        assert_eq!(status, 200, "request {i}");
        assert!(took < Duration::from_secs(2), "request {i} took {took:?}");
        assert!(daemon.sockets() <= CAP + idle_before);
    }
    let metrics = daemon.metrics().await;
    let open = sample(&metrics, "herald_http_connections_open");
    assert!(open <= CAP as f64 && open >= 1.0, "{metrics}");
    let evicted = sample(
        &metrics,
        "herald_http_connections_closed_total{reason=\"evicted\"}",
    );
    // The silent clients past the cap made room by evicting idle ones;
    // the readers then took idle slots or the slot the reader before them
    // left (on a loaded machine a reader may find the cap full while a
    // slot is being freed: that connection is refused and the next gets
    // in, which the 200s above show).
    assert!(evicted >= (CLIENTS - CAP) as f64, "{metrics}");
    drop(idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_soft_fd_limit_of_1024_the_daemon_raises_it_and_serves_2000_slow_clients() {
    const SLOW: usize = 2000;
    if !enough_fds(SLOW as u64 + 200) {
        let (_, hard) = rlimit::Resource::NOFILE.get().unwrap();
        let why = format!("the hard fd limit {hard} is too low for {SLOW} client sockets");
        assert!(std::env::var_os("CI").is_none(), "{why}");
        eprintln!("SKIPPED: {why}");
        return;
    }
    let site = site("header_read_timeout = \"20s\"");
    let mut daemon = Daemon::start(&site, Some(1024));
    daemon.wait_ready().await;
    let log = daemon.log();
    assert!(
        log.contains("raised the open-file limit from 1024 to"),
        "{log}"
    );
    let (soft, hard) = daemon.open_file_limits();
    assert_eq!(soft, hard, "the soft limit is the hard one now");

    let slow = slow_header_clients(
        daemon.port,
        SLOW,
        Duration::from_secs(5),
        Duration::from_secs(30),
    )
    .await;
    // All of them are being served: more sockets than 1024 descriptors.
    let start = Instant::now();
    while daemon.sockets() < SLOW && start.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let held = daemon.sockets();
    eprintln!(
        "soft fd limit 1024 at start, now {soft}: {held} sockets open with {SLOW} slow clients"
    );
    assert!(held >= SLOW, "{held}");
    for i in 0..10 {
        let (status, took) = timed_get(&plain_client(), &daemon.url("/healthz")).await;
        assert_eq!(status, 200, "request {i}");
        assert!(took < Duration::from_secs(2), "request {i} took {took:?}");
    }
    assert!(!daemon.log().contains("Too many open files"));
    for c in slow {
        c.abort();
    }
}
