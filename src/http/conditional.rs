//! Conditional requests (RFC 9110 §13): the four preconditions a GET or
//! HEAD can carry, evaluated in the order §13.2.2 prescribes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::header::{IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_UNMODIFIED_SINCE};
use axum::http::{HeaderMap, HeaderName};

/// What the preconditions ask of the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Send the representation.
    Proceed,
    /// 304: the client's copy is current.
    NotModified,
    /// 412: `If-Match` or `If-Unmodified-Since` is false.
    PreconditionFailed,
}

/// The selected representation's validators.
#[derive(Debug, Clone, Copy)]
pub(super) struct Validators<'a> {
    /// The opaque tag of the strong ETag, without quotes.
    pub opaque: &'a str,
    /// Whole seconds, as `Last-Modified` carries them.
    pub last_modified: SystemTime,
}

/// RFC 9110 §13.2.2 for a resource that exists and a safe method.
pub(super) fn evaluate(headers: &HeaderMap, v: Validators<'_>) -> Outcome {
    // 1. If-Match, strong comparison.
    if headers.contains_key(IF_MATCH) {
        if !Tags::parse(headers, IF_MATCH).matches(v.opaque, Comparison::Strong) {
            return Outcome::PreconditionFailed;
        }
    }
    // 2. If-Unmodified-Since, only without If-Match.
    else if let Some(since) = single_date(headers, IF_UNMODIFIED_SINCE) {
        if v.last_modified > since {
            return Outcome::PreconditionFailed;
        }
    }
    // 3. If-None-Match, weak comparison. Its mere presence rules out
    // If-Modified-Since, even if it matches nothing.
    if headers.contains_key(IF_NONE_MATCH) {
        if Tags::parse(headers, IF_NONE_MATCH).matches(v.opaque, Comparison::Weak) {
            return Outcome::NotModified;
        }
    }
    // 4. If-Modified-Since, only without If-None-Match.
    else if let Some(since) = single_date(headers, IF_MODIFIED_SINCE) {
        if v.last_modified <= since {
            return Outcome::NotModified;
        }
    }
    Outcome::Proceed
}

/// `t` cut to whole seconds, so that it compares equal with the HTTP-date
/// made from it.
pub(super) fn whole_seconds(t: SystemTime) -> SystemTime {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => UNIX_EPOCH + Duration::from_secs(d.as_secs()),
        Err(_) => UNIX_EPOCH,
    }
}

/// The date in a field that must hold exactly one HTTP-date; `None` (the
/// field is ignored) when absent, repeated or malformed, as §13.1.3 and
/// §13.1.4 require.
fn single_date(headers: &HeaderMap, name: HeaderName) -> Option<SystemTime> {
    let mut values = headers.get_all(name).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    httpdate::parse_http_date(value.to_str().ok()?.trim()).ok()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    Strong,
    Weak,
}

/// An `If-Match` / `If-None-Match` value: `*` or a list of entity tags.
#[derive(Debug, PartialEq, Eq)]
enum Tags<'a> {
    Any,
    /// (weak, opaque tag without quotes). Members that do not parse end
    /// the list: they can match nothing.
    List(Vec<(bool, &'a str)>),
}

impl<'a> Tags<'a> {
    fn parse(headers: &'a HeaderMap, name: HeaderName) -> Tags<'a> {
        let mut tags = Vec::new();
        for value in headers.get_all(name) {
            let Ok(text) = value.to_str() else { continue };
            match parse_list(text, &mut tags) {
                ListEnd::Any => return Tags::Any,
                ListEnd::Done => {}
            }
        }
        Tags::List(tags)
    }

    fn matches(&self, opaque: &str, cmp: Comparison) -> bool {
        match self {
            // We only ever evaluate for a representation that exists.
            Tags::Any => true,
            Tags::List(tags) => tags
                .iter()
                .any(|&(weak, tag)| tag == opaque && (cmp == Comparison::Weak || !weak)),
        }
    }
}

enum ListEnd {
    Any,
    Done,
}

/// `#entity-tag` where `entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE`. Commas
/// may appear inside the quotes, so the list is scanned, not split.
fn parse_list<'a>(text: &'a str, out: &mut Vec<(bool, &'a str)>) -> ListEnd {
    let is_sep = |c: char| c == ',' || c == ' ' || c == '\t';
    let mut rest = text;
    loop {
        rest = rest.trim_start_matches(is_sep);
        if rest.is_empty() {
            return ListEnd::Done;
        }
        if let Some(after) = rest.strip_prefix('*') {
            if after.trim_start_matches(is_sep).is_empty() && out.is_empty() {
                return ListEnd::Any;
            }
            // `*` inside a list is malformed.
            return ListEnd::Done;
        }
        let (weak, quoted) = match rest.strip_prefix("W/") {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let Some(body) = quoted.strip_prefix('"') else {
            return ListEnd::Done;
        };
        let Some(end) = body.find('"') else {
            return ListEnd::Done;
        };
        out.push((weak, &body[..end]));
        rest = &body[end + 1..];
        // Something other than a separator right after the closing quote
        // is malformed.
        if !(rest.is_empty() || rest.starts_with(is_sep)) {
            return ListEnd::Done;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn tags(values: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(IF_NONE_MATCH, HeaderValue::from_static(v));
        }
        h
    }

    fn parsed(h: &HeaderMap) -> Tags<'_> {
        Tags::parse(h, IF_NONE_MATCH)
    }

    #[test]
    fn entity_tag_lists_parse_across_fields_and_commas_in_quotes() {
        let h = tags(&[r#""a", W/"b""#, r#""c,d""#]);
        assert_eq!(
            parsed(&h),
            Tags::List(vec![(false, "a"), (true, "b"), (false, "c,d")])
        );
        assert_eq!(parsed(&tags(&["*"])), Tags::Any);
        assert_eq!(parsed(&tags(&[" * "])), Tags::Any);
        assert_eq!(parsed(&tags(&[""])), Tags::List(vec![]));
    }

    #[test]
    fn malformed_entity_tags_match_nothing() {
        assert_eq!(parsed(&tags(&["abc"])), Tags::List(vec![]));
        assert_eq!(
            parsed(&tags(&[r#""a", b"#])),
            Tags::List(vec![(false, "a")])
        );
        assert_eq!(parsed(&tags(&[r#""unterminated"#])), Tags::List(vec![]));
        assert_eq!(parsed(&tags(&[r#""a"x"#])), Tags::List(vec![(false, "a")]));
        assert_eq!(
            parsed(&tags(&[r#""a", *"#])),
            Tags::List(vec![(false, "a")])
        );
        assert_eq!(parsed(&tags(&[r#"w/"a""#])), Tags::List(vec![]));
    }

    #[test]
    fn weak_tags_match_only_under_weak_comparison() {
        let h = tags(&[r#"W/"x""#]);
        let t = parsed(&h);
        assert!(t.matches("x", Comparison::Weak));
        assert!(!t.matches("x", Comparison::Strong));
        assert!(!t.matches("y", Comparison::Weak));
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn eval(pairs: &[(HeaderName, &str)]) -> Outcome {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        evaluate(
            &h,
            Validators {
                opaque: "tag",
                last_modified: at(1_000_000_000),
            },
        )
    }

    #[test]
    fn preconditions_follow_the_rfc_9110_order() {
        let lm = httpdate::fmt_http_date(at(1_000_000_000));
        let before = httpdate::fmt_http_date(at(999_999_999));
        assert_eq!(eval(&[]), Outcome::Proceed);
        assert_eq!(
            eval(&[(IF_MATCH, "\"other\"")]),
            Outcome::PreconditionFailed
        );
        assert_eq!(
            eval(&[(IF_MATCH, "W/\"tag\"")]),
            Outcome::PreconditionFailed
        );
        assert_eq!(eval(&[(IF_MATCH, "\"tag\"")]), Outcome::Proceed);
        assert_eq!(eval(&[(IF_MATCH, "*")]), Outcome::Proceed);
        // If-Match present: If-Unmodified-Since is not looked at.
        assert_eq!(
            eval(&[(IF_MATCH, "\"tag\""), (IF_UNMODIFIED_SINCE, &before)]),
            Outcome::Proceed
        );
        assert_eq!(
            eval(&[(IF_UNMODIFIED_SINCE, &before)]),
            Outcome::PreconditionFailed
        );
        assert_eq!(eval(&[(IF_UNMODIFIED_SINCE, &lm)]), Outcome::Proceed);
        assert_eq!(eval(&[(IF_UNMODIFIED_SINCE, "garbage")]), Outcome::Proceed);
        // A failed If-Match wins over a matching If-None-Match.
        assert_eq!(
            eval(&[(IF_MATCH, "\"x\""), (IF_NONE_MATCH, "\"tag\"")]),
            Outcome::PreconditionFailed
        );
        assert_eq!(eval(&[(IF_NONE_MATCH, "\"tag\"")]), Outcome::NotModified);
        assert_eq!(
            eval(&[(IF_NONE_MATCH, "\"x\""), (IF_MODIFIED_SINCE, &lm)]),
            Outcome::Proceed
        );
        assert_eq!(
            eval(&[(IF_NONE_MATCH, "garbage"), (IF_MODIFIED_SINCE, &lm)]),
            Outcome::Proceed
        );
        assert_eq!(eval(&[(IF_MODIFIED_SINCE, &lm)]), Outcome::NotModified);
        assert_eq!(eval(&[(IF_MODIFIED_SINCE, &before)]), Outcome::Proceed);
    }

    #[test]
    fn if_modified_since_is_ignored_when_malformed_or_repeated() {
        let lm = httpdate::fmt_http_date(at(1_000_000_000));
        assert_eq!(eval(&[(IF_MODIFIED_SINCE, "yesterday")]), Outcome::Proceed);
        assert_eq!(
            eval(&[(IF_MODIFIED_SINCE, &lm), (IF_MODIFIED_SINCE, &lm)]),
            Outcome::Proceed
        );
        // The obsolete formats are still HTTP-dates.
        assert_eq!(
            eval(&[(IF_MODIFIED_SINCE, "Sunday, 09-Sep-01 01:46:40 GMT")]),
            Outcome::NotModified
        );
        assert_eq!(
            eval(&[(IF_MODIFIED_SINCE, "Sun Sep  9 01:46:40 2001")]),
            Outcome::NotModified
        );
    }

    #[test]
    fn whole_seconds_drops_the_fraction() {
        let t = at(5) + Duration::from_millis(999);
        assert_eq!(whole_seconds(t), at(5));
    }
}
