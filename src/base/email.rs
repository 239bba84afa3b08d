//! A subscriber's address, parsed at the edge: valid by construction.

use std::fmt;

/// An email address that is safe to put in a header: no white space or
/// control characters (no CR/LF header injection), at most 254 characters,
/// one `@` with a non-empty local part and a dotted domain. The domain is
/// lower-cased; uniqueness is decided on the whole address lower-cased
/// ([`SubscriberEmail::key`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriberEmail(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("the address is empty")]
    Empty,
    #[error("the address is longer than 254 characters")]
    TooLong,
    #[error("the address contains white space or control characters")]
    BadCharacters,
    #[error("`{0}` is not an email address")]
    Invalid(String),
}

impl SubscriberEmail {
    pub fn parse(raw: &str) -> Result<SubscriberEmail, EmailError> {
        // CR or LF anywhere is refused, not trimmed: it is how header
        // injection is attempted.
        if raw.contains(['\r', '\n']) {
            return Err(EmailError::BadCharacters);
        }
        let s = raw.trim_matches([' ', '\t']);
        if s.is_empty() {
            return Err(EmailError::Empty);
        }
        if s.chars().count() > 254 {
            return Err(EmailError::TooLong);
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(EmailError::BadCharacters);
        }
        let Some((local, domain)) = s.rsplit_once('@') else {
            return Err(EmailError::Invalid(s.to_string()));
        };
        let domain_ok = domain.len() <= 253
            && domain.contains('.')
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
        if !domain_ok || !local_ok {
            return Err(EmailError::Invalid(s.to_string()));
        }
        // lettre must accept it too: it is what builds the headers.
        let normalized = format!("{local}@{}", domain.to_lowercase());
        if normalized.parse::<lettre::Address>().is_err() {
            return Err(EmailError::Invalid(s.to_string()));
        }
        Ok(SubscriberEmail(normalized))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The uniqueness key: the whole address lower-cased.
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }
}

impl fmt::Display for SubscriberEmail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_addresses_are_normalized() {
        assert_eq!(
            SubscriberEmail::parse(" Ann@Example.ORG ")
                .unwrap()
                .as_str(),
            "Ann@example.org"
        );
        assert_eq!(
            SubscriberEmail::parse("Ann@Example.ORG").unwrap().key(),
            "ann@example.org"
        );
        assert!(SubscriberEmail::parse("a.b+tag@sub.example.co.uk").is_ok());
    }

    #[test]
    fn header_injection_and_oversize_are_refused() {
        assert_eq!(
            SubscriberEmail::parse("a@b.org\r\nBcc: x@y.org"),
            Err(EmailError::BadCharacters)
        );
        assert_eq!(
            SubscriberEmail::parse("a@b.org\n"),
            Err(EmailError::BadCharacters)
        );
        assert_eq!(
            SubscriberEmail::parse(" a@b.org\t").unwrap().as_str(),
            "a@b.org"
        );
        assert_eq!(
            SubscriberEmail::parse("a\nb@b.org"),
            Err(EmailError::BadCharacters)
        );
        let long = format!("{}@example.org", "a".repeat(290));
        assert_eq!(SubscriberEmail::parse(&long), Err(EmailError::TooLong));
        for bad in [
            "",
            "plain",
            "@example.org",
            "a@",
            "a@localhost",
            "a..b@x.org",
            "a@-x.org",
            "a@x..org",
            "<a@x.org>",
        ] {
            assert!(SubscriberEmail::parse(bad).is_err(), "{bad}");
        }
    }
}
