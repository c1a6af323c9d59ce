//! Authorization server metadata: where an issuer's token endpoint is
//! ([RFC 8414]; OpenID Connect Discovery 1.0 §4). No I/O here: the binding
//! asks each of [`locations`] in turn, through the transport of the token
//! request (docs/DESIGN.md, "Discovery"), and hands each answer to [`read`].
//!
//! Everything in a document is untrusted: its `issuer` must be the
//! configured one character for character (RFC 8414 §3.3), its endpoints
//! obey the rules of `tokenUrl`, and of its method list only names
//! freshtoken knows are kept. Nothing it says is echoed in an error.
//!
//! [RFC 8414]: https://www.rfc-editor.org/rfc/rfc8414

use crate::config::{check_url, AuthMethod};
use crate::error::{url_for_message, ErrorCode, TokenError};
use crate::request::HttpRequest;
use crate::response::Received;
use crate::retry_after::parse_retry_after;
use crate::transport::Exchange;
use serde::{Deserialize, Serialize};

/// The longest a document is kept: a day, whatever its `Cache-Control` says.
pub const MAX_KEEP_MS: f64 = 86_400_000.0;
/// The shortest: five minutes, so that even `no-cache` means one metadata
/// request for many token requests, not one each.
pub const MIN_KEEP_MS: f64 = 300_000.0;

/// What freshtoken keeps of an issuer's metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct Metadata {
    /// `issuer`: the configured one.
    pub issuer: String,
    /// `token_endpoint`, as the host's URL parser reads it.
    pub token_endpoint: String,
    /// `mtls_endpoint_aliases.token_endpoint` (RFC 8705 §5), for the TLS methods.
    pub mtls_token_endpoint: Option<String>,
    /// `token_endpoint_auth_methods_supported`, when listed: the names freshtoken knows.
    pub auth_methods: Option<Vec<String>>,
    /// Kept until, epoch ms.
    pub until: f64,
}

impl Metadata {
    /// The copy KV keeps: a metadata document of what was kept, in RFC
    /// 8414's names, with `kept_until`. Read back by [`from_copy`], through
    /// the rules of a fresh document.
    pub fn to_copy(&self) -> String {
        let document = Document {
            issuer: Some(self.issuer.clone()),
            token_endpoint: Some(self.token_endpoint.clone()),
            token_endpoint_auth_methods_supported: self.auth_methods.clone(),
            mtls_endpoint_aliases: self.mtls_token_endpoint.clone().map(|alias| Aliases {
                token_endpoint: Some(alias),
            }),
            kept_until: Some(self.until),
        };
        serde_json::to_string(&document).unwrap_or_default()
    }

    /// The endpoint a client sends to: the mutual-TLS alias when it
    /// presents a certificate (RFC 8705 §5), else `token_endpoint`.
    pub fn token_endpoint(&self, mutual_tls: bool) -> &str {
        match (mutual_tls, &self.mtls_token_endpoint) {
            (true, Some(alias)) => alias,
            _ => &self.token_endpoint,
        }
    }

    /// A `config` error when the issuer lists its methods and the configured
    /// one (`method`, by its configured name) is not among them: the method
    /// is never chosen for the caller.
    pub fn check_method(&self, method: &str) -> Result<(), TokenError> {
        let Some(listed) = &self.auth_methods else {
            return Ok(());
        };
        if listed.iter().any(|m| m == method) {
            return Ok(());
        }
        let offered = match listed.as_slice() {
            [] => String::new(),
            names => format!(" (it lists {}; set authMethod)", names.join(", ")),
        };
        Err(TokenError::config(format!(
            "authMethod {method} is not among the issuer's \
             token_endpoint_auth_methods_supported{offered}"
        )))
    }
}

/// Where the metadata of `issuer` may be, in the order asked: OpenID
/// Connect Discovery's `{issuer}/.well-known/openid-configuration`, then
/// RFC 8414 §3.1's `/.well-known/oauth-authorization-server` put between
/// the issuer's host and its path. A terminating `/` is dropped first.
pub fn locations(issuer: &str) -> [String; 2] {
    let issuer = issuer.trim_end_matches('/');
    let scheme_end = issuer.find("://").map_or(0, |at| at + 3);
    let path_at = issuer[scheme_end..]
        .find('/')
        .map_or(issuer.len(), |at| scheme_end + at);
    let (origin, path) = issuer.split_at(path_at);
    [
        format!("{issuer}/.well-known/openid-configuration"),
        format!("{origin}/.well-known/oauth-authorization-server{path}"),
    ]
}

/// The `GET` of one location.
pub fn request(url: String) -> HttpRequest {
    HttpRequest {
        url,
        headers: vec![("Accept", "application/json".to_owned())],
        body: None,
        exchange: Exchange::Metadata,
    }
}

/// What one location's answer says: the metadata; `Ok(None)` when the
/// issuer publishes none there (a 4xx other than 408 and 429, or a body
/// that is not a JSON document, such as a catch-all HTML page: ask the next
/// location); or why neither.
pub fn read(
    answer: &Received,
    issuer: &str,
    now_ms: f64,
    parse_url: impl Fn(&str) -> Option<String>,
) -> Result<Option<Metadata>, TokenError> {
    let status = answer.status;
    let failure = |code: ErrorCode, text: &str| {
        let mut error = TokenError::new(code, text).with_status(status);
        if error.retryable {
            error.retry_after_seconds = answer
                .retry_after
                .as_deref()
                .and_then(|v| parse_retry_after(v, now_ms));
        }
        Err(error)
    };
    match status {
        200..=299 => {}
        300..=399 => {
            return failure(
                ErrorCode::InvalidResponse,
                "the issuer's metadata answered with a redirect, which is not followed",
            )
        }
        408 => return failure(ErrorCode::Timeout, "the issuer's metadata timed out"),
        429 => return failure(ErrorCode::RateLimited, "too many metadata requests"),
        400..=499 => return Ok(None),
        500..=599 => return failure(ErrorCode::ServerError, "the issuer's metadata failed"),
        _ => return failure(ErrorCode::InvalidResponse, "the issuer's metadata failed"),
    }
    let Some(document) = parse(&answer.body) else {
        return Ok(None);
    };
    let until = now_ms + keep_ms(answer.cache_control.as_deref());
    from_document(document, issuer, until, &parse_url).map(Some)
}

/// The metadata a document gives, kept until `until`, if it names `issuer`
/// and its endpoints obey the rules of `tokenUrl`.
fn from_document(
    document: Document,
    issuer: &str,
    until: f64,
    parse_url: &impl Fn(&str) -> Option<String>,
) -> Result<Metadata, TokenError> {
    if document.issuer.as_deref() != Some(issuer) {
        // Both are public; a server's text is shown only as a URL may be.
        let named = match &document.issuer {
            Some(named) => format!("\"{}\"", url_for_message(named)),
            None => "none".to_owned(),
        };
        return Err(TokenError::config(format!(
            "the issuer's metadata names another issuer ({named}); it must equal the issuer \
             option (\"{}\") exactly (RFC 8414 §3.3)",
            url_for_message(issuer)
        )));
    }
    let token_endpoint = document.token_endpoint.ok_or_else(|| {
        TokenError::invalid_response("the issuer's metadata has no token_endpoint")
    })?;
    Ok(Metadata {
        issuer: issuer.to_owned(),
        token_endpoint: endpoint("token_endpoint", &token_endpoint, parse_url)?,
        mtls_token_endpoint: match document
            .mtls_endpoint_aliases
            .and_then(|a| a.token_endpoint)
        {
            Some(alias) => Some(endpoint(
                "mtls_endpoint_aliases.token_endpoint",
                &alias,
                parse_url,
            )?),
            None => None,
        },
        auth_methods: document
            .token_endpoint_auth_methods_supported
            .map(|listed| {
                AuthMethod::NAMES
                    .iter()
                    .filter(|known| listed.iter().any(|m| m == *known))
                    .map(|known| (*known).to_owned())
                    .collect()
            }),
        until,
    })
}

/// A copy read back from KV ([`Metadata::to_copy`]), if it passes the
/// rules of a fresh document and is kept no further than a day from `now_ms`.
pub fn from_copy(
    copy: &str,
    issuer: &str,
    now_ms: f64,
    parse_url: impl Fn(&str) -> Option<String>,
) -> Option<Metadata> {
    let document = parse(copy.as_bytes())?;
    let until = document.kept_until?;
    if !(until > now_ms && until <= now_ms + MAX_KEEP_MS) {
        return None;
    }
    from_document(document, issuer, until, &parse_url).ok()
}

/// How long a document is kept: its `Cache-Control` `max-age`, within
/// [`MIN_KEEP_MS`] and [`MAX_KEEP_MS`]; `no-store` or `no-cache` the
/// least, no lifetime given the most.
pub fn keep_ms(cache_control: Option<&str>) -> f64 {
    let mut keep = MAX_KEEP_MS;
    for directive in cache_control.unwrap_or_default().split(',') {
        let directive = directive.trim().to_ascii_lowercase();
        match directive.split_once('=') {
            Some(("max-age", seconds)) => {
                if let Ok(seconds) = seconds.trim_matches('"').parse::<u32>() {
                    keep = keep.min(f64::from(seconds) * 1000.0);
                }
            }
            None if directive == "no-store" || directive == "no-cache" => keep = 0.0,
            _ => {}
        }
    }
    keep.clamp(MIN_KEEP_MS, MAX_KEEP_MS)
}

/// An endpoint named by the metadata, held to the rules of `tokenUrl`.
fn endpoint(
    name: &str,
    url: &str,
    parse_url: &impl Fn(&str) -> Option<String>,
) -> Result<String, TokenError> {
    let what = format!("the issuer's {name}");
    let parsed = parse_url(url)
        .ok_or_else(|| TokenError::config(format!("{what} is not a valid absolute URL")))?;
    check_url(&what, &parsed, false)?;
    Ok(parsed)
}

/// The members of a metadata document freshtoken reads; with `kept_until`, its KV copy.
#[derive(Deserialize, Serialize)]
struct Document {
    #[serde(default)]
    issuer: Option<String>,
    #[serde(default)]
    token_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token_endpoint_auth_methods_supported: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mtls_endpoint_aliases: Option<Aliases>,
    /// The copy's end, epoch ms (a fresh document's comes from `Cache-Control`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kept_until: Option<f64>,
}

#[derive(Deserialize, Serialize)]
struct Aliases {
    #[serde(default)]
    token_endpoint: Option<String>,
}

/// The body as a document: strict UTF-8, a JSON object, each member read of its type, none twice.
fn parse(body: &[u8]) -> Option<Document> {
    let text = std::str::from_utf8(body).ok()?;
    if !text.trim_start().starts_with('{') {
        return None;
    }
    serde_json::from_str(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ISSUER: &str = "https://auth.example.com";

    fn answer(status: u16, body: serde_json::Value, cache_control: Option<&str>) -> Received {
        Received {
            status,
            retry_after: Some("7".into()),
            cache_control: cache_control.map(str::to_owned),
            body: body.to_string().into_bytes(),
        }
    }

    fn parse_url(url: &str) -> Option<String> {
        url.contains("://").then(|| url.to_owned())
    }

    fn read_ok(body: serde_json::Value) -> Result<Option<Metadata>, TokenError> {
        read(&answer(200, body, None), ISSUER, 1000.0, parse_url)
    }

    #[test]
    fn the_two_locations_follow_oidc_then_rfc_8414() {
        assert_eq!(
            locations("https://a.example"),
            [
                "https://a.example/.well-known/openid-configuration",
                "https://a.example/.well-known/oauth-authorization-server",
            ]
        );
        assert_eq!(
            locations("https://a.example/tenant/1/"),
            [
                "https://a.example/tenant/1/.well-known/openid-configuration",
                "https://a.example/.well-known/oauth-authorization-server/tenant/1",
            ]
        );
        assert_eq!(request("u".into()).body, None);
    }

    #[test]
    fn a_document_gives_the_endpoints_and_the_known_methods() {
        let m = read_ok(json!({
            "issuer": ISSUER,
            "token_endpoint": "https://auth.example.com/token",
            "mtls_endpoint_aliases": { "token_endpoint": "https://mtls.example.com/token" },
            "token_endpoint_auth_methods_supported": ["private_key_jwt", "x-custom", "client_secret_post"],
            "jwks_uri": "https://auth.example.com/jwks",
        }))
        .unwrap()
        .unwrap();
        assert_eq!(m.token_endpoint(false), "https://auth.example.com/token");
        assert_eq!(m.token_endpoint(true), "https://mtls.example.com/token");
        assert_eq!(
            m.auth_methods.as_deref().unwrap(),
            ["client_secret_post", "private_key_jwt"]
        );
        assert_eq!(m.until, 1000.0 + MAX_KEEP_MS);
        assert!(m.check_method("client_secret_post").is_ok());
        let e = m.check_method("client_secret_basic").unwrap_err();
        assert_eq!(e.code, ErrorCode::Config);
        assert_eq!(
            e.description.unwrap(),
            "authMethod client_secret_basic is not among the issuer's \
             token_endpoint_auth_methods_supported (it lists client_secret_post, \
             private_key_jwt; set authMethod)"
        );
        let unlisted =
            read_ok(json!({ "issuer": ISSUER, "token_endpoint": "https://a.example/t" }))
                .unwrap()
                .unwrap();
        assert!(unlisted.check_method("client_secret_basic").is_ok());
    }

    #[test]
    fn the_issuer_must_match_exactly_and_both_show_only_as_urls_may() {
        for (other, shown) in [
            (
                json!("https://auth.example.com/"),
                "(\"https://auth.example.com/\")",
            ),
            (
                json!("https://AUTH.example.com"),
                "(\"https://AUTH.example.com\")",
            ),
            (
                json!("https://u:p@evil.example/injected\nline?code=1"),
                "(\"https://evil.example/injectedline\")",
            ),
            (json!(null), "(none)"),
        ] {
            let e = read_ok(json!({ "issuer": other, "token_endpoint": "https://a.example/t" }))
                .unwrap_err();
            assert_eq!(e.code, ErrorCode::Config, "{other}");
            let message = e.message();
            assert!(message.contains(shown), "{message}");
            assert!(message.contains(&format!("(\"{ISSUER}\")")), "{message}");
            assert!(
                !message.contains('\n') && !message.contains("u:p") && !message.contains("code=")
            );
        }
        // Not a string: not a document of RFC 8414's shape, so the next location is asked.
        let read = read_ok(json!({ "issuer": 42, "token_endpoint": "https://a.example/t" }));
        assert!(matches!(read, Ok(None)));
    }

    #[test]
    fn endpoints_obey_the_rules_of_token_url() {
        for bad in [
            "http://auth.example.com/token",
            "https://u:p@auth.example.com/token",
            "https://auth.example.com/token?client_secret=x",
            "not a url",
        ] {
            let e = read_ok(json!({ "issuer": ISSUER, "token_endpoint": bad })).unwrap_err();
            assert_eq!(e.code, ErrorCode::Config, "{bad}");
            assert!(e
                .description
                .unwrap()
                .starts_with("the issuer's token_endpoint"));
        }
        let e = read_ok(
            json!({ "issuer": ISSUER, "token_endpoint": "https://a.example/t",
            "mtls_endpoint_aliases": { "token_endpoint": "http://mtls.example/t" } }),
        )
        .unwrap_err();
        assert!(e.description.unwrap().contains("mtls_endpoint_aliases"));
        let e = read_ok(json!({ "issuer": ISSUER })).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidResponse);
        // A query named like a credential is refused without echoing the server's name for it.
        let e = read_ok(json!({ "issuer": ISSUER,
            "token_endpoint": "https://a.example/t?client_secret%0Ainjected=1" }))
        .unwrap_err();
        assert!(!e.message().contains("injected"), "{}", e.message());
    }

    #[test]
    fn odd_shapes_send_discovery_on_or_are_invalid_responses() {
        for body in [
            b"[]".as_slice(),
            b"<html>sign in</html>",
            b"{\"issuer\": \"https://auth.example.com\", \"issuer\": \"https://auth.example.com\"}",
            b"{\"issuer\": \"https://auth.example.com\", \"token_endpoint\": [\"x\"]}",
            b"\xff{}",
        ] {
            let answer = Received {
                status: 200,
                retry_after: None,
                cache_control: None,
                body: body.to_vec(),
            };
            let read = read(&answer, ISSUER, 0.0, parse_url);
            assert!(
                matches!(read, Ok(None)),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn statuses_say_try_the_next_location_retry_or_stop() {
        let at = |status| read(&answer(status, json!({}), None), ISSUER, 0.0, parse_url);
        assert_eq!(at(404).unwrap(), None);
        assert_eq!(at(403).unwrap(), None);
        let e = at(503).unwrap_err();
        assert_eq!(
            (e.code, e.retryable, e.retry_after_seconds),
            (ErrorCode::ServerError, true, Some(7.0))
        );
        assert_eq!(at(429).unwrap_err().code, ErrorCode::RateLimited);
        assert_eq!(at(408).unwrap_err().code, ErrorCode::Timeout);
        let e = at(302).unwrap_err();
        assert_eq!((e.code, e.retryable), (ErrorCode::InvalidResponse, false));
    }

    #[test]
    fn cache_control_sets_how_long_a_document_is_kept() {
        assert_eq!(keep_ms(None), MAX_KEEP_MS);
        assert_eq!(keep_ms(Some("public, max-age=3600")), 3_600_000.0);
        assert_eq!(keep_ms(Some("Max-Age=\"600\"")), 600_000.0);
        assert_eq!(keep_ms(Some("max-age=999999999")), MAX_KEEP_MS);
        assert_eq!(keep_ms(Some("max-age=0")), MIN_KEEP_MS);
        assert_eq!(keep_ms(Some("no-store")), MIN_KEEP_MS);
        assert_eq!(keep_ms(Some("no-cache, max-age=9000")), MIN_KEEP_MS);
        assert_eq!(keep_ms(Some("max-age=-5, private")), MAX_KEEP_MS);
    }

    #[test]
    fn a_kv_copy_is_taken_only_when_it_could_be_a_fresh_document() {
        let good = read_ok(json!({
            "issuer": ISSUER,
            "token_endpoint": "https://auth.example.com/token",
            "mtls_endpoint_aliases": { "token_endpoint": "https://mtls.example.com/token" },
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        }))
        .unwrap()
        .unwrap();
        let copy = good.to_copy();
        assert_eq!(
            from_copy(&copy, ISSUER, 1000.0, parse_url),
            Some(good.clone())
        );
        assert_eq!(
            from_copy(&copy, "https://evil.example", 1000.0, parse_url),
            None
        );
        assert_eq!(from_copy(&copy, ISSUER, good.until, parse_url), None);
        let bad = [
            Metadata {
                token_endpoint: "http://evil.example/t".into(),
                ..good.clone()
            },
            Metadata {
                mtls_token_endpoint: Some("ftp://x".into()),
                ..good.clone()
            },
            Metadata {
                until: 999.0,
                ..good.clone()
            },
            Metadata {
                until: 1000.0 + MAX_KEEP_MS + 1.0,
                ..good.clone()
            },
        ];
        for copy in bad {
            assert_eq!(
                from_copy(&copy.to_copy(), ISSUER, 1000.0, parse_url),
                None,
                "{copy:?}"
            );
        }
        let unknown = good.to_copy().replace("client_secret_basic", "none");
        let read = from_copy(&unknown, ISSUER, 1000.0, parse_url).unwrap();
        assert_eq!(read.auth_methods, Some(vec![]));
        assert_eq!(from_copy("{}", ISSUER, 1000.0, parse_url), None);
        assert_eq!(from_copy("garbage", ISSUER, 1000.0, parse_url), None);
    }
}
