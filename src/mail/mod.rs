//! Mail: building messages and handing them to a transport.
//!
//! - [`Outgoing`]: one message to one subscriber, `multipart/alternative`
//!   (plain text first, then HTML), with a unique `Message-ID` and only
//!   validated header values: nothing can smuggle a line break into a
//!   header.
//! - [`Mailer`]: the configured transport behind lettre's `AsyncTransport`:
//!   SMTP with a connection pool (at most `pool_size` connections, each
//!   send bounded by `timeout`), or the file outbox (one `.eml` per
//!   message) that needs no mail server.
//! - [`reports`]: delivery status notifications and abuse reports that
//!   come back after a message was accepted, parsed.
//! - [`SendError`]: what went wrong, sorted the way a retry policy needs it:
//!   transient (4xx, connection trouble, timeouts), permanent (5xx, a
//!   bounce) or other.

pub mod dkim;
mod message;
pub mod qp;
pub mod reports;
mod transport;
mod wire;

pub use dkim::{BodyHash, DkimSigner};
pub use message::{MessageError, Outgoing};
pub use transport::{Mailer, SendError};
pub use wire::{encoded_header, from_header, push_header, Stuffed, Wire, WireText};
