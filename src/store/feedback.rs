//! What comes back after a message was accepted: late bounces (delivery
//! status notifications, provider webhooks) and complaints (abuse reports,
//! provider webhooks), and what herald does with them; erasure on request
//! (GDPR Art. 17) and the expiry of client IPs, the other two ways
//! personal data leaves the store.
//!
//! The SQL is in `sqlite/feedback.rs` and `postgres/feedback.rs`; the
//! parsing of reports and webhooks is in [`crate::subscribers::bounces`].

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::{Status, StoreResult, SubscriberEmail};

/// What a report says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedbackKind {
    /// A permanent failure (5.x.x): counts towards `mail.bounce_limit`.
    HardBounce,
    /// The reader marked the message as spam: `complained` at once.
    Complaint,
}

impl FeedbackKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FeedbackKind::HardBounce => "hard bounce",
            FeedbackKind::Complaint => "complaint",
        }
    }
}

/// Which message or person a report is about, as surely as it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedbackTarget {
    /// One delivery: from the signed token of the envelope sender
    /// (`nonce` `None`: the token's MAC was checked), or from herald's own
    /// `Message-ID` (`nonce` `Some`: it must be the run's, and the report
    /// must name the delivery's recipient).
    Delivery {
        run: i64,
        subscriber: i64,
        nonce: Option<String>,
    },
    /// Only an address: from a provider's authenticated webhook.
    Address(SubscriberEmail),
}

/// One report or event, ready to apply.
#[derive(Debug, Clone)]
pub struct Feedback {
    /// Where it came from: `dsn`, `arf`, `ses`, `postmark`, `mailgun`,
    /// `sendgrid`.
    pub source: String,
    /// The provider's event id (or the report's own Message-ID): the same
    /// id is applied once.
    pub event_id: Option<String>,
    pub kind: FeedbackKind,
    pub target: FeedbackTarget,
    /// The recipient the report names (`Final-Recipient`, the provider's
    /// address field).
    pub recipient: Option<SubscriberEmail>,
    /// Status code and diagnostic, for the consent log and the ledger.
    pub detail: String,
    pub at: DateTime<Utc>,
}

/// What applying a [`Feedback`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedbackOutcome {
    /// Its event id was applied before: nothing changed.
    Duplicate,
    /// No delivery or subscriber matches (or the recipient it names is not
    /// the delivery's): nothing changed.
    Unmatched,
    /// Recorded in the consent log; `changed` when the status moved (to
    /// `bounced` at the bounce limit, or to `complained`).
    Applied {
        subscriber_id: i64,
        status: Status,
        changed: bool,
    },
}

#[async_trait::async_trait]
pub trait Deliverability: Send + Sync {
    /// Applies a report in one transaction: remembers its event id,
    /// records it in the consent log, marks the delivery `bounced` (a
    /// delivery already marked so is not counted twice), counts a hard
    /// bounce towards `bounce_limit` and makes a complainer `complained`.
    async fn record_feedback(
        &self,
        feedback: &Feedback,
        bounce_limit: u32,
    ) -> StoreResult<FeedbackOutcome>;

    /// Erases a person (GDPR Art. 17): the subscriber row, their
    /// schedules, tags and cursors go; their consent-log entries keep only
    /// the hash of the address; the deliveries keep no address; pending
    /// ones are skipped. A suppression entry (the hash) stays, so that no
    /// sign-up or import brings the address back. `false` when the store
    /// knew nothing of the address (the suppression is recorded anyway).
    async fn forget(&self, email: &SubscriberEmail, at: DateTime<Utc>) -> StoreResult<bool>;

    /// Clears the client IPs of consent records made before `before`.
    /// Returns how many records lost their IP.
    async fn expire_ips(&self, before: DateTime<Utc>) -> StoreResult<u64>;
}

/// Whether a report matched by herald's Message-ID alone is about that
/// delivery: the run's secret nonce and the recipient both agree (an abuse
/// report may redact the recipient; the nonce must do then).
pub(super) fn message_id_matches(
    f: &Feedback,
    nonce: &str,
    run_nonce: &str,
    delivery_email: &str,
) -> bool {
    let same_rcpt = match &f.recipient {
        Some(r) => r.key() == delivery_email.to_lowercase(),
        None => f.kind == FeedbackKind::Complaint,
    };
    nonce == run_nonce && same_rcpt
}

/// What applying a report to a subscriber does, the same on both
/// backends.
pub(super) struct Decision {
    /// The consent-log event: `bounce` or `complaint`.
    pub event: &'static str,
    pub note: String,
    /// The subscriber's hard bounces after it.
    pub bounces: i64,
    /// The status it moves to, with `left_how`, if it moves.
    pub moves_to: Option<(Status, &'static str)>,
}

/// A hard bounce counts one towards `limit` (an active subscriber at the
/// limit becomes `bounced`); a complaint makes anyone not yet so
/// `complained`.
pub(super) fn decide(f: &Feedback, status: Status, bounces: i64, limit: u32) -> Decision {
    match f.kind {
        FeedbackKind::HardBounce => {
            let count = bounces + 1;
            let limit = i64::from(limit);
            let reached = count >= limit && status == Status::Active;
            Decision {
                event: "bounce",
                note: format!(
                    "late hard bounce {count} of {limit}{}: {}",
                    if reached { ", now bounced" } else { "" },
                    f.detail
                ),
                bounces: count,
                moves_to: reached.then_some((Status::Bounced, "bounce")),
            }
        }
        FeedbackKind::Complaint => Decision {
            event: "complaint",
            note: format!("reported as spam: {}", f.detail),
            bounces,
            moves_to: (status != Status::Complained).then_some((Status::Complained, "complaint")),
        },
    }
}

/// The hash an erased address is remembered by: SHA-256 of the address
/// lower-cased, hex. Deterministic (every replica, every secret) so that
/// an import can be checked against it; one-way, so the store keeps no
/// address of a person who asked to be erased.
pub fn suppression_hash(email: &SubscriberEmail) -> String {
    hex::encode(Sha256::digest(
        format!("herald-erased:{}", email.key()).as_bytes(),
    ))
}
