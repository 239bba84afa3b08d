//! A subscriber's address, parsed at the edge: valid by construction.

use std::fmt;

/// An email address that is safe to put in a header: no white space or
/// control characters (no CR/LF header injection), at most 254 characters,
/// one `@` with a non-empty local part and a dotted domain. The domain is
/// kept in its ASCII form, lower-cased (an internationalized domain,
/// `bücher.example`, as the punycode `xn--bcher-kva.example` every SMTP
/// server reads); uniqueness is decided on the whole address lower-cased
/// ([`SubscriberEmail::key`]). A local part with non-ASCII letters
/// (`jörg@…`) can only be delivered by servers with SMTPUTF8 (RFC 6531), so
/// where addresses come in it is accepted only when allowed
/// ([`SubscriberEmail::parse_new`]).
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
    /// Allowed only with SMTPUTF8 (`mail.smtputf8 = true`).
    #[error("`{0}` has letters other than ASCII before the @, which this site's mail server cannot deliver to; use the address's ASCII form if it has one")]
    NonAsciiLocalPart(String),
}

impl SubscriberEmail {
    /// An address coming in (the subscribe form, the command line, an
    /// import): [`SubscriberEmail::parse`], and a non-ASCII local part only
    /// when `smtputf8` says the mail server takes one.
    pub fn parse_new(raw: &str, smtputf8: bool) -> Result<SubscriberEmail, EmailError> {
        let email = SubscriberEmail::parse(raw)?;
        if email.needs_smtputf8() && !smtputf8 {
            return Err(EmailError::NonAsciiLocalPart(email.0));
        }
        Ok(email)
    }

    /// Any valid address, including one with a non-ASCII local part (as
    /// stored, or in the config).
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
        // Also lower-cases, and maps look-alike forms (full-width letters)
        // as browsers do.
        let domain = match idna::domain_to_ascii(domain) {
            Ok(ascii) if !ascii.is_empty() => ascii,
            _ => return Err(EmailError::Invalid(s.to_string())),
        };
        let domain_ok = domain.len() <= 253
            && domain.contains('.')
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
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
        let normalized = format!("{local}@{domain}");
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

    /// Whether delivering to it needs SMTPUTF8: a non-ASCII local part
    /// (the domain is always ASCII here).
    pub fn needs_smtputf8(&self) -> bool {
        !self.0.is_ascii()
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
    fn international_domains_become_punycode_and_utf8_local_parts_need_smtputf8() {
        let e = SubscriberEmail::parse("user@Bücher.Example").unwrap();
        assert_eq!(e.as_str(), "user@xn--bcher-kva.example");
        assert!(!e.needs_smtputf8());
        assert_eq!(
            SubscriberEmail::parse_new("user@bücher.example", false).unwrap(),
            e
        );
        let j = SubscriberEmail::parse("jörg@example.org").unwrap();
        assert!(j.needs_smtputf8());
        assert_eq!(
            SubscriberEmail::parse_new("jörg@example.org", false),
            Err(EmailError::NonAsciiLocalPart("jörg@example.org".into()))
        );
        assert_eq!(SubscriberEmail::parse_new("jörg@example.org", true), Ok(j));
        for bad in ["a@xn--.org", "a@bü_cher.example", "a@.", "a@\u{200b}.org"] {
            assert!(SubscriberEmail::parse(bad).is_err(), "{bad}");
        }
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
