//! Late bounces and complaints: reports mailed back to the envelope
//! sender (DSNs, RFC 3464; abuse reports, RFC 5965), read from a pipe, a
//! file or a Maildir ([`maildir`]), and events from the providers'
//! webhooks ([`webhooks`]), matched to the delivery or subscriber they are
//! about and applied through the store (consent log, bounce limit,
//! `complained`).
//!
//! Matching, most certain first: herald's signed token in the envelope
//! sender (`bounces+<run>-<subscriber>-<mac>@…`); herald's own Message-ID
//! (`digest.<nonce>.<run>.<subscriber>@…`), whose random run nonce must be
//! the run's and whose recipient must be the one the report names; for a
//! provider's authenticated webhook, finally the recipient's address. A
//! mailed report that matches none of these is ignored: anyone can mail
//! the bounce address, and must not be able to unsubscribe a reader.

pub mod maildir;
pub mod webhooks;

use std::sync::Arc;

use chrono::Utc;

use crate::config::Config;
use crate::mail::reports::{parse_message_id, parse_report, ReportError};
use crate::store::{
    Feedback, FeedbackKind, FeedbackOutcome, FeedbackTarget, Store, StoreError, SubscriberEmail,
};
use crate::subscribers::tokens::{envelope_token_in, Signer};

/// One bounce or complaint as a provider's webhook reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderEvent {
    /// `ses`, `postmark`, `mailgun`, `sendgrid`.
    pub source: &'static str,
    /// The provider's id of the event: applied once.
    pub event_id: String,
    pub kind: FeedbackKind,
    pub recipient: String,
    /// The Message-ID of the message, as herald wrote it, when the
    /// provider returns it.
    pub message_id: Option<String>,
    /// The envelope sender the message went out with, when the provider
    /// returns it (it carries herald's token).
    pub envelope_sender: Option<String>,
    pub detail: String,
}

/// What one report or webhook call did, counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Recorded (the consent log, and the status where it moved).
    pub applied: usize,
    /// Subscribers whose status moved (to `bounced` or `complained`).
    pub changed: usize,
    /// Seen before: nothing changed.
    pub duplicates: usize,
    /// Matching no delivery or subscriber.
    pub unmatched: usize,
    /// Not a hard bounce or a complaint (delays, `not-spam` reports).
    pub ignored: usize,
}

impl Applied {
    fn count(&mut self, outcome: &FeedbackOutcome) {
        match outcome {
            FeedbackOutcome::Duplicate => self.duplicates += 1,
            FeedbackOutcome::Unmatched => self.unmatched += 1,
            FeedbackOutcome::Applied { changed, .. } => {
                self.applied += 1;
                if *changed {
                    self.changed += 1;
                }
            }
        }
    }
}

impl std::fmt::Display for Applied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "applied {} ({} changed status), {} seen before, {} unmatched, {} not bounces or complaints",
            self.applied, self.changed, self.duplicates, self.unmatched, self.ignored
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Not a report herald reads; nothing to do with it.
    #[error("{0}")]
    NotAReport(#[from] ReportError),
    /// The database did not answer: try again later (an MTA pipe exits
    /// with EX_TEMPFAIL, so the MTA keeps the message).
    #[error("{0}")]
    Unavailable(StoreError),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for IngestError {
    fn from(e: StoreError) -> IngestError {
        if e.is_unavailable() {
            IngestError::Unavailable(e)
        } else {
            IngestError::Store(e)
        }
    }
}

/// Applies reports and events to the store.
pub struct Bounces {
    config: Arc<Config>,
    store: Arc<dyn Store>,
    signer: Signer,
}

impl Bounces {
    pub fn new(config: Arc<Config>, store: Arc<dyn Store>, signer: Signer) -> Bounces {
        Bounces {
            config,
            store,
            signer,
        }
    }

    /// The delivery a signed envelope token in one of `addresses` names.
    fn token_target(&self, addresses: &[&str]) -> Option<FeedbackTarget> {
        let bounce = self.config.mail.bounce_address.as_deref()?;
        addresses.iter().find_map(|a| {
            let token = envelope_token_in(bounce, a)?;
            let (run, subscriber) = self.signer.verify_envelope_token(token)?;
            Some(FeedbackTarget::Delivery {
                run,
                subscriber,
                nonce: None,
            })
        })
    }

    /// The delivery herald's own Message-ID names (to be checked against
    /// the run's nonce and the recipient by the store).
    fn message_id_target(message_id: Option<&str>) -> Option<FeedbackTarget> {
        let (nonce, run, subscriber) = parse_message_id(message_id?)?;
        Some(FeedbackTarget::Delivery {
            run,
            subscriber,
            nonce: Some(nonce),
        })
    }

    async fn record(&self, f: &Feedback) -> Result<FeedbackOutcome, StoreError> {
        let outcome = self
            .store
            .record_feedback(f, self.config.mail.bounce_limit)
            .await?;
        match &outcome {
            FeedbackOutcome::Applied {
                subscriber_id,
                status,
                changed: true,
            } => tracing::warn!(
                subscriber = subscriber_id,
                source = %f.source,
                "subscriber is now {} after a {}: {}",
                status.as_str(),
                f.kind.as_str(),
                f.detail
            ),
            FeedbackOutcome::Unmatched => tracing::info!(
                source = %f.source,
                "a {} matches no delivery herald made; ignored: {}",
                f.kind.as_str(),
                f.detail
            ),
            _ => {}
        }
        Ok(outcome)
    }

    /// Reads one mailed report (a DSN or an ARF report) and applies each
    /// hard bounce or complaint in it. `envelope_recipient` is the address
    /// the MTA delivered it to, when it says (Postfix's
    /// `ORIGINAL_RECIPIENT`): it carries the token.
    pub async fn ingest(
        &self,
        raw: &[u8],
        envelope_recipient: Option<&str>,
    ) -> Result<Applied, IngestError> {
        let report = parse_report(raw)?;
        let mut addresses: Vec<&str> = envelope_recipient.into_iter().collect();
        addresses.extend(report.token_addresses.iter().map(String::as_str));
        let target = self
            .token_target(&addresses)
            .or_else(|| Self::message_id_target(report.original_message_id.as_deref()));
        let mut applied = Applied::default();
        let now = Utc::now();
        if report.kind == crate::mail::reports::ReportKind::Arf {
            if !report.is_complaint() {
                applied.ignored += 1;
                return Ok(applied);
            }
            let Some(target) = target else {
                applied.unmatched += 1;
                return Ok(applied);
            };
            let f = Feedback {
                source: "arf".into(),
                event_id: report.id.clone(),
                kind: FeedbackKind::Complaint,
                target,
                recipient: report
                    .complainant
                    .as_deref()
                    .and_then(|a| SubscriberEmail::parse(a).ok()),
                detail: format!(
                    "abuse report ({})",
                    report.feedback_type.as_deref().unwrap_or("?")
                ),
                at: now,
            };
            applied.count(&self.record(&f).await?);
            return Ok(applied);
        }
        for r in &report.recipients {
            if !r.is_hard_bounce() {
                applied.ignored += 1;
                continue;
            }
            let Some(target) = target.clone() else {
                applied.unmatched += 1;
                continue;
            };
            let recipient = r.address().and_then(|a| SubscriberEmail::parse(a).ok());
            let f = Feedback {
                source: "dsn".into(),
                event_id: report
                    .id
                    .as_ref()
                    .map(|id| format!("{id} {}", r.address().unwrap_or("?"))),
                kind: FeedbackKind::HardBounce,
                target,
                recipient,
                detail: r.detail(),
                at: now,
            };
            applied.count(&self.record(&f).await?);
        }
        Ok(applied)
    }

    /// Applies events from a provider's webhook (already authenticated).
    pub async fn apply(&self, events: &[ProviderEvent]) -> Result<Applied, StoreError> {
        let mut applied = Applied::default();
        for e in events {
            let Ok(recipient) = SubscriberEmail::parse(&e.recipient) else {
                applied.unmatched += 1;
                continue;
            };
            let addresses: Vec<&str> = e.envelope_sender.as_deref().into_iter().collect();
            let mut f = Feedback {
                source: e.source.into(),
                event_id: Some(e.event_id.clone()),
                kind: e.kind,
                target: self
                    .token_target(&addresses)
                    .or_else(|| Self::message_id_target(e.message_id.as_deref()))
                    .unwrap_or_else(|| FeedbackTarget::Address(recipient.clone())),
                recipient: Some(recipient.clone()),
                detail: e.detail.clone(),
                at: Utc::now(),
            };
            let mut outcome = self.record(&f).await?;
            if outcome == FeedbackOutcome::Unmatched
                && !matches!(f.target, FeedbackTarget::Address(_))
            {
                // The provider vouches for the address; the delivery it
                // named is gone (an older run, erased).
                f.target = FeedbackTarget::Address(recipient);
                outcome = self.record(&f).await?;
            }
            applied.count(&outcome);
        }
        Ok(applied)
    }
}
