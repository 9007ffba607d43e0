//! Reading a request body under a size limit: refused from `Content-Length`
//! before reading anything, else read with a cap so a lying or chunked body
//! never makes the server hold more than the limit.

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
pub async fn read_limited<B>(headers: &HeaderMap, body: B, limit: usize) -> Result<Bytes, BodyError>
where
    B: Body<Data = Bytes>,
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
        let body = Full::new(Bytes::from_static(b"hello"));
        let got = block_on(read_limited(&headers(Some("5")), body, 5)).unwrap();
        assert_eq!(got, Bytes::from_static(b"hello"));
    }

    #[test]
    fn a_declared_length_over_the_limit_is_refused_before_reading() {
        // The body would fit, but the header says otherwise: refused unread.
        let body = Full::new(Bytes::from_static(b"x"));
        let err = block_on(read_limited(&headers(Some("1000")), body, 10)).unwrap_err();
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
        let chunks = (0..10).map(|_| {
            Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from_static(
                b"0123456789",
            )))
        });
        let body = StreamBody::new(futures_util::stream::iter(chunks));
        let err = block_on(read_limited(&headers(None), body, 25)).unwrap_err();
        assert!(matches!(err, BodyError::TooLarge { declared: None, .. }));
    }

    #[test]
    fn malformed_content_length_is_left_to_the_capped_read() {
        assert_eq!(declared_length(&headers(Some("abc"))), None);
        let body = Full::new(Bytes::from_static(b"abc"));
        assert!(block_on(read_limited(&headers(Some("abc")), body, 2)).is_err());
    }
}
