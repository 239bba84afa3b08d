//! `Accept-Encoding` (RFC 9110 §12.5.3): which of the precompressed bodies
//! a client gets.

use axum::http::header::GetAll;
use axum::http::HeaderValue;

/// A content coding a feed is stored in, in order of preference when the
/// client weighs several the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Coding {
    Brotli,
    Gzip,
    Identity,
}

impl Coding {
    const PREFERENCE: [Coding; 3] = [Coding::Brotli, Coding::Gzip, Coding::Identity];

    /// The `Content-Encoding` value; `None` for identity.
    pub(super) fn header(self) -> Option<&'static str> {
        match self {
            Coding::Brotli => Some("br"),
            Coding::Gzip => Some("gzip"),
            Coding::Identity => None,
        }
    }
}

/// Weights in thousandths, as the qvalue grammar allows three decimals.
type Q = u16;

/// What one request's `Accept-Encoding` fields say.
#[derive(Debug, Default)]
struct Weights {
    br: Option<Q>,
    gzip: Option<Q>,
    identity: Option<Q>,
    any: Option<Q>,
}

impl Weights {
    fn parse<'a>(fields: impl IntoIterator<Item = &'a HeaderValue>) -> Weights {
        let mut w = Weights::default();
        for field in fields {
            // A field that is not visible ASCII names no coding we have.
            let Ok(text) = field.to_str() else { continue };
            for member in text.split(',') {
                let mut parts = member.split(';');
                let coding = parts.next().unwrap_or("").trim();
                if coding.is_empty() {
                    continue;
                }
                let mut q = Some(1000);
                for param in parts {
                    let Some((name, value)) = param.split_once('=') else {
                        continue;
                    };
                    if name.trim().eq_ignore_ascii_case("q") {
                        q = parse_qvalue(value.trim());
                    }
                }
                // A malformed weight makes the member meaningless; skip it
                // rather than guess.
                let Some(q) = q else { continue };
                let slot = match coding.to_ascii_lowercase().as_str() {
                    "br" => &mut w.br,
                    "gzip" | "x-gzip" => &mut w.gzip,
                    "identity" => &mut w.identity,
                    "*" => &mut w.any,
                    _ => continue,
                };
                // The first mention of a coding counts.
                slot.get_or_insert(q);
            }
        }
        w
    }

    fn weight(&self, coding: Coding) -> Q {
        let explicit = match coding {
            Coding::Brotli => self.br,
            Coding::Gzip => self.gzip,
            Coding::Identity => self.identity,
        };
        // `*` covers every coding not listed. Other codings count only when
        // named. Identity stays acceptable unless excluded by name or by
        // `*;q=0`, but a client that names a coding it accepts prefers
        // it: unnamed identity gets the smallest weight there is.
        explicit.or(self.any).unwrap_or(match coding {
            Coding::Identity => 1,
            _ => 0,
        })
    }
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`
fn parse_qvalue(s: &str) -> Option<Q> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_value = format!("{frac:0<3}").parse::<Q>().ok()?;
    match int {
        "0" => Some(frac_value),
        "1" if frac_value == 0 => Some(1000),
        _ => None,
    }
}

/// The coding to send, among those `available` (in any order). `None` when
/// the client accepts none of them. A request without `Accept-Encoding`
/// gets identity: RFC 9110 allows any coding then, but clients that send
/// nothing often decode nothing.
pub(super) fn choose(fields: GetAll<'_, HeaderValue>, available: &[Coding]) -> Option<Coding> {
    let weights = Weights::parse(fields);
    let mut best: Option<(Coding, Q)> = None;
    for coding in Coding::PREFERENCE {
        if !available.contains(&coding) {
            continue;
        }
        let q = weights.weight(coding);
        if q > 0 && best.is_none_or(|(_, b)| q > b) {
            best = Some((coding, q));
        }
    }
    best.map(|(c, _)| c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header::ACCEPT_ENCODING;
    use axum::http::HeaderMap;

    const ALL: [Coding; 3] = [Coding::Identity, Coding::Gzip, Coding::Brotli];

    fn pick(values: &[&str]) -> Option<Coding> {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
        }
        choose(h.get_all(ACCEPT_ENCODING), &ALL)
    }

    #[test]
    fn absent_or_empty_accept_encoding_means_identity() {
        assert_eq!(pick(&[]), Some(Coding::Identity));
        assert_eq!(pick(&[""]), Some(Coding::Identity));
        assert_eq!(pick(&["compress, deflate"]), Some(Coding::Identity));
    }

    #[test]
    fn brotli_wins_ties_and_weights_decide_otherwise() {
        assert_eq!(pick(&["gzip, br"]), Some(Coding::Brotli));
        assert_eq!(pick(&["gzip, deflate, br, zstd"]), Some(Coding::Brotli));
        assert_eq!(pick(&["br;q=0.5, gzip;q=0.8"]), Some(Coding::Gzip));
        assert_eq!(pick(&["br;q=0.5", "gzip;q=0.8"]), Some(Coding::Gzip));
        assert_eq!(pick(&["GZIP"]), Some(Coding::Gzip));
        assert_eq!(pick(&["x-gzip"]), Some(Coding::Gzip));
        assert_eq!(
            pick(&["gzip;q=0.001, identity;q=0.002"]),
            Some(Coding::Identity)
        );
        assert_eq!(pick(&["gzip ; Q=1.000"]), Some(Coding::Gzip));
    }

    #[test]
    fn star_and_zero_weights_exclude_codings() {
        assert_eq!(pick(&["*"]), Some(Coding::Brotli));
        assert_eq!(pick(&["*;q=0.5, gzip"]), Some(Coding::Gzip));
        assert_eq!(pick(&["br;q=0, *"]), Some(Coding::Gzip));
        assert_eq!(pick(&["gzip;q=0"]), Some(Coding::Identity));
        assert_eq!(pick(&["identity;q=0, gzip"]), Some(Coding::Gzip));
        assert_eq!(pick(&["*;q=0, identity"]), Some(Coding::Identity));
        assert_eq!(pick(&["identity;q=0"]), None);
        assert_eq!(pick(&["*;q=0"]), None);
        assert_eq!(pick(&["gzip;q=0, br;q=0, identity;q=0"]), None);
    }

    #[test]
    fn malformed_weights_drop_only_their_member() {
        assert_eq!(pick(&["br;q=2, gzip"]), Some(Coding::Gzip));
        assert_eq!(pick(&["br;q=0.5555, gzip;q=0.1"]), Some(Coding::Gzip));
        assert_eq!(pick(&["br;q=abc"]), Some(Coding::Identity));
        assert_eq!(pick(&["br;q=1.5"]), Some(Coding::Identity));
    }

    #[test]
    fn unavailable_codings_are_never_chosen() {
        let mut h = HeaderMap::new();
        h.insert(ACCEPT_ENCODING, HeaderValue::from_static("br, gzip;q=0.5"));
        assert_eq!(
            choose(
                h.get_all(ACCEPT_ENCODING),
                &[Coding::Identity, Coding::Gzip]
            ),
            Some(Coding::Gzip)
        );
        h.insert(
            ACCEPT_ENCODING,
            HeaderValue::from_static("br, identity;q=0"),
        );
        assert_eq!(
            choose(h.get_all(ACCEPT_ENCODING), &[Coding::Identity]),
            None
        );
    }

    #[test]
    fn qvalues_parse_by_the_grammar() {
        assert_eq!(parse_qvalue("0"), Some(0));
        assert_eq!(parse_qvalue("0."), Some(0));
        assert_eq!(parse_qvalue("0.5"), Some(500));
        assert_eq!(parse_qvalue("0.125"), Some(125));
        assert_eq!(parse_qvalue("1"), Some(1000));
        assert_eq!(parse_qvalue("1.000"), Some(1000));
        assert_eq!(parse_qvalue("1.001"), None);
        assert_eq!(parse_qvalue("0.1234"), None);
        assert_eq!(parse_qvalue("-0"), None);
        assert_eq!(parse_qvalue(".5"), None);
        assert_eq!(parse_qvalue(""), None);
    }
}
