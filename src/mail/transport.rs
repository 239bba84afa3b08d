//! The configured transport (SMTP pool or file outbox) and the errors it
//! reports, classified for retrying.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::Ehlo;
use lettre::transport::smtp::extension::{ClientId, Extension};
use lettre::Message;
use tokio::sync::Semaphore;

use super::message::{MessageError, Outgoing};
use super::wire::Wire;
use crate::base::fs::write_private;
use crate::base::SubscriberEmail;
use crate::config::{Config, MailTransportKind, SmtpTls};

mod smtp;

use smtp::{needs_smtputf8, smtp_pool, transaction, Reusable};

/// Why a message was not sent, in the terms a retry policy needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Try again later: a 4xx reply, a refused, dropped or stalled
    /// connection.
    #[error("temporary failure: {reply}")]
    Transient { reply: String },
    /// Do not repeat: a 5xx reply; for a recipient it is a hard bounce.
    #[error("permanent failure: {reply}")]
    Permanent { reply: String },
    /// Neither: a local problem (the outbox cannot be written, TLS
    /// settings, the server lacks a needed extension).
    #[error("{0}")]
    Other(String),
}

impl SendError {
    pub fn is_transient(&self) -> bool {
        matches!(self, SendError::Transient { .. })
    }

    pub fn is_permanent(&self) -> bool {
        matches!(self, SendError::Permanent { .. })
    }

    /// The server's reply (`550 5.1.1 No such user`) or a description of
    /// the failure, for the delivery ledger.
    pub fn reply(&self) -> &str {
        match self {
            SendError::Transient { reply } | SendError::Permanent { reply } => reply,
            SendError::Other(message) => message,
        }
    }

    fn from_smtp(err: &lettre::transport::smtp::Error) -> SendError {
        // A negative reply: its code and text, as the server sent them.
        if let Some(code) = err.status() {
            let text = std::error::Error::source(err)
                .map(|s| s.to_string())
                .unwrap_or_default();
            let reply = format!("{code} {text}").trim_end().to_string();
            return if err.is_permanent() {
                SendError::Permanent { reply }
            } else {
                SendError::Transient { reply }
            };
        }
        let description = err.to_string();
        if err.is_timeout() {
            return SendError::Transient { reply: description };
        }
        if err.is_client() || err.is_tls() || err.is_transport_shutdown() {
            return SendError::Other(description);
        }
        // What is left are lettre's connection, network and response
        // errors. A response error is mostly a connection that closed
        // before the reply was complete ("incomplete response"); all of
        // these may well work on the next attempt.
        SendError::Transient { reply: description }
    }
}

/// Sends messages through the transport `[mail]` configures. Cheap to
/// clone; clones share the SMTP connection pool.
#[derive(Clone)]
pub struct Mailer {
    transport: Transport,
    from: Mailbox,
    description: Arc<str>,
}

#[derive(Clone)]
enum Transport {
    Smtp(Arc<SmtpPool>),
    /// One `<random>.eml` per message in this folder, readable by its
    /// owner only: a message holds the reader's signed links.
    Outbox(Arc<std::path::Path>),
}

/// herald's own SMTP connection pool, on lettre's connection type. lettre's
/// pool sends a NOOP before every reuse (a round trip per message) and its
/// sockets keep Nagle's algorithm on, so the small `CRLF.CRLF` that ends
/// each message waits for the server's delayed ACK, tens of milliseconds
/// per message. Here sockets are `TCP_NODELAY`, only connections idle for
/// a while are checked with NOOP, and:
///
/// - where the server offers PIPELINING (RFC 2920), MAIL FROM, RCPT TO
///   and DATA go in one write and their replies are read together: two
///   round trips per message instead of four (lettre sends one command at
///   a time). Measured to smtp-sink on loopback, 8 connections: 3,436
///   messages/s lock-step before (issue 15), see the README for after;
/// - at most `pool_size` connections exist (in use or idle);
/// - each send is bounded as a whole by the timeout, and a connection that
///   failed or timed out is dropped, never reused (its late replies would
///   be read as answers to the next commands);
/// - STARTTLS and AUTH happen once per connection.
struct SmtpPool {
    host: String,
    port: u16,
    tls: SmtpTls,
    /// Made once: the system's CA certificates (read from disk) plus
    /// `mail.smtp.ca_file`. `None` with `tls = "none"`.
    tls_parameters: Option<TlsParameters>,
    credentials: Option<Credentials>,
    hello: ClientId,
    timeout: Duration,
    idle: std::sync::Mutex<Vec<(Conn, std::time::Instant)>>,
    slots: Semaphore,
    size: usize,
}

/// A connection and what its server offers beyond what lettre tracks.
struct Conn {
    smtp: AsyncSmtpConnection,
    pipelining: bool,
}

/// A connection idle longer than this is checked with NOOP before use.
const CHECK_IDLE_AFTER: Duration = Duration::from_secs(10);

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailer")
            .field("transport", &self.description)
            .field("from", &self.from.to_string())
            .finish()
    }
}

impl Mailer {
    /// Builds the transport; nothing is connected yet, so herald starts
    /// even while the mail server is down. The outbox directory is created
    /// if missing.
    pub async fn from_config(config: &Config) -> anyhow::Result<Mailer> {
        let mail = &config.mail;
        let from: Mailbox = mail.from.mailbox().clone();
        match mail.transport {
            MailTransportKind::Outbox => {
                let dir = &mail.outbox_dir;
                tokio::fs::create_dir_all(dir)
                    .await
                    .with_context(|| format!("cannot create the mail outbox {}", dir.display()))?;
                Ok(Mailer {
                    transport: Transport::Outbox(dir.as_path().into()),
                    from,
                    description: format!("outbox {} (one .eml file per message)", dir.display())
                        .into(),
                })
            }
            MailTransportKind::Smtp => {
                let (pool, description) = smtp_pool(config)?;
                if pool.credentials.is_some() && pool.tls == SmtpTls::None {
                    tracing::warn!(
                        host = %pool.host,
                        "mail.smtp.tls is \"none\": the SMTP password travels unencrypted"
                    );
                }
                Ok(Mailer {
                    transport: Transport::Smtp(Arc::new(pool)),
                    from,
                    description: description.into(),
                })
            }
        }
    }

    /// Checks the `[mail]` settings as [`Mailer::from_config`] does,
    /// creating and connecting nothing (`herald check`).
    pub fn check_config(config: &Config) -> anyhow::Result<()> {
        match config.mail.transport {
            MailTransportKind::Outbox => Ok(()),
            MailTransportKind::Smtp => smtp_pool(config).map(drop),
        }
    }

    /// How many messages can be under way at once: SMTP connections, or
    /// outbox files written side by side.
    pub fn connections(&self) -> usize {
        match &self.transport {
            Transport::Smtp(pool) => pool.size,
            Transport::Outbox(_) => 4,
        }
    }

    /// The sender of every message (`mail.from`).
    pub fn from(&self) -> &Mailbox {
        &self.from
    }

    /// A message from [`Mailer::from`] to `to`; see [`Outgoing::new`].
    pub fn compose(
        &self,
        to: &SubscriberEmail,
        subject: &str,
        text: impl Into<String>,
        html: impl Into<String>,
    ) -> Result<Outgoing, MessageError> {
        Outgoing::new(&self.from, to, subject, text, html)
    }

    /// Sends one message to the recipients of its envelope.
    pub async fn send(&self, message: &Message) -> Result<(), SendError> {
        self.send_wire(&Wire::from_message(message)).await
    }

    /// Sends a message built for the wire to the recipients of its
    /// envelope.
    pub async fn send_wire(&self, wire: &Wire) -> Result<(), SendError> {
        match &self.transport {
            Transport::Outbox(dir) => {
                let bytes = wire.to_bytes();
                let path = dir.join(format!("{:032x}.eml", rand::random::<u128>()));
                // Written whole or not at all (renamed into place), synced:
                // a message in the outbox counts as sent.
                tokio::task::spawn_blocking(move || {
                    write_private(&path, |w| Ok(w.write_all(&bytes)?))
                })
                .await
                .map_err(|e| SendError::Other(format!("cannot write to the outbox: {e}")))?
                .map_err(|e| SendError::Other(format!("cannot write to the outbox: {e:#}")))
            }
            Transport::Smtp(pool) => pool.send(wire).await,
        }
    }

    /// Where messages go, for logs: host, port, TLS mode and user, never
    /// the password.
    pub fn describe(&self) -> String {
        self.description.to_string()
    }

    /// Closes pooled SMTP connections (QUIT), waiting at most the SMTP
    /// timeout. Call once when done.
    pub async fn shutdown(&self) {
        let timeout = match &self.transport {
            Transport::Smtp(pool) => pool.timeout,
            Transport::Outbox(_) => Duration::ZERO,
        };
        self.shutdown_by(tokio::time::Instant::now() + timeout)
            .await;
    }

    /// Closes pooled SMTP connections (QUIT, all at once) by `deadline` at
    /// the latest; a server that has not answered by then is simply
    /// disconnected. Call once at shutdown.
    pub async fn shutdown_by(&self, deadline: tokio::time::Instant) {
        if let Transport::Smtp(pool) = &self.transport {
            let idle: Vec<_> = match pool.idle.lock() {
                Ok(mut idle) => std::mem::take(&mut *idle),
                Err(_) => return,
            };
            let quits = idle.into_iter().map(|(mut conn, _)| async move {
                let _ = conn.smtp.quit().await;
            });
            let all = futures_util::future::join_all(quits);
            if tokio::time::timeout_at(deadline, all).await.is_err() {
                tracing::debug!("SMTP server slow to answer QUIT; disconnected");
            }
        }
    }
}

impl SmtpPool {
    /// Sends one message.
    async fn send(&self, wire: &Wire) -> Result<(), SendError> {
        let envelope = wire.envelope();
        // Waiting for a free slot is not the server's fault, so it is not
        // part of the timeout.
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| SendError::Other("the SMTP transport is shut down".into()))?;
        let attempt = async {
            let mut conn = self.checkout().await?;
            if needs_smtputf8(envelope)
                && !conn
                    .smtp
                    .server_info()
                    .supports_feature(Extension::SmtpUtfEight)
            {
                // Nothing was sent, and trying again cannot help: a
                // permanent failure for this recipient, as the 553 5.6.7
                // of RFC 6531 would be, on a connection still good.
                self.checkin(conn);
                return Err(SendError::Permanent {
                    reply: format!(
                        "{}:{} does not support SMTPUTF8, which the address needs (5.6.7, RFC 6531)",
                        self.host, self.port
                    ),
                });
            }
            match transaction(&mut conn, wire).await {
                Ok(()) => {
                    self.checkin(conn);
                    Ok(())
                }
                Err((e, Reusable::Yes)) => {
                    self.checkin(conn);
                    Err(e)
                }
                // Dropped: its state is unknown, and a QUIT could hang.
                Err((e, Reusable::No)) => Err(e),
            }
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(result) => result,
            // The connection in use is dropped with the future.
            Err(_elapsed) => Err(SendError::Transient {
                reply: format!("no reply from the SMTP server within {:?}", self.timeout),
            }),
        }
    }

    /// An idle connection (checked with NOOP when idle for a while), or a
    /// new one.
    async fn checkout(&self) -> Result<Conn, SendError> {
        loop {
            let idle = self.idle.lock().expect("pool lock").pop();
            let Some((mut conn, since)) = idle else {
                return self.connect().await;
            };
            if conn.smtp.has_broken() {
                continue;
            }
            if since.elapsed() < CHECK_IDLE_AFTER || conn.smtp.test_connected().await {
                return Ok(conn);
            }
            tracing::debug!("dropping an SMTP connection that went stale");
        }
    }

    fn checkin(&self, conn: Conn) {
        if !conn.smtp.has_broken() {
            self.idle
                .lock()
                .expect("pool lock")
                .push((conn, std::time::Instant::now()));
        }
    }

    async fn connect(&self) -> Result<Conn, SendError> {
        let transient = |what: &str, e: &dyn std::fmt::Display| SendError::Transient {
            reply: format!("cannot {what} {}:{}: {e}", self.host, self.port),
        };
        let tls = || {
            self.tls_parameters
                .clone()
                .ok_or_else(|| SendError::Other(format!("no TLS set-up for {}", self.host)))
        };
        let mut conn = if self.tls == SmtpTls::Tls {
            // Implicit TLS: lettre wraps the socket itself (without
            // TCP_NODELAY; TLS records batch the writes anyway).
            AsyncSmtpConnection::connect_tokio1(
                (self.host.as_str(), self.port),
                Some(self.timeout),
                &self.hello,
                Some(tls()?),
                None,
            )
            .await
            .map_err(|e| SendError::from_smtp(&e))?
        } else {
            let stream = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
                .await
                .map_err(|e| transient("connect to", &e))?;
            stream
                .set_nodelay(true)
                .map_err(|e| transient("set TCP_NODELAY on the connection to", &e))?;
            let mut conn =
                AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello)
                    .await
                    .map_err(|e| SendError::from_smtp(&e))?;
            if self.tls == SmtpTls::Starttls {
                if !conn.can_starttls() {
                    return Err(SendError::Other(format!(
                        "{}:{} does not offer STARTTLS (mail.smtp.tls = \"starttls\")",
                        self.host, self.port
                    )));
                }
                conn.starttls(tls()?, &self.hello)
                    .await
                    .map_err(|e| SendError::from_smtp(&e))?;
            }
            conn
        };
        if let Some(credentials) = &self.credentials {
            conn.auth(DEFAULT_MECHANISMS, credentials)
                .await
                .map_err(|e| SendError::from_smtp(&e))?;
        }
        // lettre keeps no note of PIPELINING: one more EHLO (allowed at any
        // time, RFC 5321 §4.1.4) tells, once per connection.
        let ehlo = conn
            .command(Ehlo::new(self.hello.clone()))
            .await
            .map_err(|e| SendError::from_smtp(&e))?;
        let pipelining = ehlo
            .message()
            .any(|l| l.split_whitespace().next() == Some("PIPELINING"));
        Ok(Conn {
            smtp: conn,
            pipelining,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SITE: &str = r#"
[site]
title = "T"
base_url = "https://example.org/"
author = { name = "A" }
"#;

    #[tokio::test]
    async fn describe_names_the_server_but_never_the_password() {
        let text = format!(
            "{SITE}\n[mail]\ntransport = \"smtp\"\n[mail.smtp]\nhost = \"smtp.example.org\"\nusername = \"herald\"\n"
        );
        let env = [(
            "HERALD_MAIL__SMTP__PASSWORD".to_string(),
            "hunter2-secret".to_string(),
        )];
        let config = Config::parse_with_env(&text, env).unwrap();
        let mailer = Mailer::from_config(&config).await.unwrap();
        let description = mailer.describe();
        assert!(
            description.contains("smtp.example.org:587"),
            "{description}"
        );
        assert!(description.contains("STARTTLS"), "{description}");
        assert!(!description.contains("hunter2"), "{description}");
        assert!(!format!("{mailer:?}").contains("hunter2"));
    }

    #[tokio::test]
    async fn a_username_without_password_is_a_config_error() {
        let text = format!(
            "{SITE}\n[mail]\ntransport = \"smtp\"\n[mail.smtp]\nhost = \"smtp.example.org\"\nusername = \"herald\"\n"
        );
        let config = Config::parse(&text).unwrap();
        let err = format!("{:#}", Mailer::from_config(&config).await.unwrap_err());
        assert!(err.contains("HERALD_MAIL__SMTP__PASSWORD"), "{err}");
    }

    #[test]
    fn send_errors_sort_into_transient_permanent_and_other() {
        let t = SendError::Transient {
            reply: "451 4.3.0 later".into(),
        };
        let p = SendError::Permanent {
            reply: "550 5.1.1 no".into(),
        };
        let o = SendError::Other("disk full".into());
        assert!(t.is_transient() && !t.is_permanent());
        assert!(p.is_permanent() && !p.is_transient());
        assert!(!o.is_transient() && !o.is_permanent());
        assert_eq!(p.reply(), "550 5.1.1 no");
    }
}
