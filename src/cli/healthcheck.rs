//! `herald healthcheck`: asks a running daemon's `/healthz` whether it
//! answers (or, with `--ready`, its `/readyz` whether it serves current
//! feeds), so a container's `HEALTHCHECK` needs no curl in the image.
//!
//! Exit codes follow Docker's health-check contract: 0 healthy, 1 not.
//! Every failure, a config that does not load included, is 1 with one line
//! on stderr saying why (Docker reserves 2).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use url::Url;

use crate::config::Config;

/// Long enough for a loaded daemon to answer, short enough that a hung one
/// is reported well within Docker's default 30 s check timeout.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Which probe to ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// `/healthz`: the process answers.
    Alive,
    /// `/readyz`: the feeds of a successful build are served.
    Ready,
}

impl Probe {
    fn path(self) -> &'static str {
        match self {
            Probe::Alive => "/healthz",
            Probe::Ready => "/readyz",
        }
    }
}

/// The `/healthz` URL of a daemon listening on `listen`. A wildcard bind
/// address (`0.0.0.0`, `::`) accepts connections on every interface but is
/// no address to connect to, so it is reached through loopback.
pub fn healthz_url(listen: SocketAddr) -> Url {
    probe_url(listen, Probe::Alive)
}

/// The URL of `probe` of a daemon listening on `listen`.
pub fn probe_url(listen: SocketAddr, probe: Probe) -> Url {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let addr = SocketAddr::new(ip, listen.port());
    let mut url =
        Url::parse(&format!("http://{addr}/")).expect("a socket address makes a valid URL");
    url.set_path(probe.path());
    url
}

/// GETs `url` once; healthy means `200 OK` within `timeout`. Returns what
/// answered, for the success line.
pub async fn probe(url: &Url, timeout: Duration) -> anyhow::Result<String> {
    let client = reqwest::Client::builder()
        .timeout(timeout)
        // A proxy set for the daemon's outgoing requests must not stand
        // between the check and the local daemon, and a redirect is no
        // sign of health.
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("herald-healthcheck/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("cannot build the HTTP client")?;
    let response = match client.get(url.clone()).send().await {
        Ok(response) => response,
        Err(e) if e.is_timeout() => bail!("no answer from {url} within {timeout:?}"),
        Err(e) => bail!("no answer from {url}: {}", causes(&e)),
    };
    let status = response.status();
    // The body says why (`/readyz`: "not ready: …"); a line of it at most.
    let body = response.text().await.unwrap_or_default();
    let said: String = body
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control())
        .take(300)
        .collect();
    let said = if said.is_empty() {
        String::new()
    } else {
        format!(": {said}")
    };
    if status != reqwest::StatusCode::OK {
        bail!("{url} answered {status}{said}");
    }
    Ok(format!("{url} answered {status}{said}"))
}

/// The causes of `e`, on one line. reqwest's own message only repeats the
/// URL ("error sending request for url (…)"); the reason, such as
/// "Connection refused", is in its sources.
fn causes(e: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        parts.push(c.to_string());
        cause = c.source();
    }
    if parts.is_empty() {
        e.to_string()
    } else {
        parts.join(": ")
    }
}

/// The subcommand: the URL from `url`, else from `server.listen` of the
/// config at `config_path` (with `HERALD_…` overrides, as `herald run`
/// reads it). Prints one line and returns the exit code.
pub fn run(config_path: &Path, url: Option<&Url>, probe: Probe) -> ExitCode {
    match check(config_path, url, probe) {
        Ok(line) => {
            // The exit code is the answer; a closed stdout changes nothing.
            let _ = outln!("healthy: {line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("unhealthy: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check(config_path: &Path, url: Option<&Url>, which: Probe) -> anyhow::Result<String> {
    let url = match url {
        Some(url) => url.clone(),
        None => probe_url(Config::load(config_path)?.server.listen, which),
    };
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(probe(&url, TIMEOUT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_bind_address_is_reached_through_loopback() {
        let url = |s: &str| healthz_url(s.parse().unwrap()).to_string();
        assert_eq!(url("0.0.0.0:8080"), "http://127.0.0.1:8080/healthz");
        assert_eq!(url("[::]:8080"), "http://[::1]:8080/healthz");
    }

    #[tokio::test]
    async fn a_daemon_that_never_answers_is_unhealthy_after_the_timeout() {
        // Connections queue in the backlog and are never answered.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = healthz_url(listener.local_addr().unwrap());
        let err = probe(&url, Duration::from_millis(200)).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("no answer from {url} within 200ms")
        );
    }

    #[test]
    fn a_specific_bind_address_is_used_as_it_is() {
        let url = |s: &str| healthz_url(s.parse().unwrap()).to_string();
        assert_eq!(url("127.0.0.1:9000"), "http://127.0.0.1:9000/healthz");
        assert_eq!(url("192.0.2.7:80"), "http://192.0.2.7/healthz");
        assert_eq!(
            url("[2001:db8::1]:8080"),
            "http://[2001:db8::1]:8080/healthz"
        );
    }
}
