//! Reading the token endpoint's answer ([RFC 6749 §5.1, §5.2]): no I/O here.
//!
//! [`decode`] is the one decoder of the endpoint's JSON, used alike by the
//! wasm, the tests and the fuzzers. It keeps each member as whatever JSON
//! type the server sent ([`Field`]), so that every odd shape becomes a clear
//! `invalid_response` from [`read_answer`] rather than a parse failure.
//!
//! [RFC 6749 §5.1, §5.2]: https://www.rfc-editor.org/rfc/rfc6749#section-5.1

use crate::error::{ErrorCode, TokenError};
use crate::retry_after::parse_retry_after;
use crate::secret::AccessToken;
use crate::text::parse_decimal;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// One JSON member as sent, whatever its type.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Field {
    /// Not present.
    #[default]
    Missing,
    /// `null`.
    Null,
    /// A string.
    Text(String),
    /// A number.
    Number(f64),
    /// `true`/`false`, an array or an object.
    Other,
}

impl Field {
    fn text(&self) -> Option<&str> {
        match self {
            Field::Text(s) => Some(s),
            _ => None,
        }
    }
}

/// The members of a token or error response that freshtoken reads.
/// `Debug` hides `access_token`.
#[derive(Default, PartialEq, serde::Deserialize)]
#[serde(default)]
pub struct RawResponse {
    /// `access_token`.
    pub access_token: Field,
    /// `token_type`.
    pub token_type: Field,
    /// `expires_in`, seconds.
    pub expires_in: Field,
    /// `scope`.
    pub scope: Field,
    /// `error` (RFC 6749 §5.2).
    pub error: Field,
    /// `error_description`.
    pub error_description: Field,
    /// Genesys Cloud's `description`.
    pub description: Field,
}

impl fmt::Debug for RawResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawResponse")
            .field("access_token", &"[redacted]")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

/// The body as a JSON object, or `None`: not UTF-8 (strictly), not JSON,
/// not an object, or with a member twice.
pub fn decode(body: &[u8]) -> Option<RawResponse> {
    let text = std::str::from_utf8(body).ok()?;
    // serde would also read a struct from a JSON array; only an object is an answer.
    if !text.trim_start().starts_with('{') {
        return None;
    }
    serde_json::from_str(text).ok()
}

/// A `Content-Length` as a host shows it: duplicated fields arrive joined
/// (`"42, 42"`); the largest figure counts. `None` when one is not a
/// number: then only the bytes actually delivered count.
pub fn declared_length(header: &str) -> Option<u64> {
    header
        .split(',')
        .map(|part| part.trim().parse::<u64>().ok())
        .try_fold(0, |max, n| n.map(|n| n.max(max)))
}

/// Token response bodies larger than this are refused.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// The longest access token a token response can carry: the whole body
/// but the JSON around it. A stored token longer than this was never a
/// server's answer.
pub const MAX_ACCESS_TOKEN_BYTES: usize = MAX_BODY_BYTES - r#"{"access_token":""}"#.len();

/// Lifetime assumed when the server sends no `expires_in`.
pub const DEFAULT_LIFETIME_SECONDS: f64 = 3600.0;
/// Longest lifetime believed; more is an `invalid_response`.
pub const MAX_LIFETIME_SECONDS: f64 = 365.0 * 86_400.0;

/// A successful token response.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenResponse {
    /// The access token.
    pub access_token: AccessToken,
    /// Lifetime in seconds, from the response.
    pub expires_in: f64,
    /// Granted scope, if the server said.
    pub scope: Option<String>,
}

/// An answer as it arrived: the status, the headers freshtoken reads and
/// the body's bytes (at most 1 MiB).
pub struct Received {
    /// HTTP status.
    pub status: u16,
    /// The `Retry-After` header, if any.
    pub retry_after: Option<String>,
    /// The `Cache-Control` header, if any (it says how long metadata is kept).
    pub cache_control: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

impl Received {
    /// The answer of a token request: its body decoded.
    pub fn token_answer(&self) -> HttpAnswer {
        HttpAnswer {
            status: self.status,
            retry_after: self.retry_after.clone(),
            body: decode(&self.body),
        }
    }
}

/// A token endpoint's answer as the transport saw it.
pub struct HttpAnswer {
    /// HTTP status.
    pub status: u16,
    /// The `Retry-After` header, if any.
    pub retry_after: Option<String>,
    /// The body, decoded; `None` when it was not a JSON object.
    pub body: Option<RawResponse>,
}

/// Turns an answer into a token or an error. `now_ms` resolves a
/// `Retry-After` date.
pub fn read_answer(answer: &HttpAnswer, now_ms: f64) -> Result<TokenResponse, TokenError> {
    match answer.status {
        200..=299 => match &answer.body {
            Some(body) if body.error.text().is_none() => parse_token(body),
            Some(body) => Err(error_from_body(answer.status, body)),
            None => Err(TokenError::invalid_response(
                "the token endpoint answered with something other than a JSON object",
            )
            .with_status(answer.status)),
        },
        status => Err(error_response(status, answer, now_ms)),
    }
}

/// Whether `token` can travel in an `Authorization` header: visible ASCII
/// only, so no CR, LF, space or control character (RFC 6750 §2.1). Tokens
/// read back from KV are held to the same rule.
pub fn is_header_safe(token: &str) -> bool {
    !token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic())
}

/// Reads a successful body (RFC 6749 §5.1).
pub fn parse_token(body: &RawResponse) -> Result<TokenResponse, TokenError> {
    let access_token = match &body.access_token {
        Field::Text(t) if t.is_empty() => return Err(bad("access_token is empty")),
        Field::Text(t) if !is_header_safe(t) => {
            return Err(bad(
                "access_token contains characters a header cannot carry",
            ))
        }
        Field::Text(t) => AccessToken::new(t.clone()),
        Field::Missing | Field::Null => return Err(bad("access_token is missing")),
        _ => return Err(bad("access_token is not a string")),
    };
    match &body.token_type {
        Field::Missing | Field::Null => {}
        Field::Text(t) if t.eq_ignore_ascii_case("bearer") => {}
        Field::Text(_) => return Err(bad("token_type is not Bearer")),
        _ => return Err(bad("token_type is not a string")),
    }
    let expires_in = match &body.expires_in {
        Field::Missing | Field::Null => DEFAULT_LIFETIME_SECONDS,
        Field::Number(n) => *n,
        Field::Text(t) => parse_decimal(t).ok_or_else(|| bad("expires_in is not a number"))?,
        _ => return Err(bad("expires_in is not a number")),
    };
    if !(1.0..=MAX_LIFETIME_SECONDS).contains(&expires_in) {
        return Err(bad("expires_in is out of range (1 s to 1 year)"));
    }
    Ok(TokenResponse {
        access_token,
        expires_in,
        scope: body.scope.text().map(str::to_owned),
    })
}

fn bad(what: &str) -> TokenError {
    TokenError::invalid_response(what).with_status(200)
}

fn error_response(status: u16, answer: &HttpAnswer, now_ms: f64) -> TokenError {
    let mut error = match status {
        300..=399 => TokenError::invalid_response(
            "the token endpoint answered with a redirect, which is not followed \
             so that credentials are never sent elsewhere",
        ),
        408 => TokenError::new(
            ErrorCode::Timeout,
            "the token endpoint timed out (HTTP 408)",
        ),
        429 => TokenError::new(ErrorCode::RateLimited, "too many token requests"),
        500 | 502 | 503 | 504 => {
            TokenError::new(ErrorCode::ServerError, "the token endpoint failed")
        }
        _ => match &answer.body {
            Some(body) if body.error.text().is_some() => error_from_body(status, body),
            _ => {
                let code = match status {
                    400 => ErrorCode::InvalidRequest,
                    401 => ErrorCode::InvalidClient,
                    403 => ErrorCode::AccessDenied,
                    _ => ErrorCode::InvalidResponse,
                };
                let text = match status {
                    404 => "the token endpoint was not found: check the path of the token URL",
                    _ => "the token endpoint refused the request",
                };
                let mut e = TokenError::new(code, text);
                e.retryable = false;
                e
            }
        },
    };
    error.status = Some(status);
    if error.retryable {
        // Keep the server's words when a retryable answer has them.
        if let Some(text) = answer.body.as_ref().and_then(description) {
            error.description = Some(text);
        }
        error.retry_after_seconds = answer
            .retry_after
            .as_deref()
            .and_then(|v| parse_retry_after(v, now_ms));
    }
    error
}

/// An RFC 6749 §5.2 error body. Never retried, except the two codes that
/// say the server itself is in trouble.
fn error_from_body(status: u16, body: &RawResponse) -> TokenError {
    let error = body.error.text().unwrap_or_default();
    let code = ErrorCode::from_oauth(error).unwrap_or(match status {
        401 => ErrorCode::InvalidClient,
        403 => ErrorCode::AccessDenied,
        _ => ErrorCode::InvalidRequest,
    });
    let mut e = TokenError::new(code, description(body).unwrap_or_else(|| error.to_owned()));
    e.retryable = code == ErrorCode::ServerError;
    e.with_status(status)
}

fn description(body: &RawResponse) -> Option<String> {
    body.error_description
        .text()
        .or_else(|| body.description.text())
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

impl<'de> de::Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FieldVisitor)
    }
}

struct FieldVisitor;

impl<'de> Visitor<'de> for FieldVisitor {
    type Value = Field;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Field, E> {
        Ok(Field::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Field, E> {
        Ok(Field::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Field, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Field, E> {
        Ok(Field::Other)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Field, E> {
        Ok(Field::Number(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Field, E> {
        Ok(Field::Number(v as f64))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Field, E> {
        Ok(Field::Number(v as f64))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Field, E> {
        Ok(Field::Text(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Field, E> {
        Ok(Field::Text(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Field, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Field::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Field, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Field::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, json: &str) -> Result<TokenResponse, TokenError> {
        read_answer(
            &HttpAnswer {
                status,
                retry_after: None,
                body: decode(json.as_bytes()),
            },
            0.0,
        )
    }

    fn invalid(json: &str) -> String {
        let e = answer(200, json).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidResponse, "{json}");
        assert!(!e.retryable);
        e.description.unwrap()
    }

    #[test]
    fn a_normal_token_response_is_read() {
        let t = answer(
            200,
            r#"{"access_token":"abc","token_type":"bearer","expires_in":86400,"scope":"a b","x":[1]}"#,
        )
        .unwrap();
        assert_eq!(t.access_token.secret(), "abc");
        assert_eq!(t.expires_in, 86_400.0);
        assert_eq!(t.scope.as_deref(), Some("a b"));
    }

    #[test]
    fn expires_in_rules() {
        let lifetime = |json: &str| answer(200, json).map(|t| t.expires_in);
        assert_eq!(lifetime(r#"{"access_token":"a"}"#), Ok(3600.0));
        assert_eq!(
            lifetime(r#"{"access_token":"a","expires_in":null}"#),
            Ok(3600.0)
        );
        assert_eq!(
            lifetime(r#"{"access_token":"a","expires_in":"300"}"#),
            Ok(300.0)
        );
        assert_eq!(
            lifetime(r#"{"access_token":"a","expires_in":299.5}"#),
            Ok(299.5)
        );
        for bad in [
            r#"{"access_token":"a","expires_in":0}"#,
            r#"{"access_token":"a","expires_in":-60}"#,
            r#"{"access_token":"a","expires_in":0.5}"#,
            r#"{"access_token":"a","expires_in":31536001}"#,
            r#"{"access_token":"a","expires_in":1e300}"#,
            r#"{"access_token":"a","expires_in":"soon"}"#,
            r#"{"access_token":"a","expires_in":"-5"}"#,
            r#"{"access_token":"a","expires_in":"1e3"}"#,
            r#"{"access_token":"a","expires_in":true}"#,
            r#"{"access_token":"a","expires_in":[3600]}"#,
        ] {
            assert!(invalid(bad).contains("expires_in"), "{bad}");
        }
    }

    #[test]
    fn malformed_access_token_shapes_are_invalid_response() {
        assert!(invalid(r#"{"token_type":"Bearer"}"#).contains("missing"));
        assert!(invalid(r#"{"access_token":null}"#).contains("missing"));
        assert!(invalid(r#"{"access_token":""}"#).contains("empty"));
        assert!(invalid(r#"{"access_token":42}"#).contains("not a string"));
        assert!(invalid(r#"{"access_token":{"v":"x"}}"#).contains("not a string"));
        assert!(invalid(r#"{"access_token":["x"]}"#).contains("not a string"));
        assert!(invalid("{\"access_token\":\"a\\r\\nX-Evil: 1\"}").contains("header"));
        assert!(invalid("{\"access_token\":\"a b\"}").contains("header"));
        assert!(invalid(r#"{"access_token":"a","token_type":"mac"}"#).contains("token_type"));
        assert!(invalid(r#"{"access_token":"a","token_type":7}"#).contains("token_type"));
    }

    #[test]
    fn only_a_json_object_in_strict_utf8_is_an_answer() {
        for body in [
            "[]",
            r#"["tok", "Bearer", 3600]"#,
            "\"token\"",
            "42",
            "null",
            "<html>oops</html>",
            "{\"access_token\":\"a\"",
            r#"{"access_token":"a","access_token":"b"}"#,
            "",
        ] {
            assert_eq!(decode(body.as_bytes()), None, "{body}");
            let e = answer(200, body).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidResponse, "{body}");
        }
        assert_eq!(decode(b"{\"access_token\":\"ab\xff\"}"), None);
        assert!(decode(b" {\"access_token\":\"ab\"}").is_some());
    }

    #[test]
    fn oauth_error_bodies_are_not_retried() {
        let e = answer(
            401,
            r#"{"error":"invalid_client","error_description":"Bad client credentials"}"#,
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidClient);
        assert_eq!(e.status, Some(401));
        assert!(!e.retryable);
        assert_eq!(e.description.as_deref(), Some("Bad client credentials"));
        let e = answer(400, r#"{"error":"invalid_scope"}"#).unwrap_err();
        assert_eq!(
            (e.code, e.description.as_deref()),
            (ErrorCode::InvalidScope, Some("invalid_scope"))
        );
        let e = answer(400, r#"{"error":"unsupported_grant_type"}"#).unwrap_err();
        assert_eq!(e.code, ErrorCode::UnsupportedGrantType);
        let e = answer(400, r#"{"error":"unauthorized_client"}"#).unwrap_err();
        assert_eq!(e.code, ErrorCode::UnauthorizedClient);
        let e = answer(403, r#"{"error":"access_denied"}"#).unwrap_err();
        assert_eq!(e.code, ErrorCode::AccessDenied);
    }

    #[test]
    fn genesys_error_bodies_use_description() {
        let e = answer(
            400,
            r#"{"error":"invalid_client","description":"client not found"}"#,
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidClient);
        assert_eq!(e.description.as_deref(), Some("client not found"));
    }

    #[test]
    fn status_without_oauth_body_maps_by_status() {
        let code = |status, body| answer(status, body).unwrap_err().code;
        assert_eq!(code(400, "<html></html>"), ErrorCode::InvalidRequest);
        assert_eq!(code(401, ""), ErrorCode::InvalidClient);
        assert_eq!(code(403, "{}"), ErrorCode::AccessDenied);
        assert_eq!(code(404, "not found"), ErrorCode::InvalidResponse);
        assert!(!answer(404, "").unwrap_err().retryable);
        let not_found = answer(404, "<html>Not Found</html>").unwrap_err().message();
        assert!(
            not_found.contains("check the path of the token URL"),
            "{not_found}"
        );
        assert!(!answer(403, "").unwrap_err().message().contains("path"));
        assert_eq!(code(501, ""), ErrorCode::InvalidResponse);
        assert_eq!(code(302, ""), ErrorCode::InvalidResponse);
        // An error object inside a 200 is still an error.
        assert_eq!(
            code(200, r#"{"error":"invalid_client"}"#),
            ErrorCode::InvalidClient
        );
    }

    #[test]
    fn retryable_statuses_are_408_429_500_502_503_504() {
        for status in [408, 429, 500, 502, 503, 504] {
            assert!(answer(status, "").unwrap_err().retryable, "{status}");
        }
        for status in [400, 401, 403, 404, 405, 501, 505, 301, 307] {
            assert!(!answer(status, "").unwrap_err().retryable, "{status}");
        }
        assert_eq!(answer(408, "").unwrap_err().code, ErrorCode::Timeout);
        assert_eq!(answer(429, "").unwrap_err().code, ErrorCode::RateLimited);
        assert_eq!(answer(503, "").unwrap_err().code, ErrorCode::ServerError);
        let e = answer(400, r#"{"error":"temporarily_unavailable"}"#).unwrap_err();
        assert!(e.retryable);
    }

    #[test]
    fn retry_after_is_read_on_retryable_answers() {
        let with = |status, retry_after: &str, body: &str, now| {
            read_answer(
                &HttpAnswer {
                    status,
                    retry_after: Some(retry_after.to_owned()),
                    body: decode(body.as_bytes()),
                },
                now,
            )
            .unwrap_err()
        };
        let e = with(
            429,
            "7",
            r#"{"error":"rate_limited","description":"slow down"}"#,
            0.0,
        );
        assert_eq!(e.retry_after_seconds, Some(7.0));
        assert_eq!(e.description.as_deref(), Some("slow down"));
        let e = with(503, "Thu, 01 Jan 1970 00:01:00 GMT", "", 30_000.0);
        assert_eq!(e.retry_after_seconds, Some(30.0));
        assert_eq!(with(429, "whenever", "", 0.0).retry_after_seconds, None);
    }

    #[test]
    fn a_declared_length_is_its_largest_figure() {
        assert_eq!(declared_length("42"), Some(42));
        assert_eq!(declared_length(" 42 , 42"), Some(42));
        assert_eq!(declared_length("10, 2000000"), Some(2_000_000));
        assert_eq!(declared_length("10, x"), None);
        assert_eq!(declared_length("-1"), None);
        assert_eq!(declared_length(""), None);
    }

    #[test]
    fn debug_of_raw_response_hides_the_token() {
        let printed = format!("{:?}", decode(br#"{"access_token":"canary-tok"}"#).unwrap());
        assert!(!printed.contains("canary-tok"), "{printed}");
    }
}
