//! The one error type, with the codes of the public API (RFC 6749 §5.2 and ours).

use crate::redact::Redactor;
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;

/// What went wrong, as the stable string codes JavaScript sees. This is the
/// one list of codes: the wrapper's `TokenErrorCode` union is checked
/// against [`ErrorCode::ALL`] by a test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The server rejected the client credentials (RFC 6749 §5.2).
    InvalidClient,
    /// The requested scope is invalid, unknown or malformed.
    InvalidScope,
    /// The request was malformed, or the server refused it without a usable code.
    InvalidRequest,
    /// The client may not use the client-credentials grant.
    UnauthorizedClient,
    /// The server does not support the client-credentials grant.
    UnsupportedGrantType,
    /// The server refused access (HTTP 403 or `access_denied`).
    AccessDenied,
    /// HTTP 429: the server asked us to slow down.
    RateLimited,
    /// HTTP 5xx or `server_error` / `temporarily_unavailable`.
    ServerError,
    /// The request never got an HTTP answer.
    Network,
    /// No answer within `timeoutMs` (or HTTP 408).
    Timeout,
    /// The answer was not a usable token response.
    InvalidResponse,
    /// The options are wrong; nothing was sent.
    Config,
    /// The caller's `AbortSignal` fired.
    Aborted,
    /// A bug in freshtoken: its executor drove the core out of order, or
    /// the core reached a state it holds impossible. Never retried, so that
    /// it surfaces as what it is rather than as retries and a hold-back.
    Internal,
}

impl ErrorCode {
    /// Every code, in the order the documentation lists them.
    pub const ALL: [ErrorCode; 14] = [
        Self::InvalidClient,
        Self::InvalidScope,
        Self::InvalidRequest,
        Self::UnauthorizedClient,
        Self::UnsupportedGrantType,
        Self::AccessDenied,
        Self::RateLimited,
        Self::ServerError,
        Self::Network,
        Self::Timeout,
        Self::InvalidResponse,
        Self::Config,
        Self::Aborted,
        Self::Internal,
    ];

    /// The code as JavaScript sees it, e.g. `"invalid_client"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidClient => "invalid_client",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidRequest => "invalid_request",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::AccessDenied => "access_denied",
            Self::RateLimited => "rate_limited",
            Self::ServerError => "server_error",
            Self::Network => "network",
            Self::Timeout => "timeout",
            Self::InvalidResponse => "invalid_response",
            Self::Config => "config",
            Self::Aborted => "aborted",
            Self::Internal => "internal",
        }
    }

    /// Whether errors with this code are worth retrying by default: the
    /// transient ones. An OAuth `server_error` body may say so too.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            Self::RateLimited | Self::ServerError | Self::Network | Self::Timeout
        )
    }

    /// Maps an RFC 6749 §5.2 `error` value; `None` for codes we do not know.
    pub fn from_oauth(error: &str) -> Option<Self> {
        Some(match error {
            "invalid_client" => Self::InvalidClient,
            "invalid_scope" => Self::InvalidScope,
            "invalid_request" | "invalid_grant" => Self::InvalidRequest,
            "unauthorized_client" => Self::UnauthorizedClient,
            "unsupported_grant_type" => Self::UnsupportedGrantType,
            "access_denied" => Self::AccessDenied,
            "server_error" | "temporarily_unavailable" => Self::ServerError,
            _ => return None,
        })
    }
}

/// Longest server description we keep; longer ones (HTML pages) are cut.
const MAX_DESCRIPTION: usize = 300;

/// A failed token request or bad configuration.
///
/// `description` is the server's own words (`error_description`, or Genesys
/// Cloud's `description`) or ours; what came from a server has been through
/// [`TokenError::redact`] before it leaves the core. It serialises with its
/// [`TokenError::message`], as JavaScript's `TokenError` carries one.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenError {
    /// What went wrong.
    pub code: ErrorCode,
    /// The HTTP status, when there was an answer.
    pub status: Option<u16>,
    /// Whether trying again later can help.
    pub retryable: bool,
    /// The server's explanation, or ours for failures without one.
    pub description: Option<String>,
    /// How long to wait before asking again (`Retry-After`, or the hold-back left), in seconds.
    pub retry_after_seconds: Option<f64>,
    /// Which endpoint and client it is about, once the error leaves a client's core.
    #[serde(skip)]
    pub source: Option<Box<Source>>,
}

/// Where an error comes from, for its message: neither is secret.
#[derive(Clone, Debug, PartialEq)]
pub struct Source {
    /// The token endpoint's origin: scheme, host and port, never its path or query.
    pub origin: String,
    /// The client id, in full.
    pub client_id: String,
}

impl Source {
    /// The source of `url`'s origin (its scheme, host and port) and `client_id`.
    pub fn new(url: &str, client_id: &str) -> Self {
        let scheme_end = url.find("://").map_or(0, |at| at + 3);
        let origin_end = url[scheme_end..]
            .find(['/', '?', '#'])
            .map_or(url.len(), |at| scheme_end + at);
        Self {
            origin: url[..origin_end].to_owned(),
            client_id: client_id.to_owned(),
        }
    }
}

/// The longest URL an error shows.
const MAX_URL_IN_MESSAGE: usize = 120;

/// `url` as an error may show it: scheme, host, port and path, never
/// credentials, query or fragment; visible ASCII only (no control
/// character, no line break; other characters percent-encoded as UTF-8),
/// at most [`MAX_URL_IN_MESSAGE`] characters.
/// For URLs a server named as well as configured ones.
pub fn url_for_message(url: &str) -> String {
    let scheme_end = url.find("://").map_or(0, |at| at + 3);
    let (scheme, rest) = url.split_at(scheme_end);
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let host_start = rest[..authority_end].rfind('@').map_or(0, |at| at + 1);
    let mut shown = String::new();
    for c in format!("{scheme}{}", &rest[host_start..]).chars() {
        match c {
            c if c.is_ascii_graphic() => shown.push(c),
            c if c.is_ascii() => {} // white space and control characters
            c => {
                // Not ASCII (an international host name, say): shown percent-encoded, not dropped.
                let mut bytes = [0; 4];
                for byte in c.encode_utf8(&mut bytes).bytes() {
                    shown.push_str(&format!("%{byte:02X}"));
                }
            }
        }
    }
    match shown.len() > MAX_URL_IN_MESSAGE {
        true => format!("{}…", &shown[..MAX_URL_IN_MESSAGE]),
        false => shown,
    }
}

impl Serialize for TokenError {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut out = serializer.serialize_struct("TokenError", 6)?;
        out.serialize_field("message", &self.message())?;
        out.serialize_field("code", &self.code)?;
        if let Some(status) = self.status {
            out.serialize_field("status", &status)?;
        }
        out.serialize_field("retryable", &self.retryable)?;
        if let Some(description) = &self.description {
            out.serialize_field("description", description)?;
        }
        if let Some(seconds) = self.retry_after_seconds {
            out.serialize_field("retryAfterSeconds", &seconds)?;
        }
        out.end()
    }
}

impl TokenError {
    /// An error with a code and our own explanation.
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        Self {
            code,
            status: None,
            retryable: code.retryable(),
            description: Some(description.into()),
            retry_after_seconds: None,
            source: None,
        }
    }

    /// The same error, saying which endpoint and client it is about.
    pub fn from_source(mut self, source: &Source) -> Self {
        self.source = Some(Box::new(source.clone()));
        self
    }

    /// A `"config"` error: the options are wrong.
    pub fn config(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::Config, description)
    }

    /// An `"internal"` error: a bug in freshtoken, not a failure of the server or store.
    pub fn internal(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, description)
    }

    /// An `"invalid_response"` error: the answer was not a usable token.
    pub fn invalid_response(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidResponse, description)
    }

    /// Sets the HTTP status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// Removes every credential `redactor` knows from the description, in
    /// every encoding a server may echo it in, and cuts the text to a
    /// readable length. A hostile or careless server may echo what it was
    /// sent; the core calls this before an error leaves it.
    pub fn redact(&mut self, redactor: &Redactor) {
        if let Some(text) = &mut self.description {
            *text = redactor.redact(text);
            if text.len() > MAX_DESCRIPTION {
                let mut end = MAX_DESCRIPTION;
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                text.truncate(end);
                text.push('…');
            }
        }
    }

    /// The error message, formatted here alone: code, status, endpoint and
    /// client, description (`invalid_client (HTTP 401) from
    /// https://login.mypurecloud.ie for client 7f3c…: …`); never a secret.
    pub fn message(&self) -> String {
        let mut text = String::from(self.code.as_str());
        if let Some(status) = self.status {
            text += &format!(" (HTTP {status})");
        }
        if let Some(source) = &self.source {
            text += &format!(" from {} for client {}", source.origin, source.client_id);
        }
        if let Some(description) = &self.description {
            text += ": ";
            text += description;
        }
        if let Some(seconds) = self.retry_after_seconds {
            text += &format!(" (retry after {} s)", seconds.ceil() as u64);
        }
        text
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_codes_are_the_transient_ones() {
        let retryable: Vec<&str> = ErrorCode::ALL
            .iter()
            .filter(|c| c.retryable())
            .map(|c| c.as_str())
            .collect();
        assert_eq!(
            retryable,
            ["rate_limited", "server_error", "network", "timeout"]
        );
        assert!(!TokenError::config("x").retryable);
        assert!(TokenError::new(ErrorCode::Timeout, "x").retryable);
    }

    #[test]
    fn serialised_codes_are_the_documented_strings() {
        for code in ErrorCode::ALL {
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::json!(code.as_str())
            );
        }
    }

    #[test]
    fn redact_removes_credentials_and_cuts_long_text() {
        let redactor = Redactor::new("id", Some("s3cr3t!!value"));
        let mut e = TokenError::new(
            ErrorCode::InvalidClient,
            "bad secret s3cr3t!!value for s3cr3t%21%21value",
        );
        e.redact(&redactor);
        assert_eq!(
            e.description.as_deref(),
            Some("bad secret [redacted] for [redacted]")
        );
        let mut long = TokenError::invalid_response("é".repeat(400));
        long.redact(&redactor);
        assert!(long.description.as_ref().unwrap().len() <= MAX_DESCRIPTION + 3);
    }

    #[test]
    fn message_has_code_status_description_and_wait() {
        let mut e =
            TokenError::new(ErrorCode::RateLimited, "too many token requests").with_status(429);
        e.retry_after_seconds = Some(4.2);
        assert_eq!(
            e.message(),
            "rate_limited (HTTP 429): too many token requests (retry after 5 s)"
        );
    }

    #[test]
    fn an_error_crosses_as_its_fields_and_message_and_comes_back() {
        let e = TokenError::new(ErrorCode::InvalidClient, "bad").with_status(401);
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "message": "invalid_client (HTTP 401): bad",
                "code": "invalid_client",
                "status": 401,
                "retryable": false,
                "description": "bad",
            })
        );
        assert_eq!(serde_json::from_value::<TokenError>(json).unwrap(), e);
    }

    #[test]
    fn urls_in_messages_show_no_credentials_query_or_control_characters() {
        assert_eq!(
            url_for_message("https://u:canary-secret@auth.example.com/t?code=x#f"),
            "https://auth.example.com/t"
        );
        assert_eq!(
            url_for_message("https://auth.example.com/a@b\n\u{1b}[31mX: 1"),
            "https://auth.example.com/a@b[31mX:1"
        );
        assert_eq!(
            url_for_message("https://evil.example/\r\nline\u{7f}é"),
            "https://evil.example/line%C3%A9"
        );
        assert_eq!(
            url_for_message("https://bücher.example/"),
            "https://b%C3%BCcher.example/"
        );
        let long = url_for_message(&format!("https://a.example/{}", "p".repeat(500)));
        assert_eq!(long.chars().count(), MAX_URL_IN_MESSAGE + 1);
        assert!(long.ends_with('…'));
    }

    #[test]
    fn oauth_codes_map_to_ours() {
        assert_eq!(
            ErrorCode::from_oauth("invalid_scope"),
            Some(ErrorCode::InvalidScope)
        );
        assert_eq!(
            ErrorCode::from_oauth("temporarily_unavailable"),
            Some(ErrorCode::ServerError)
        );
        assert_eq!(ErrorCode::from_oauth("made_up"), None);
    }
}
