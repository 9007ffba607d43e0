//! Reading a request body under a size limit: refused from `Content-Length`
//! before reading anything, else read with a cap so a lying or chunked body
//! never makes the server hold more than the limit.
//!
//! A refused body is not simply dropped: a client still sending it would
//! find the connection closed under it and see a broken pipe instead of the
//! 413. [`discard`] reads and throws away what is left, up to a bound, while
//! the answer goes out (what nginx calls a lingering close).

use bytes::Bytes;
use http::HeaderMap;
use http_body::Body;
use http_body_util::{BodyExt, LengthLimitError, Limited};

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// The body is (or declares itself) longer than the limit.
    #[error("body exceeds {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
        /// The declared length, when the header gave one.
        declared: Option<u64>,
    },
    /// The transport failed while reading.
    #[error("reading the body failed: {0}")]
    Read(String),
}

/// The declared `Content-Length`, if present and well-formed.
pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Checks the declared length against `limit` without reading anything.
pub fn check_declared(headers: &HeaderMap, limit: usize) -> Result<(), BodyError> {
    match declared_length(headers) {
        Some(n) if n > limit as u64 => Err(BodyError::TooLarge {
            limit,
            declared: Some(n),
        }),
        _ => Ok(()),
    }
}

/// Reads the whole body, failing as soon as more than `limit` bytes arrived.
/// The body is borrowed so that a refused one can still be [`discard`]ed.
pub async fn read_limited<B>(
    headers: &HeaderMap,
    body: &mut B,
    limit: usize,
) -> Result<Bytes, BodyError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    check_declared(headers, limit)?;
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(BodyError::TooLarge {
            limit,
            declared: None,
        }),
        Err(e) => Err(BodyError::Read(e.to_string())),
    }
}

/// How a [`discard`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discarded {
    /// The body ended after this many bytes: the connection can be reused.
    Whole(u64),
    /// More than the bound arrived, or the transport failed: the rest is left
    /// unread and the connection will be closed.
    GaveUp(u64),
}

/// Whether a refused body is worth reading to its end: not when it declares
/// itself longer than `bound` (reading it would only cost bandwidth, the
/// connection is closed instead).
pub fn worth_discarding(headers: &HeaderMap, bound: usize) -> bool {
    declared_length(headers).is_none_or(|n| n <= bound as u64)
}

/// Reads what is left of `body` and throws it away, giving up after `bound`
/// bytes. Run beside the response (under a deadline of the caller's), so the
/// peer can finish sending and then read the answer.
pub async fn discard<B>(mut body: B, bound: usize) -> Discarded
where
    B: Body<Data = Bytes> + Unpin,
{
    let mut seen: u64 = 0;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Discarded::GaveUp(seen);
        };
        if let Some(data) = frame.data_ref() {
            seen += data.len() as u64;
            if seen > bound as u64 {
                return Discarded::GaveUp(seen);
            }
        }
    }
    Discarded::Whole(seen)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use http_body_util::{Full, StreamBody};

    fn headers(len: Option<&'static str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(v) = len {
            h.insert(http::header::CONTENT_LENGTH, HeaderValue::from_static(v));
        }
        h
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        futures_util::FutureExt::now_or_never(f).expect("ready bodies complete at once")
    }

    #[test]
    fn a_body_within_the_limit_is_read_whole() {
        let mut body = Full::new(Bytes::from_static(b"hello"));
        let got = block_on(read_limited(&headers(Some("5")), &mut body, 5)).unwrap();
        assert_eq!(got, Bytes::from_static(b"hello"));
    }

    #[test]
    fn a_declared_length_over_the_limit_is_refused_before_reading() {
        // The body would fit, but the header says otherwise: refused unread.
        let mut body = Full::new(Bytes::from_static(b"x"));
        let err = block_on(read_limited(&headers(Some("1000")), &mut body, 10)).unwrap_err();
        assert!(matches!(
            err,
            BodyError::TooLarge {
                limit: 10,
                declared: Some(1000)
            }
        ));
    }

    #[test]
    fn an_undeclared_body_over_the_limit_is_cut_off() {
        let mut body = chunked(10);
        let err = block_on(read_limited(&headers(None), &mut body, 25)).unwrap_err();
        assert!(matches!(err, BodyError::TooLarge { declared: None, .. }));
        // Cut off after the third chunk: the other seven are still there to
        // be discarded, and a bound that covers them reads the body to its end.
        assert_eq!(block_on(discard(body, 100)), Discarded::Whole(70));
    }

    #[test]
    fn a_chunked_body_exactly_at_the_limit_is_read_whole() {
        let mut body = chunked(3);
        let got = block_on(read_limited(&headers(None), &mut body, 30)).unwrap();
        assert_eq!(got.len(), 30);
        assert_eq!(&got[..10], b"0123456789");
    }

    #[test]
    fn discarding_gives_up_past_its_bound() {
        assert_eq!(block_on(discard(chunked(10), 35)), Discarded::GaveUp(40));
        assert_eq!(block_on(discard(chunked(0), 0)), Discarded::Whole(0));
    }

    #[test]
    fn a_body_declared_past_the_discard_bound_is_not_read() {
        assert!(worth_discarding(&headers(Some("100")), 100));
        assert!(!worth_discarding(&headers(Some("101")), 100));
        assert!(worth_discarding(&headers(None), 100));
    }

    /// A chunked body of `n` ten-byte chunks.
    fn chunked(
        n: usize,
    ) -> StreamBody<
        impl futures_util::Stream<Item = Result<http_body::Frame<Bytes>, std::convert::Infallible>>
        + Unpin,
    > {
        let chunks = (0..n).map(|_| Ok(http_body::Frame::data(Bytes::from_static(b"0123456789"))));
        StreamBody::new(futures_util::stream::iter(chunks))
    }

    #[test]
    fn malformed_content_length_is_left_to_the_capped_read() {
        assert_eq!(declared_length(&headers(Some("abc"))), None);
        let mut body = Full::new(Bytes::from_static(b"abc"));
        assert!(block_on(read_limited(&headers(Some("abc")), &mut body, 2)).is_err());
    }
}
