//! The one error type, with the codes of the public API.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// What went wrong, as the stable string codes that JavaScript sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
}

impl ErrorCode {
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
        }
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
/// Cloud's `description`); it never holds the client secret or a token, see
/// [`TokenError::redact`].
#[derive(Clone, Debug, PartialEq)]
pub struct TokenError {
    /// What went wrong.
    pub code: ErrorCode,
    /// The HTTP status, when there was an answer.
    pub status: Option<u16>,
    /// Whether trying again later can help.
    pub retryable: bool,
    /// The server's explanation, or ours for failures without one.
    pub description: Option<String>,
    /// How long the server asked us to wait (`Retry-After`), in seconds.
    pub retry_after_seconds: Option<f64>,
}

impl TokenError {
    /// An error with a code and our own explanation.
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        Self {
            code,
            status: None,
            retryable: matches!(
                code,
                ErrorCode::RateLimited
                    | ErrorCode::ServerError
                    | ErrorCode::Network
                    | ErrorCode::Timeout
            ),
            description: Some(description.into()),
            retry_after_seconds: None,
        }
    }

    /// A `"config"` error: the options are wrong.
    pub fn config(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::Config, description)
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

    /// Removes every occurrence of `secret` from the description, and cuts
    /// it to a readable length. A hostile or careless server may echo what
    /// it was sent; the engine calls this with the client secret (raw and
    /// form-encoded) before an error leaves the core.
    pub fn redact(&mut self, secret: &str) {
        if let Some(text) = &mut self.description {
            if let Some(clean) = replace_all(text, secret, "[redacted]") {
                *text = clean;
            }
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

    /// The error message: code, status and description, never a secret.
    pub fn message(&self) -> String {
        let mut text = String::from(self.code.as_str());
        if let Some(status) = self.status {
            text.push_str(" (HTTP ");
            push_decimal(&mut text, status.into());
            text.push(')');
        }
        if let Some(description) = &self.description {
            text.push_str(": ");
            text.push_str(description);
        }
        if let Some(seconds) = self.retry_after_seconds {
            text.push_str(" (retry after ");
            push_decimal(&mut text, libm::ceil(seconds) as u64);
            text.push_str(" s)");
        }
        text
    }
}

/// `text` with every `needle` replaced, or `None` if there was none. A plain
/// byte scan: `str::replace` brings a substring-search engine into the wasm.
fn replace_all(text: &str, needle: &str, with: &str) -> Option<String> {
    let (hay, pin) = (text.as_bytes(), needle.as_bytes());
    if pin.is_empty() || hay.len() < pin.len() {
        return None;
    }
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    let mut found = false;
    while i < hay.len() {
        if hay[i..].starts_with(pin) {
            out.extend_from_slice(with.as_bytes());
            i += pin.len();
            found = true;
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    // Whole UTF-8 sequences were matched and copied, so this cannot fail.
    found.then(|| String::from_utf8(out).ok()).flatten()
}

/// Appends `n` in decimal. The wasm has no formatting machinery (it would
/// cost kilobytes), so messages are built by hand.
pub(crate) fn push_decimal(out: &mut String, n: u64) {
    if n >= 10 {
        push_decimal(out, n / 10);
    }
    out.push(char::from(b'0' + (n % 10) as u8));
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
        assert!(TokenError::new(ErrorCode::Network, "x").retryable);
        assert!(TokenError::new(ErrorCode::Timeout, "x").retryable);
        assert!(TokenError::new(ErrorCode::RateLimited, "x").retryable);
        assert!(TokenError::new(ErrorCode::ServerError, "x").retryable);
        assert!(!TokenError::new(ErrorCode::InvalidClient, "x").retryable);
        assert!(!TokenError::config("x").retryable);
        assert!(!TokenError::invalid_response("x").retryable);
    }

    #[test]
    fn redact_removes_the_secret_and_cuts_long_text() {
        let mut e = TokenError::new(ErrorCode::InvalidClient, "bad secret s3cr3t!! for s3cr3t!!");
        e.redact("s3cr3t!!");
        assert_eq!(
            e.description.as_deref(),
            Some("bad secret [redacted] for [redacted]")
        );
        let mut long = TokenError::invalid_response("é".repeat(400));
        long.redact("zzz");
        assert!(long.description.as_ref().unwrap().len() <= MAX_DESCRIPTION + 3);
    }

    #[test]
    fn replace_all_replaces_every_occurrence_or_reports_none() {
        assert_eq!(replace_all("aXbXX", "X", "-").as_deref(), Some("a-b--"));
        assert_eq!(
            replace_all("é-secret-é", "secret", "[r]").as_deref(),
            Some("é-[r]-é")
        );
        assert_eq!(replace_all("abc", "zz", "-"), None);
        assert_eq!(replace_all("abc", "", "-"), None);
        assert_eq!(replace_all("ab", "abc", "-"), None);
    }

    #[test]
    fn message_has_code_status_and_description() {
        let e =
            TokenError::new(ErrorCode::InvalidClient, "Bad client credentials").with_status(401);
        assert_eq!(
            e.message(),
            "invalid_client (HTTP 401): Bad client credentials"
        );
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
