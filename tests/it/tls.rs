//! TLS to the mail relay against a local SMTP server whose certificate
//! comes from a CA made here with openssl: no system store trusts it, so
//! herald refuses the server without `mail.smtp.ca_file` and delivers with
//! it. Also a WebSub hub's CA file must hold certificates.

use std::path::{Path, PathBuf};
use std::process::Command;

use herald::base::SubscriberEmail;
use herald::config::Config;
use herald::mail::Mailer;

use crate::smtp::SmtpServer;

/// A CA, and a certificate for `localhost` and 127.0.0.1 signed by it:
/// (CA certificate, server certificate, server key). `None` without
/// openssl, outside CI only.
fn make_ca(dir: &Path) -> Option<(PathBuf, PathBuf, PathBuf)> {
    let openssl = |args: &[&str]| Command::new("openssl").args(args).current_dir(dir).output();
    match openssl(&["version"]) {
        Ok(o) if o.status.success() => {}
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "openssl is missing (apt-get install openssl); CI must run the TLS test"
            );
            eprintln!("SKIPPED: openssl is not installed");
            return None;
        }
    }
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    // One command line per string: a P-256 CA, a key and request for the
    // server, the request signed by the CA with the server's names.
    let key = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
    let commands = [
        format!("req -x509 {key} -keyout ca.key -out ca.pem -days 2 -subj /CN=herald-test-CA -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign"),
        format!("req {key} -keyout server.key -out server.csr -subj /CN=localhost"),
        "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile server.ext".to_string(),
    ];
    for command in &commands {
        let args: Vec<&str> = command.split(' ').collect();
        let out = openssl(&args).unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Some((
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    ))
}

async fn mailer(port: u16, ca_file: Option<&Path>) -> Mailer {
    let ca = ca_file
        .map(|p| format!("ca_file = {:?}\n", p.display().to_string()))
        .unwrap_or_default();
    let text = format!(
        r#"[site]
title = "T"
base_url = "https://example.org/"
author = {{ name = "A" }}
[mail]
transport = "smtp"
from = "TLS Test <news@example.org>"
[mail.smtp]
host = "localhost"
port = {port}
tls = "starttls"
timeout = "10s"
{ca}"#
    );
    Mailer::from_config(&Config::parse(&text).unwrap())
        .await
        .unwrap()
}

async fn send(mailer: &Mailer, to: &str) -> Result<(), herald::mail::SendError> {
    let message = mailer
        .compose(
            &SubscriberEmail::parse(to).unwrap(),
            "Over TLS",
            "Plain text.",
            "<p>HTML.</p>",
        )
        .unwrap()
        .build()
        .unwrap();
    mailer.send(&message).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_behind_a_private_ca_is_refused_without_ca_file_and_used_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let Some((ca, cert, key)) = make_ca(dir.path()) else {
        return;
    };
    let Some(server) = SmtpServer::start_with_tls(Some((cert, key))) else {
        return;
    };

    let untrusting = mailer(server.port(), None).await;
    let err = send(&untrusting, "refused@example.net")
        .await
        .expect_err("a certificate from an unknown CA is refused");
    eprintln!("without ca_file: {err}");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
    assert!(server.messages().is_empty(), "nothing went in the clear");

    let trusting = mailer(server.port(), Some(&ca)).await;
    send(&trusting, "delivered@example.net")
        .await
        .expect("delivered with the CA in mail.smtp.ca_file");
    let got = server.messages();
    assert_eq!(got.len(), 1, "{}", server.log());
    assert_eq!(got[0].0, "delivered@example.net");
    trusting.shutdown().await;
}

#[tokio::test]
async fn a_ca_file_without_certificates_stops_herald_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("not-a-ca.pem");
    std::fs::write(&bogus, "hello\n").unwrap();
    let text = format!(
        "[site]\ntitle = \"T\"\nbase_url = \"https://example.org/\"\nauthor = {{ name = \"A\" }}\n[mail]\ntransport = \"smtp\"\n[mail.smtp]\nhost = \"smtp.example.org\"\nca_file = {:?}\n",
        bogus.display().to_string()
    );
    let err = Mailer::from_config(&Config::parse(&text).unwrap())
        .await
        .expect_err("no certificates");
    let msg = format!("{err:#}");
    assert!(msg.contains("mail.smtp.ca_file"), "{msg}");
    let missing = text.replace("not-a-ca.pem", "missing.pem");
    let err = Mailer::from_config(&Config::parse(&missing).unwrap())
        .await
        .expect_err("no file");
    assert!(format!("{err:#}").contains("cannot read"), "{err:#}");
}
