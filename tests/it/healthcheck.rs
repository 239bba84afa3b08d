//! `herald healthcheck`, the real binary against a real daemon: exit 0 when
//! `/healthz` answers 200, 1 with a one-line reason otherwise.

use std::path::Path;
use std::process::Output;

use crate::helpers::{spawn_daemon, TestSite};

/// Runs `herald healthcheck --config <config> <args>` without any
/// `HERALD_…` variable of the test process.
async fn healthcheck(config: &Path, args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"));
    cmd.arg("healthcheck")
        .arg("--config")
        .arg(config)
        .args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("HERALD_") {
            cmd.env_remove(k);
        }
    }
    cmd.output().await.expect("herald runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A config whose `server.listen` is `listen`.
fn site_listening_on(listen: &str) -> TestSite {
    let mut site = TestSite::new();
    site.extra = format!("[server]\nlisten = {listen:?}\n");
    site
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_exits_0_when_the_daemon_at_server_listen_answers() {
    let site = TestSite::new();
    let (base, shutdown, task) = spawn_daemon(site.config()).await;
    let port = base.rsplit(':').next().unwrap();

    // The container's case: the daemon binds every interface, and the
    // check reaches it through loopback.
    let checker = site_listening_on(&format!("0.0.0.0:{port}"));
    let config = checker.config_path();
    let out = healthcheck(&config, &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let line = text(&out.stdout);
    assert!(
        line.contains(&format!("http://127.0.0.1:{port}/healthz")),
        "{line}"
    );

    let out = healthcheck(&config, &["--url", &format!("{base}/healthz")]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    shutdown.trigger();
    task.await.unwrap().expect("daemon stops cleanly");
}

#[tokio::test]
async fn healthcheck_exits_1_naming_the_url_when_nothing_listens() {
    // A port that was free a moment ago and is closed now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let checker = site_listening_on(&format!("127.0.0.1:{port}"));
    let out = healthcheck(&checker.config_path(), &[]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("unhealthy: "), "{err}");
    assert!(
        err.contains(&format!("http://127.0.0.1:{port}/healthz")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_exits_1_when_the_answer_is_not_200() {
    let site = TestSite::new();
    let (base, shutdown, task) = spawn_daemon(site.config()).await;
    let out = healthcheck(
        &site.config_path(),
        &["--url", &format!("{base}/no-such-page")],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("404"), "{err}");

    shutdown.trigger();
    task.await.unwrap().expect("daemon stops cleanly");
}

#[tokio::test]
async fn healthcheck_exits_1_not_2_when_the_config_does_not_load() {
    let dir = tempfile::tempdir().unwrap();
    let out = healthcheck(&dir.path().join("missing.toml"), &[]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.starts_with("unhealthy: cannot read config file"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_ready_says_why_while_the_content_directory_is_missing() {
    let mut site = TestSite::new();
    std::fs::remove_dir(&site.content).unwrap();
    site.extra = "[rescan]\nschedule = \"* * * * * *\"\nwatch = false\n".into();
    let (base, shutdown, task) = spawn_daemon(site.config()).await;
    let config = site.config_path();
    let ready = format!("{base}/readyz");
    let alive = format!("{base}/healthz");
    crate::helpers::eventually("the first build has failed", || async {
        let out = healthcheck(&config, &["--ready", "--url", &ready]).await;
        text(&out.stderr).contains("no build has succeeded")
    })
    .await;

    // The process answers, so the liveness check passes ...
    let out = healthcheck(&config, &["--url", &alive]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // ... but it serves nothing, and readiness says so, and why.
    let out = healthcheck(&config, &["--ready", "--url", &ready]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("503"), "{err}");
    assert!(err.contains(&site.content.display().to_string()), "{err}");

    // The directory appears; the next scheduled rescan builds.
    site.write(
        "a.md",
        "+++\ntitle = \"Alpha\"\ndate = 2024-01-02T00:00:00Z\n+++\nBody.\n",
    );
    crate::helpers::eventually("ready after the directory appeared", || async {
        healthcheck(&config, &["--ready", "--url", &ready])
            .await
            .status
            .success()
    })
    .await;
    let out = healthcheck(&config, &["--ready", "--url", &ready]).await;
    assert!(
        text(&out.stdout).contains("200 OK: ready"),
        "{}",
        text(&out.stdout)
    );

    shutdown.trigger();
    task.await.unwrap().expect("daemon stops cleanly");
}
