//! SMTP itself: the pool's settings read from `[mail.smtp]` (TLS roots,
//! credentials), and one mail transaction on a pooled connection, with
//! PIPELINING where the server offers it.

use std::fmt;

use anyhow::{bail, Context};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, TlsParameters};
use lettre::transport::smtp::commands::{Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use tokio::sync::Semaphore;

use super::{Conn, SendError, SmtpPool};
use crate::config::{Config, SmtpTls};
use crate::mail::Wire;

/// Text lettre writes as it is: lettre sends a command's `Display` and
/// reads one reply, so a flight of commands, or message content, goes
/// through [`AsyncSmtpConnection::command`] in one write, and the replies
/// after the first are read with `read_response`.
pub(super) struct Flight<'a>(pub(super) &'a str, pub(super) &'static str);

impl fmt::Display for Flight<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)?;
        f.write_str(self.1)
    }
}

/// An address of the envelope has a non-ASCII local part: the server must
/// offer SMTPUTF8 (domains are ASCII by then, see `SubscriberEmail`).
pub(super) fn needs_smtputf8(envelope: &lettre::address::Envelope) -> bool {
    envelope
        .from()
        .into_iter()
        .chain(envelope.to())
        .any(|a: &lettre::Address| !AsRef::<str>::as_ref(a).is_ascii())
}

/// The SMTP pool `[mail.smtp]` describes, checked but not connected, and
/// its description for logs (never the password).
pub(super) fn smtp_pool(config: &Config) -> anyhow::Result<(SmtpPool, String)> {
    let mail = &config.mail;
    let smtp = &mail.smtp;
    let origins = &config.origins;
    if smtp.host.trim().is_empty() {
        bail!(origins.error("mail.smtp.host", "must not be empty"));
    }
    // Fails early for a host name TLS cannot verify or a CA file that
    // cannot be read.
    let tls_parameters = match smtp.tls {
        SmtpTls::None => None,
        SmtpTls::Starttls | SmtpTls::Tls => {
            Some(tls_parameters(&smtp.host, smtp.ca_file.as_deref())?)
        }
    };
    let timeout = smtp.timeout.0;
    if timeout.is_zero() {
        bail!(origins.error("mail.smtp.timeout", "must be longer than 0"));
    }
    let mut credentials = None;
    let user = match (&smtp.username, &smtp.password) {
        (Some(user), Some(password)) => {
            credentials = Some(Credentials::new(
                user.clone(),
                password.expose().to_string(),
            ));
            Some(user.as_str())
        }
        (None, None) => None,
        (Some(_), None) => bail!(
            "config key `mail.smtp.username` is set but the password is not (give it in HERALD_MAIL__SMTP__PASSWORD)"
        ),
        (None, Some(_)) => bail!(
            "the SMTP password is set (HERALD_MAIL__SMTP__PASSWORD) but `mail.smtp.username` is not"
        ),
    };
    let security = match smtp.tls {
        SmtpTls::None => "no TLS",
        SmtpTls::Starttls => "STARTTLS",
        SmtpTls::Tls => "TLS",
    };
    let auth = match user {
        Some(user) => format!(", as {user}"),
        None => String::new(),
    };
    let description = format!(
        "SMTP {}:{} ({security}{auth}, up to {} connections, timeout {:?})",
        smtp.host,
        smtp.port,
        smtp.pool_size.max(1),
        timeout
    );
    let pool = SmtpPool {
        host: smtp.host.clone(),
        port: smtp.port,
        tls: smtp.tls,
        tls_parameters,
        credentials,
        hello: ClientId::default(),
        timeout,
        idle: std::sync::Mutex::new(Vec::new()),
        slots: Semaphore::new(smtp.pool_size.max(1) as usize),
        size: smtp.pool_size.max(1) as usize,
    };
    Ok((pool, description))
}

pub(super) const CERT_BEGIN: &str = "-----BEGIN CERTIFICATE-----";

/// TLS for `host`: the system's CA certificates, plus those in `ca_file`.
pub(super) fn tls_parameters(
    host: &str,
    ca_file: Option<&std::path::Path>,
) -> anyhow::Result<TlsParameters> {
    let mut builder = TlsParameters::builder(host.to_string());
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).with_context(|| {
            format!(
                "config key `mail.smtp.ca_file`: cannot read {}",
                path.display()
            )
        })?;
        let no_certs = || {
            format!(
                "config key `mail.smtp.ca_file`: {} does not hold PEM certificates",
                path.display()
            )
        };
        if !pem
            .windows(CERT_BEGIN.len())
            .any(|w| w == CERT_BEGIN.as_bytes())
        {
            bail!(no_certs());
        }
        let cert = Certificate::from_pem(&pem).with_context(no_certs)?;
        builder = builder.add_root_certificate(cert);
    }
    builder
        .build_rustls()
        .with_context(|| format!("config key `mail.smtp.host`: cannot use `{host}` for TLS"))
}

/// Whether a connection can be used again after a failed transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reusable {
    Yes,
    No,
}

/// A reply that is an error: negative (the connection is fine) or none at
/// all (it is not).
pub(super) fn failed(e: &lettre::transport::smtp::Error) -> (SendError, Reusable) {
    let reusable = if e.status().is_some() {
        Reusable::Yes
    } else {
        Reusable::No
    };
    (SendError::from_smtp(e), reusable)
}

/// One mail transaction: MAIL FROM, RCPT TO for each recipient, DATA, the
/// content. With PIPELINING the commands up to DATA go in one write (RFC
/// 2920 §3.1: DATA ends a group) and every reply is read, in order, even
/// after a failure, so the connection stays in step; a failed
/// transaction is reset with RSET.
pub(super) async fn transaction(conn: &mut Conn, wire: &Wire) -> Result<(), (SendError, Reusable)> {
    let (envelope, data) = (wire.envelope(), wire.data());
    let smtp = &mut conn.smtp;
    let mut parameters = Vec::new();
    if needs_smtputf8(envelope) {
        parameters.push(MailParameter::SmtpUtfEight);
    }
    if !wire.is_ascii() {
        if !smtp.server_info().supports_feature(Extension::EightBitMime) {
            return Err((
                SendError::Other(
                    "the message is not ASCII and the SMTP server does not offer 8BITMIME".into(),
                ),
                Reusable::Yes,
            ));
        }
        parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    let mut commands = vec![Mail::new(envelope.from().cloned(), parameters).to_string()];
    for to in envelope.to() {
        commands.push(Rcpt::new(to.clone(), Vec::new()).to_string());
    }
    commands.push("DATA\r\n".to_string());

    let mut first_error = None;
    let mut data_open = false;
    if conn.pipelining {
        let flight = commands.concat();
        let mut replies = vec![smtp.command(Flight(&flight, "")).await];
        for _ in 1..commands.len() {
            replies.push(smtp.read_response().await);
        }
        for (i, reply) in replies.iter().enumerate() {
            match reply {
                Ok(_) if i + 1 == commands.len() => data_open = true,
                Ok(_) => {}
                Err(e) if e.status().is_none() => return Err(failed(e)),
                Err(e) => {
                    first_error.get_or_insert_with(|| failed(e));
                }
            }
        }
    } else {
        for (i, command) in commands.iter().enumerate() {
            match smtp.command(Flight(command, "")).await {
                Ok(_) => data_open = i + 1 == commands.len(),
                Err(e) => {
                    first_error = Some(failed(&e));
                    break;
                }
            }
        }
    }
    if let Some(error) = first_error {
        if data_open {
            // A server that opened DATA although a command before it
            // failed gets an empty message, ended at once.
            smtp.command(Flight(".\r\n", ""))
                .await
                .map_err(|e| failed(&e))?;
        }
        if error.1 == Reusable::Yes {
            smtp.command(Rset).await.map_err(|e| failed(&e))?;
        }
        return Err(error);
    }
    // Dot-stuffed, with its end (see `Wire`): one buffer, one write.
    match smtp.command(Flight(data, "")).await {
        Ok(_) => Ok(()),
        Err(e) => {
            let (error, reusable) = failed(&e);
            // The reply ends the transaction (RFC 5321 §4.1.1.4), but not
            // every server forgets its envelope when it fails the content
            // (aiosmtpd then answers the next MAIL "503 nested MAIL
            // command", a 5xx that would bounce the next recipient):
            // reset before the connection is used again, or drop it.
            if reusable == Reusable::Yes && smtp.command(Rset).await.is_err() {
                return Err((error, Reusable::No));
            }
            Err((error, reusable))
        }
    }
}
