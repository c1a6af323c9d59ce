//! Client options, checked once, before anything is sent.

use crate::acquire::RetryPolicy;
use crate::error::{push_decimal, TokenError};
use crate::secret::ClientSecret;
use alloc::string::String;
use alloc::vec::Vec;

/// How the client authenticates to the token endpoint (RFC 6749 §2.3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    /// HTTP Basic with form-encoded id and secret (the default).
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
}

/// Options as they arrive from JavaScript (camelCase names there), before
/// checking. The wrapper normalises JavaScript shapes and types first (`scope` arrays joined by spaces,
/// `resource` always a list, `extraParams` as pairs, `tokenUrl` parsed by
/// the host's WHATWG URL parser).
#[derive(Default)]
pub struct Options {
    /// Token endpoint, as a normalised absolute URL.
    pub token_url: String,
    /// Client identifier.
    pub client_id: String,
    /// Client secret.
    pub client_secret: String,
    /// `"client_secret_basic"` or `"client_secret_post"`.
    pub auth_method: Option<String>,
    /// Space-separated scope.
    pub scope: Option<String>,
    /// `audience` parameter.
    pub audience: Option<String>,
    /// `resource` parameters (RFC 8707), in order.
    pub resource: Vec<String>,
    /// Further form parameters, in order.
    pub extra_params: Vec<(String, String)>,
    /// Per-request timeout.
    pub timeout_ms: Option<f64>,
    /// Attempts per acquisition, including the first.
    pub max_attempts: Option<f64>,
    /// First backoff step.
    pub base_delay_ms: Option<f64>,
    /// Largest backoff step.
    pub max_delay_ms: Option<f64>,
    /// Bound on one acquisition, retries included.
    pub deadline_ms: Option<f64>,
    /// Fixed refresh window instead of the computed one.
    pub refresh_ahead_seconds: Option<f64>,
}

/// Checked client configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Token endpoint.
    pub token_url: String,
    /// Client identifier.
    pub client_id: String,
    /// Client secret (redacted in `Debug`).
    pub client_secret: ClientSecret,
    /// Authentication method.
    pub auth_method: AuthMethod,
    /// Space-separated scope.
    pub scope: Option<String>,
    /// `audience` parameter.
    pub audience: Option<String>,
    /// `resource` parameters.
    pub resource: Vec<String>,
    /// Further form parameters.
    pub extra_params: Vec<(String, String)>,
    /// Per-request timeout in milliseconds.
    pub timeout_ms: f64,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// Fixed refresh window in seconds, if set.
    pub refresh_ahead_seconds: Option<f64>,
}

/// Form parameters the client sets itself; `extraParams` may not override them.
const RESERVED_PARAMS: [&str; 6] = [
    "grant_type",
    "client_id",
    "client_secret",
    "scope",
    "audience",
    "resource",
];

impl Config {
    /// Checks options; every problem is a `"config"` error naming the option.
    pub fn new(options: Options) -> Result<Self, TokenError> {
        // Checked by reference, then moved once: one drop of `options` on
        // failure instead of one per early return (each costs the wasm bytes).
        let (auth_method, retry) = check(&options)?;
        Ok(Self {
            token_url: options.token_url,
            client_id: options.client_id,
            client_secret: ClientSecret::new(options.client_secret),
            auth_method,
            scope: options.scope,
            audience: options.audience,
            resource: options.resource,
            extra_params: options.extra_params,
            timeout_ms: options.timeout_ms.unwrap_or(10_000.0),
            retry,
            refresh_ahead_seconds: options.refresh_ahead_seconds,
        })
    }
}

/// Every rule of [`Config::new`]: the authentication method and the retry
/// policy, or the first problem.
fn check(options: &Options) -> Result<(AuthMethod, RetryPolicy), TokenError> {
    check_token_url(&options.token_url)?;
    if options.client_id.is_empty() {
        return Err(TokenError::config("clientId must not be empty"));
    }
    if options.client_secret.is_empty() {
        return Err(TokenError::config("clientSecret must not be empty"));
    }
    let auth_method = match options.auth_method.as_deref() {
        None | Some("client_secret_basic") => AuthMethod::ClientSecretBasic,
        Some("client_secret_post") => AuthMethod::ClientSecretPost,
        Some(_) => {
            return Err(TokenError::config(
                "authMethod must be \"client_secret_basic\" or \"client_secret_post\"",
            ))
        }
    };
    non_empty("scope", &options.scope)?;
    non_empty("audience", &options.audience)?;
    if options.resource.iter().any(String::is_empty) {
        return Err(TokenError::config("resource must not contain empty values"));
    }
    for (name, _) in &options.extra_params {
        if name.is_empty() || RESERVED_PARAMS.contains(&name.as_str()) {
            return Err(TokenError::config(joined(&[
                "extraParams may not set \"",
                name,
                "\"; use the option of that name",
            ])));
        }
    }
    number("timeoutMs", options.timeout_ms, 1)?;
    number("refreshAheadSeconds", options.refresh_ahead_seconds, 0)?;
    let defaults = RetryPolicy::default();
    let retry = RetryPolicy {
        max_attempts: whole("retry.maxAttempts", options.max_attempts, 1, 100)?
            .map_or(defaults.max_attempts, |n| n as u32),
        base_delay_ms: number("retry.baseDelayMs", options.base_delay_ms, 0)?
            .unwrap_or(defaults.base_delay_ms),
        max_delay_ms: number("retry.maxDelayMs", options.max_delay_ms, 0)?
            .unwrap_or(defaults.max_delay_ms),
        deadline_ms: number("retry.deadlineMs", options.deadline_ms, 1)?
            .unwrap_or(defaults.deadline_ms),
    };
    if retry.max_delay_ms < retry.base_delay_ms {
        return Err(TokenError::config(
            "retry.maxDelayMs must not be smaller than retry.baseDelayMs",
        ));
    }
    Ok((auth_method, retry))
}

/// `parts` end to end (`concat` would bring a generic join into the wasm).
fn joined(parts: &[&str]) -> String {
    let mut text = String::new();
    for part in parts {
        text.push_str(part);
    }
    text
}

fn non_empty(name: &str, value: &Option<String>) -> Result<(), TokenError> {
    match value {
        Some(v) if v.trim().is_empty() => Err(TokenError::config(joined(&[
            name,
            " must not be empty (leave it out instead)",
        ]))),
        _ => Ok(()),
    }
}

/// A finite number of at least `min`, or absent.
fn number(name: &str, value: Option<f64>, min: u32) -> Result<Option<f64>, TokenError> {
    match value {
        Some(v) if !v.is_finite() || v < f64::from(min) => {
            let mut text = joined(&[name, " must be a finite number of at least "]);
            push_decimal(&mut text, min.into());
            Err(TokenError::config(text))
        }
        other => Ok(other),
    }
}

fn whole(name: &str, value: Option<f64>, min: u32, max: u32) -> Result<Option<f64>, TokenError> {
    match value {
        Some(v) if libm::trunc(v) != v || !(f64::from(min)..=f64::from(max)).contains(&v) => {
            let mut text = joined(&[name, " must be a whole number from "]);
            push_decimal(&mut text, min.into());
            text.push_str(" to ");
            push_decimal(&mut text, max.into());
            Err(TokenError::config(text))
        }
        other => Ok(other),
    }
}

/// `https:` anywhere, `http:` only to a loopback host; no credentials or
/// fragment in the URL (RFC 6749 §3.2). Expects a WHATWG-normalised URL.
pub fn check_token_url(url: &str) -> Result<(), TokenError> {
    // strip_prefix, not split_once("://"): substring search costs the wasm kilobytes.
    let (https, rest) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
        (Some(rest), _) => (true, rest),
        (None, Some(rest)) => (false, rest),
        _ => {
            return Err(TokenError::config(
                "tokenUrl must be an absolute https: URL",
            ))
        }
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(TokenError::config("tokenUrl must not contain credentials"));
    }
    if url.contains('#') {
        return Err(TokenError::config("tokenUrl must not contain a fragment"));
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    match https {
        true if !host.is_empty() => Ok(()),
        false if is_loopback(host) => Ok(()),
        _ => Err(TokenError::config(
            "tokenUrl must use https: (http: is allowed only to a loopback host)",
        )),
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host == "::1" || host.strip_prefix("127.").is_some_and(is_ipv4_tail)
}

fn is_ipv4_tail(tail: &str) -> bool {
    let parts: Vec<&str> = tail.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    pub(crate) fn options() -> Options {
        Options {
            token_url: "https://login.example.com/oauth/token".into(),
            client_id: "id".into(),
            client_secret: "secret".into(),
            ..Options::default()
        }
    }

    fn config_error(options: Options) -> String {
        let e = Config::new(options).unwrap_err();
        assert_eq!(e.code, ErrorCode::Config);
        e.description.unwrap()
    }

    #[test]
    fn defaults_follow_the_spec() {
        let c = Config::new(options()).unwrap();
        assert_eq!(c.auth_method, AuthMethod::ClientSecretBasic);
        assert_eq!(c.timeout_ms, 10_000.0);
        assert_eq!(c.retry, RetryPolicy::default());
        assert_eq!(
            (
                c.retry.max_attempts,
                c.retry.base_delay_ms,
                c.retry.max_delay_ms,
                c.retry.deadline_ms
            ),
            (4, 250.0, 10_000.0, 30_000.0)
        );
    }

    #[test]
    fn token_url_must_be_https_or_loopback_http() {
        for ok in [
            "https://login.mypurecloud.ie/oauth/token",
            "http://127.0.0.1:8080/token",
            "http://localhost/token",
            "http://[::1]:9/token",
        ] {
            assert!(check_token_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://login.example.com/token",
            "http://127.0.0.1.evil.example/token",
            "http://localhost.evil.example/token",
            "ftp://127.0.0.1/token",
            "https://user:pw@login.example.com/token",
            "https://login.example.com/token#frag",
            "login.example.com/token",
            "",
        ] {
            assert!(check_token_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_options_are_config_errors_naming_the_option() {
        let mut o = options();
        o.client_id = String::new();
        assert!(config_error(o).contains("clientId"));
        let mut o = options();
        o.client_secret = String::new();
        assert!(config_error(o).contains("clientSecret"));
        let mut o = options();
        o.auth_method = Some("private_key_jwt".into());
        assert!(config_error(o).contains("authMethod"));
        let mut o = options();
        o.extra_params = vec![("grant_type".into(), "password".into())];
        assert!(config_error(o).contains("grant_type"));
        let mut o = options();
        o.timeout_ms = Some(f64::NAN);
        assert!(config_error(o).contains("timeoutMs"));
        let mut o = options();
        o.max_attempts = Some(2.5);
        assert!(config_error(o).contains("maxAttempts"));
        let mut o = options();
        o.base_delay_ms = Some(5000.0);
        o.max_delay_ms = Some(100.0);
        assert!(config_error(o).contains("maxDelayMs"));
        let mut o = options();
        o.scope = Some("  ".into());
        assert!(config_error(o).contains("scope"));
    }

    #[test]
    fn debug_of_config_hides_the_secret() {
        let mut o = options();
        o.client_secret = "canary-77".into();
        let printed = format!("{:?}", Config::new(o).unwrap());
        assert!(!printed.contains("canary-77"), "{printed}");
    }
}
