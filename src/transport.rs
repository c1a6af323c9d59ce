//! Why an exchange got no usable answer, and what that means for the
//! caller (docs/DESIGN.md, "Transport"): which failures are worth a retry
//! and how the error names the exchange, the token request or the issuer's
//! metadata. `src/wasm/http.rs` reads the host's rejection; the decision is
//! made here, free of JavaScript.

use crate::error::{ErrorCode, TokenError};

/// Which exchange a request is: its errors say which one failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exchange {
    /// The token request (RFC 6749 §4.4.2).
    Token,
    /// The `GET` of the issuer's metadata (RFC 8414 §3).
    Metadata,
}

/// Why an attempt got no usable answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// No answer within the attempt's time.
    Timeout,
    /// Connection refused or reset, DNS, or anything the host does not say.
    Network,
    /// The TLS handshake failed: the server speaks plain HTTP, or presents a
    /// certificate the host does not trust. Retrying changes neither.
    Tls,
    /// The host refused: Deno without `--allow-net` for the URL's host.
    NotAllowed,
    /// The body is over 1 MiB.
    TooLarge,
    /// `fetch` answered with something other than a `Response`.
    NotAResponse,
}

/// Words of a host's TLS errors (rustls, as Deno reports them): a plain-HTTP
/// answer read as a TLS record ("received corrupt message of type
/// InvalidContentType"), a certificate refused, and only the server alerts
/// that say the two ends' configurations disagree. A connection closed during
/// the handshake ("tls handshake eof") or an InternalError alert is an outage.
const TLS_SIGNS: [&str; 7] = [
    "received corrupt message of type invalidcontenttype",
    "invalid peer certificate",
    "received fatal alert: handshakefailure",
    "received fatal alert: protocolversion",
    "received fatal alert: badcertificate",
    "received fatal alert: certificaterequired",
    "received fatal alert: unknownca",
];

impl Failure {
    /// What a rejected `fetch` means, from the error's `name` and its text
    /// (its message and its cause's): a permission the host lacks or a TLS
    /// handshake that fails is the caller's to fix, not an outage to retry.
    pub fn of_rejection(name: &str, text: &str) -> Self {
        if name == "NotCapable" || name == "PermissionDenied" {
            Self::NotAllowed
        } else if is_tls_failure(text) {
            Self::Tls
        } else {
            Self::Network
        }
    }

    /// The error the caller gets for this failure of `exchange`, whose
    /// attempt had `timeout_ms` to answer: a timeout says how long that was,
    /// so each front end (the library, the CLI's `--timeout`) reads the same
    /// number without a copy of the default.
    pub fn error(self, exchange: Exchange, timeout_ms: f64) -> TokenError {
        let (request, answerer, host, answer) = match exchange {
            Exchange::Token => (
                "token request",
                "the token endpoint",
                "the token URL's host",
                "token response body",
            ),
            Exchange::Metadata => (
                "metadata request",
                "the issuer's metadata",
                "the issuer's host",
                "metadata document",
            ),
        };
        match self {
            Self::Timeout => TokenError::new(
                ErrorCode::Timeout,
                format!(
                    "{answerer} did not answer within {} ms",
                    timeout_ms.round().max(1.0)
                ),
            ),
            Self::Network => TokenError::new(
                ErrorCode::Network,
                format!("the {request} failed (connection refused, reset or DNS)"),
            ),
            Self::Tls => TokenError::config(format!(
                "the {request} failed in the TLS handshake: the server may speak plain HTTP \
                 (use http: for a loopback server) or present a certificate this host does \
                 not trust"
            )),
            Self::NotAllowed => TokenError::config(format!(
                "the host does not allow the {request} (Deno: --allow-net for {host})"
            )),
            Self::TooLarge => TokenError::invalid_response(format!("the {answer} is over 1 MiB")),
            Self::NotAResponse => TokenError::invalid_response("fetch did not return a Response"),
        }
    }
}

/// Whether a host's error text tells of a failed TLS handshake. URLs in the
/// text are skipped: a host name may contain any of the words.
pub fn is_tls_failure(text: &str) -> bool {
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter(|word| !word.contains("://"))
        .collect();
    let text = words.join(" ").to_ascii_lowercase();
    TLS_SIGNS.iter().any(|sign| text.contains(sign))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_failures_as_deno_reports_them_are_recognised() {
        for text in [
            "error sending request for url (https://127.0.0.1:4000/token): client error \
             (Connect): received corrupt message of type InvalidContentType",
            "client error (Connect): invalid peer certificate: UnknownIssuer",
            "received fatal alert: HandshakeFailure",
        ] {
            assert!(is_tls_failure(text), "{text}");
            assert_eq!(Failure::of_rejection("TypeError", text), Failure::Tls);
        }
        for text in [
            "error sending request for url (https://tls-handshake.invalidcontenttype.example/): \
             client error (Connect): tcp connect error: Connection refused",
            "fetch failed",
            "client error (Connect): tls handshake eof",
            "client error (Connect): received fatal alert: InternalError",
            "",
        ] {
            assert!(!is_tls_failure(text), "{text}");
            assert_eq!(Failure::of_rejection("TypeError", text), Failure::Network);
        }
        assert_eq!(
            Failure::of_rejection("NotCapable", "received corrupt message"),
            Failure::NotAllowed
        );
    }

    #[test]
    fn a_tls_failure_is_a_config_error_naming_the_exchange() {
        let token = Failure::Tls.error(Exchange::Token, 10_000.0);
        assert_eq!(token.code, ErrorCode::Config);
        assert!(!token.retryable);
        assert!(token
            .message()
            .contains("token request failed in the TLS handshake"));
        let metadata = Failure::Tls.error(Exchange::Metadata, 10_000.0);
        assert!(metadata.message().contains("metadata request"));
    }

    #[test]
    fn network_and_timeout_failures_retry_and_name_the_exchange() {
        let network = Failure::Network.error(Exchange::Metadata, 10_000.0);
        assert!(network.retryable);
        assert_eq!(
            network.description.as_deref(),
            Some("the metadata request failed (connection refused, reset or DNS)")
        );
        let timeout = Failure::Timeout.error(Exchange::Token, 200.0);
        assert_eq!(timeout.code, ErrorCode::Timeout);
        assert_eq!(
            timeout.description.as_deref(),
            Some("the token endpoint did not answer within 200 ms")
        );
        // An attempt cut short by the deadline says what it had, to the nearest ms.
        let cut = Failure::Timeout.error(Exchange::Metadata, 1_234.2);
        assert_eq!(
            cut.description.as_deref(),
            Some("the issuer's metadata did not answer within 1234 ms")
        );
    }
}
