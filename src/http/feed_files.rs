//! Everything under the feeds base path: the feed files themselves, with
//! validators, conditional GET and precompressed bodies, and the index page
//! at the base path itself.
//!
//! A GET or HEAD of a feed is answered by [`FeedsFirst`] ahead of the
//! middleware every other request goes through: the answer is in memory
//! and made without waiting, so a timeout timer, a tracing span and the
//! panic layer's boxed body would only cost time on the path readers poll
//! most. Skipping them took the 304 path from 8.9 to 7.0 us of CPU per
//! request (8.3 with `axum::serve` before this server; nginx 6.2) and the
//! 200 path from 24.7 to 23.2 us (scripts/bench-http.sh, one machine, one
//! hour).

use std::borrow::Cow;
use std::convert::Infallible;
use std::future::{ready, Ready};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use futures_util::future::Either;
use tower_service::Service;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, ETAG,
    LAST_MODIFIED, VARY, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::conditional::{self, Outcome, Validators};
use super::negotiate::{self, Coding};
use super::{index, ApiError, Ctx, Target};
use crate::base::served::FeedFile;

/// The fallback route: whatever is not a probe is a feed, the index or
/// nothing.
pub(super) async fn dispatch(State(ctx): State<Arc<Ctx>>, req: Request) -> Response {
    // The counting middleware has resolved the path already; resolving
    // again only happens if this handler is mounted without it.
    let target = match req.extensions().get::<Target>() {
        Some(t) => t.clone(),
        None => ctx.resolve(req.uri().path()),
    };
    let method = req.method();
    match target {
        // Nothing here, whatever the method.
        Target::NotFound => ApiError::NotFound.into_response(),
        _ if method != Method::GET && method != Method::HEAD => {
            ApiError::MethodNotAllowed.into_response()
        }
        Target::Index => index::page(&ctx),
        Target::Feed(file) => feed(&ctx, &file, method == Method::HEAD, req.headers())
            .unwrap_or_else(IntoResponse::into_response),
    }
}

/// The outermost layer of every route: answers GET and HEAD of a feed
/// itself, counted and with panics caught like any other request, and
/// hands everything else to the routes' own stack.
#[derive(Clone)]
pub(super) struct FeedsFirstLayer(pub(super) Arc<Ctx>);

impl<S> tower_layer::Layer<S> for FeedsFirstLayer {
    type Service = FeedsFirst<S>;
    fn layer(&self, inner: S) -> FeedsFirst<S> {
        FeedsFirst {
            ctx: Arc::clone(&self.0),
            inner,
        }
    }
}

#[derive(Clone)]
pub(super) struct FeedsFirst<S> {
    ctx: Arc<Ctx>,
    inner: S,
}

impl<S> Service<Request> for FeedsFirst<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response, Infallible>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        match answer(&self.ctx, req.method(), req.uri(), req.headers()) {
            Some(res) => Either::Left(ready(Ok(res))),
            None => Either::Right(self.inner.call(req)),
        }
    }
}

/// The answer to a GET or HEAD of a feed file, counted and with panics
/// caught like any other request's; `None` for every other request.
fn answer(ctx: &Ctx, method: &Method, uri: &Uri, req: &HeaderMap) -> Option<Response> {
    if method != Method::GET && method != Method::HEAD {
        return None;
    }
    let Target::Feed(file) = ctx.resolve(uri.path()) else {
        return None;
    };
    let head = method == Method::HEAD;
    let res = std::panic::catch_unwind(AssertUnwindSafe(|| {
        feed(ctx, &file, head, req).unwrap_or_else(IntoResponse::into_response)
    }))
    .unwrap_or_else(|payload| super::panicked(&ctx.state.metrics, payload));
    ctx.state
        .metrics
        .count_request(Target::Feed(file).route().label(), res.status().as_u16());
    tracing::debug!(uri = %uri, status = res.status().as_u16(), "feed");
    Some(res)
}

/// Feed requests answered by the server itself, before the router (see
/// `server.rs`): the router's path matching, the boxed route service it
/// clones per request and the client-address lookup cost the 304 path
/// about a tenth of herald's CPU per request, and a feed needs none of
/// them. [`FeedsFirstLayer`] answers the same requests when the router is
/// served by other means.
#[derive(Clone)]
pub struct FeedsFront(pub(super) Arc<Ctx>);

impl FeedsFront {
    pub(super) fn answer(&self, method: &Method, uri: &Uri, req: &HeaderMap) -> Option<Response> {
        answer(&self.0, method, uri, req)
    }
}

/// One feed file as the request's headers ask for it.
///
/// The header values come made with the file ([`FeedFile::etags`],
/// [`FeedFile::last_modified_date`]) and are shared, not copied: the 304
/// path allocated nine times per request before (two `format!`s for the
/// ETag, the date, the header values, a list of codings), 8.4 us of CPU
/// per request against nginx's 7.2.
fn feed(ctx: &Ctx, file: &FeedFile, head: bool, req: &HeaderMap) -> Result<Response, ApiError> {
    let (codings, count) = available(file);
    let coding = negotiate::choose(req.get_all(ACCEPT_ENCODING), &codings[..count])
        .ok_or(ApiError::NotAcceptable)?;
    let (body, etag) = match coding {
        Coding::Brotli => (file.brotli(), &file.etags.brotli),
        Coding::Gzip => (file.gzip(), &file.etags.gzip),
        Coding::Identity => (&file.body, &file.etags.identity),
    };
    // The ETag without its quotes.
    let opaque =
        std::str::from_utf8(&etag[1..etag.len() - 1]).map_err(|e| ApiError::Internal(e.into()))?;
    let now = SystemTime::now();
    let last_modified = last_modified(file.last_modified, now);
    let date = if file.last_modified <= now {
        shared(&file.last_modified_date)?
    } else {
        header(httpdate::fmt_http_date(last_modified))?
    };

    // What a 304 must repeat from the 200 (RFC 9110 §15.4.5).
    let mut headers = HeaderMap::with_capacity(8);
    headers.insert(ETAG, shared(etag)?);
    headers.insert(LAST_MODIFIED, date);
    if let Some(cc) = &ctx.cache_control {
        headers.insert(CACHE_CONTROL, cc.clone());
    }
    headers.insert(VARY, HeaderValue::from_static("Accept-Encoding"));

    let validators = Validators {
        opaque,
        last_modified,
    };
    match conditional::evaluate(req, validators) {
        Outcome::Proceed => {}
        Outcome::NotModified => return Ok((StatusCode::NOT_MODIFIED, headers).into_response()),
        Outcome::PreconditionFailed => return Err(ApiError::PreconditionFailed),
    }

    headers.insert(CONTENT_TYPE, HeaderValue::from_static(file.content_type()));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if let Some(enc) = coding.header() {
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static(enc));
    }
    headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    let body = if head {
        Body::empty()
    } else {
        Body::from(body.clone())
    };
    Ok((StatusCode::OK, headers, body).into_response())
}

/// The codings this file can be sent in (the first `count`). Every file
/// [`FeedFile::new`] makes offers all three.
fn available(file: &FeedFile) -> ([Coding; 3], usize) {
    let mut codings = [Coding::Identity; 3];
    let mut count = 1;
    if file.offers_gzip() {
        codings[count] = Coding::Gzip;
        count += 1;
    }
    if file.offers_brotli() {
        codings[count] = Coding::Brotli;
        count += 1;
    }
    (codings, count)
}

/// `Last-Modified` in whole seconds, never later than now (RFC 9110
/// §8.8.2.1): a feed whose newest article claims a future date must not
/// claim a future modification.
fn last_modified(feed: SystemTime, now: SystemTime) -> SystemTime {
    conditional::whole_seconds(feed.min(now))
}

fn header(value: String) -> Result<HeaderValue, ApiError> {
    HeaderValue::try_from(value).map_err(|e| ApiError::Internal(e.into()))
}

/// A header value sharing `bytes` (checked, not copied).
fn shared(bytes: &bytes::Bytes) -> Result<HeaderValue, ApiError> {
    HeaderValue::from_maybe_shared(bytes.clone()).map_err(|e| ApiError::Internal(e.into()))
}

/// The snapshot key a path below the feeds base names, or `None` when the
/// path cannot name one.
///
/// `rest` is still percent-encoded, as the self links are: keys are
/// `atom.xml` or `tags/<slug>/rss.xml`, and slugs may hold non-ASCII
/// letters, which the links carry as `%C3%A9`. So only bytes above ASCII
/// may arrive encoded; an encoded ASCII byte (`%2e`, `%2f`, `%5c`, `%00`)
/// is never part of a self link and the path is refused outright. Empty,
/// `.` and `..` segments are refused too. The snapshot is an exact map and
/// holds no such keys, so these checks are a second wall, not the first.
pub(super) fn store_key(rest: &str) -> Option<Cow<'_, str>> {
    // The usual case, nothing encoded: the path is the key, no copy made.
    if !rest.contains('%') {
        let plain = rest.bytes().all(|b| b != b'\\' && b.is_ascii_graphic());
        return (plain && clean_segments(rest)).then_some(Cow::Borrowed(rest));
    }
    let bytes = rest.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hi = hex(*bytes.get(i + 1)?)?;
            let lo = hex(*bytes.get(i + 2)?)?;
            let byte = hi << 4 | lo;
            if byte.is_ascii() {
                return None;
            }
            decoded.push(byte);
            i += 3;
        } else {
            if b == b'\\' || !b.is_ascii_graphic() {
                return None;
            }
            decoded.push(b);
            i += 1;
        }
    }
    let key = String::from_utf8(decoded).ok()?;
    clean_segments(&key).then_some(Cow::Owned(key))
}

/// No empty, `.` or `..` segment, no control character.
fn clean_segments(key: &str) -> bool {
    key.split('/').all(|seg| {
        !seg.is_empty() && seg != "." && seg != ".." && !seg.chars().any(char::is_control)
    })
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn store_keys_are_exactly_the_self_link_paths() {
        assert_eq!(store_key("atom.xml").as_deref(), Some("atom.xml"));
        assert_eq!(
            store_key("tags/rust/rss.xml").as_deref(),
            Some("tags/rust/rss.xml")
        );
        assert_eq!(
            store_key("tags/caf%C3%A9/feed.json").as_deref(),
            Some("tags/café/feed.json")
        );
        assert_eq!(
            store_key("tags/caf%c3%a9/feed.json").as_deref(),
            Some("tags/café/feed.json")
        );
    }

    #[test]
    fn paths_that_could_escape_or_alias_name_no_key() {
        for bad in [
            "../Cargo.toml",
            "tags/../atom.xml",
            "./atom.xml",
            "%2e%2e/etc/passwd",
            "atom%2exml",
            "tags%2frust%2frss.xml",
            "tags/rust%2F..%2F..%2Fatom.xml",
            "..%5c..%5cCargo.toml",
            "tags\\rust\\rss.xml",
            "atom.xml%00",
            "/etc/passwd",
            "tags//rust/rss.xml",
            "tags/rust/",
            "%",
            "%c",
            "%zz",
            "%C3",
            "%FF",
        ] {
            assert_eq!(store_key(bad), None, "{bad}");
        }
    }

    #[test]
    fn last_modified_is_whole_seconds_and_never_in_the_future() {
        let now = UNIX_EPOCH + Duration::from_millis(2_000_500);
        let past = UNIX_EPOCH + Duration::from_millis(1_000_700);
        assert_eq!(
            last_modified(past, now),
            UNIX_EPOCH + Duration::from_secs(1000)
        );
        let future = now + Duration::from_secs(3600);
        assert_eq!(
            last_modified(future, now),
            UNIX_EPOCH + Duration::from_secs(2000)
        );
    }
}
