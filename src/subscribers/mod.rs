//! The subscriber side as a domain: what a subscriber may choose
//! ([`choices`]), double opt-in, confirmation,
//! unsubscribe and preferences ([`optin`]) with its per-network limit on
//! sign-ups ([`ratelimit`]), and the signed links they mail out
//! ([`tokens`]); late bounces and complaints ([`bounces`]). Storage is
//! [`crate::store`]; the HTTP pages are in
//! [`crate::http`].

pub mod bounces;
pub mod choices;
pub mod optin;
pub mod ratelimit;
pub mod tokens;
