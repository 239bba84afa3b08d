//! A real DSN, end to end: a private Postfix (Debian's `postfix`, its own
//! configuration, queue and log in a temporary folder, listening on a
//! loopback port, started and stopped by the test) accepts a digest for an
//! address it has no mailbox for, bounces it, and mails its delivery
//! status notification to the digest's envelope sender, which it routes to
//! the test's SMTP server. That report, as Postfix wrote it, is piped into
//! `herald bounces ingest`.
//!
//! Postfix must start as root. Without it (or not as root) the test prints
//! `SKIPPED: …`, except in CI (`CI` set), where it fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use herald::store::{SqliteStore, Status, Store, SubscriberEmail, Subscribers};

use super::helpers::{free_port, herald_command, import_active, wait_until, TestSite};
use super::smtp::SmtpServer;

/// A running private Postfix; stopped when dropped.
struct Postfix {
    dir: tempfile::TempDir,
    port: u16,
}

impl Postfix {
    /// Postfix on a free loopback port, delivering `example.net` locally
    /// (no mailbox exists: every recipient bounces) and relaying mail for
    /// `example.org` to `relay_port`.
    fn start(relay_port: u16) -> Option<Postfix> {
        let missing = if !Path::new("/usr/sbin/postfix").is_file() {
            Some("Postfix is not installed (apt-get install postfix)")
        } else if !std::fs::read_to_string("/proc/self/status")
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        {
            Some("Postfix starts only as root")
        } else {
            None
        };
        if let Some(why) = missing {
            if std::env::var_os("CI").is_some() {
                panic!("{why}; CI must run the Postfix test");
            }
            eprintln!("SKIPPED: {why}");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("herald-postfix")
            .tempdir_in("/tmp")
            .unwrap();
        let d = dir.path();
        for sub in ["conf", "queue", "data"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        let port = free_port();
        let path = d.display();
        std::fs::write(
            d.join("conf/main.cf"),
            format!(
                "compatibility_level = 3.6
queue_directory = {path}/queue
data_directory = {path}/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
mail_owner = postfix
setgid_group = postdrop
myhostname = mail.example.net
mydomain = example.net
myorigin = example.net
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination = example.net
# Accept any local part, so that the unknown one bounces after the fact
# with a DSN (rather than a 550 during the SMTP conversation).
local_recipient_maps =
alias_maps =
alias_database =
transport_maps = inline:{{ example.org=smtp:[127.0.0.1]:{relay_port} }}
smtp_dns_support_level = disabled
mynetworks = 127.0.0.0/8
maillog_file = {path}/maillog
maillog_file_prefixes = {path}
smtputf8_enable = no
biff = no
"
            ),
        )
        .unwrap();
        let services = [
            ("pickup", "unix  n - n 60 1", "pickup"),
            ("cleanup", "unix n - n - 0", "cleanup"),
            ("qmgr", "unix n - n 300 1", "qmgr"),
            ("rewrite", "unix - - n - -", "trivial-rewrite"),
            ("bounce", "unix - - n - 0", "bounce"),
            ("defer", "unix - - n - 0", "bounce"),
            ("trace", "unix - - n - 0", "bounce"),
            ("verify", "unix - - n - 1", "verify"),
            ("proxymap", "unix - - n - -", "proxymap"),
            ("smtp", "unix - - n - -", "smtp"),
            ("relay", "unix - - n - -", "smtp"),
            ("showq", "unix n - n - -", "showq"),
            ("error", "unix - - n - -", "error"),
            ("retry", "unix - - n - -", "error"),
            ("discard", "unix - - n - -", "discard"),
            ("local", "unix - n n - -", "local"),
            ("anvil", "unix - - n - 1", "anvil"),
            ("scache", "unix - - n - 1", "scache"),
            ("postlog", "unix-dgram n - n - 1", "postlogd"),
        ];
        let mut master = format!("127.0.0.1:{port} inet n - n - - smtpd\n");
        for (name, how, command) in services {
            master.push_str(&format!("{name} {how} {command}\n"));
        }
        std::fs::write(d.join("conf/master.cf"), master).unwrap();
        // Postfix's daemons run as its own user: they write in data/, and
        // must reach the folder.
        let status = Command::new("chown")
            .args(["postfix"])
            .arg(d.join("data"))
            .status()
            .unwrap();
        assert!(status.success());
        std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let postfix = Postfix { dir, port };
        let out = postfix.command("start");
        assert!(
            out.status.success(),
            "postfix did not start: {}{}",
            String::from_utf8_lossy(&out.stderr),
            postfix.log()
        );
        wait_until("postfix listens", Duration::from_secs(30), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Some(postfix)
    }

    fn command(&self, what: &str) -> std::process::Output {
        Command::new("/usr/sbin/postfix")
            .arg("-c")
            .arg(self.conf())
            .arg(what)
            .output()
            .unwrap()
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("conf")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = self.command("stop");
    }
}

#[test]
fn a_dsn_postfix_really_wrote_is_matched_and_applied() {
    let Some(sink) = SmtpServer::start() else {
        return;
    };
    let Some(postfix) = Postfix::start(sink.port()) else {
        return;
    };
    let mut site = TestSite::new();
    let date = (Utc::now() - chrono::Duration::hours(1)).to_rfc3339_opts(SecondsFormat::Secs, true);
    site.write(
        "a.md",
        format!("+++\ntitle = \"A\"\ndate = {date}\n+++\n\nText.\n"),
    );
    site.extra = format!(
        "[mail]\ntransport = \"smtp\"\nfrom = \"News <news@example.org>\"\n\
         bounce_address = \"bounces@example.org\"\nbounce_limit = 1\n\
         [mail.smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n\
         [[digest]]\nname = \"news\"\nschedule = \"0 0 0 1 1 * 2099\"\nfirst_digest_articles = 1\n",
        postfix.port
    );
    import_active(
        &site.config().database_path(),
        &[("nobody-here@example.net", &["news"], &[])],
    );
    let out = site.cli(&["digest", "send", "--schedule", "news"]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        postfix.log()
    );
    wait_until("Postfix mailed its report", Duration::from_secs(60), || {
        !sink.messages().is_empty()
    });
    let (rcpt, dsn) = sink.messages().remove(0);
    assert!(rcpt.starts_with("bounces+"), "{rcpt}");
    assert!(
        String::from_utf8_lossy(&dsn).contains("report-type=delivery-status"),
        "{}",
        String::from_utf8_lossy(&dsn)
    );
    let mut child = herald_command(&site.config_path(), &["bounces", "ingest", "-"])
        .env("ORIGINAL_RECIPIENT", &rcpt)
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &dsn).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.contains("applied 1"), "{said}");
    let db = site.config().database_path();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = SqliteStore::open(&db).await.unwrap();
        let email = SubscriberEmail::parse("nobody-here@example.net").unwrap();
        let s = store.find(&email).await.unwrap().unwrap();
        assert_eq!(s.status, Status::Bounced);
        let log = store.consent_log(&email).await.unwrap();
        let bounce = log.iter().find(|e| e.event == "bounce").unwrap();
        assert!(
            bounce.note.as_deref().unwrap().contains("5.1.1"),
            "{bounce:?}"
        );
        store.close().await;
    });
}
