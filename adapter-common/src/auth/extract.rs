//! Where a request carries its token: `Authorization: Bearer T`, else the
//! `token` query parameter (browsers cannot set headers on a WebSocket
//! upgrade), else the `token` cookie.

use http::header;
use http::request::Parts;

/// The token of a request, if it carries one.
pub fn token(request: &Parts) -> Option<&str> {
    bearer(request)
        .or_else(|| query_token(request))
        .or_else(|| cookie_token(request))
}

fn bearer(request: &Parts) -> Option<&str> {
    let value = request.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn query_token(request: &Parts) -> Option<&str> {
    request
        .uri
        .query()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
        .filter(|t| !t.is_empty())
}

fn cookie_token(request: &Parts) -> Option<&str> {
    request
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix("token="))
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::builder().uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn the_header_wins_then_the_query_then_the_cookie() {
        let all = parts(
            "/ws?a=1&token=q",
            &[("authorization", "Bearer h"), ("cookie", "x=1; token=c")],
        );
        assert_eq!(token(&all), Some("h"));
        let no_header = parts("/ws?a=1&token=q", &[("cookie", "token=c")]);
        assert_eq!(token(&no_header), Some("q"));
        let cookie = parts("/ws", &[("cookie", "x=1; token=c; y=2")]);
        assert_eq!(token(&cookie), Some("c"));
        assert_eq!(
            token(&parts("/ws", &[("authorization", "bearer  t ")])),
            Some("t")
        );
    }

    #[test]
    fn nothing_usable_is_no_token() {
        assert_eq!(token(&parts("/ws", &[])), None);
        assert_eq!(token(&parts("/ws?token=", &[])), None);
        assert_eq!(token(&parts("/ws?mytoken=x", &[])), None);
        assert_eq!(
            token(&parts("/ws", &[("authorization", "Basic abc")])),
            None
        );
        assert_eq!(token(&parts("/ws", &[("authorization", "Bearer ")])), None);
        assert_eq!(token(&parts("/ws", &[("cookie", "xtoken=1")])), None);
    }
}
