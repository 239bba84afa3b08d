//! What herald's metrics are labelled with: the outcomes and reasons
//! callers report, and the label sets of the families.

use prometheus_client::encoding::EncodeLabelSet;

/// How one delivery attempt ended, as `herald_emails_total{result}` counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailResult {
    Sent,
    Retried,
    Failed,
    Bounced,
    Skipped,
}

impl EmailResult {
    pub(super) fn label(self) -> &'static str {
        match self {
            EmailResult::Sent => "sent",
            EmailResult::Retried => "retried",
            EmailResult::Failed => "failed",
            EmailResult::Bounced => "bounced",
            EmailResult::Skipped => "skipped",
        }
    }
}

/// Why the server closed (or never served) a connection, as
/// `herald_http_connections_closed_total{reason}` counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client closed it, or it ended after a response (the normal case).
    Done,
    /// A request head did not arrive within `server.header_read_timeout`.
    HeaderTimeout,
    /// No request and no bytes moving for `server.keepalive_timeout`.
    IdleTimeout,
    /// Closed to make room for a new connection at `server.max_connections`.
    Evicted,
    /// Accepted at the cap with nothing idle to close: closed at once.
    Refused,
    /// Still open when the shutdown deadline came.
    Shutdown,
    /// A protocol or I/O error (a malformed request, a reset).
    Error,
}

impl CloseReason {
    pub fn label(self) -> &'static str {
        match self {
            CloseReason::Done => "done",
            CloseReason::HeaderTimeout => "header_timeout",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::Evicted => "evicted",
            CloseReason::Refused => "refused",
            CloseReason::Shutdown => "shutdown",
            CloseReason::Error => "error",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ResultLabel {
    pub(super) result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct RequestLabels {
    pub(super) route: &'static str,
    pub(super) status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ReasonLabel {
    pub(super) reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct TaskLabel {
    pub(super) task: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct StatusLabel {
    pub(super) status: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct StateLabel {
    pub(super) state: &'static str,
}
