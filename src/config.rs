//! The rules about option values, checked once, before anything is sent.
//! Every problem is a `config` error that names the option, never its value.

use crate::assertion::{is_thumbprint, pem, Algorithm};
use crate::error::{Source, TokenError};
use crate::options::{Number, Options, Text, Texts};
use crate::response::MAX_LIFETIME_SECONDS;
use crate::secret::ClientSecret;
use crate::shared::LEASE_MARGIN_MS;
use serde::Serialize;

/// How the client authenticates to the token endpoint (RFC 6749 §2.3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    /// HTTP Basic with form-encoded id and secret (the default).
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
    /// A JWT signed with the client's private key (RFC 7523 §2.2).
    PrivateKeyJwt,
    /// A JWT signed with the client secret (HS256).
    ClientSecretJwt,
    /// The client certificate of mutual TLS alone, CA-issued or self-signed
    /// (RFC 8705 §2): `client_id` in the form body, no secret.
    TlsClientAuth,
}

impl AuthMethod {
    /// Every `authMethod` freshtoken accepts, by the names of RFC 8414 and RFC 8705.
    pub const NAMES: [&'static str; 6] = [
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
        "client_secret_jwt",
        "tls_client_auth",
        "self_signed_tls_client_auth",
    ];

    /// The method's name in RFC 8414 metadata (both TLS methods send the same request).
    pub fn name(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::PrivateKeyJwt => "private_key_jwt",
            Self::ClientSecretJwt => "client_secret_jwt",
            Self::TlsClientAuth => "tls_client_auth",
        }
    }
}

/// How the client authenticates, with what it authenticates with: the one
/// type every use matches (the request's form and header, the signer, the
/// redactor).
#[derive(Clone, Debug, PartialEq)]
pub enum ClientAuth {
    /// `client_secret_basic`: HTTP Basic (RFC 6749 §2.3.1).
    Basic(ClientSecret),
    /// `client_secret_post`: `client_id` and `client_secret` in the form.
    Post(ClientSecret),
    /// `private_key_jwt` and `client_secret_jwt` (RFC 7523 §2.2): a signed
    /// assertion, keyed with the secret (HS256) or with the private key the
    /// signer holds (`secret` is then `None`).
    Jwt {
        /// How the assertion is made.
        jwt: Box<JwtAuth>,
        /// The HS256 key of `client_secret_jwt`.
        secret: Option<ClientSecret>,
    },
    /// `tls_client_auth` and `self_signed_tls_client_auth` (RFC 8705 §2):
    /// the client certificate alone, `client_id` in the form.
    Tls {
        /// `self_signed_tls_client_auth` (the same request; another name in metadata).
        self_signed: bool,
    },
    /// `clientAssertion` (RFC 7523 §2.2): another identity provider's JWT,
    /// asked of the host for every token request and sent as the client
    /// assertion, as `private_key_jwt` sends its own (docs/DESIGN.md, "Credentials asked for").
    Assertion,
}

/// A credential the host is asked for at every token request (an effect of
/// the driver), never held by the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Asked {
    /// `clientSecret` given as a function: read again for every request, and
    /// once more after `invalid_client` (rotation).
    Secret,
    /// `clientAssertion`.
    Assertion,
}

impl ClientAuth {
    /// The method, by kind.
    pub fn method(&self) -> AuthMethod {
        match self {
            Self::Basic(_) => AuthMethod::ClientSecretBasic,
            Self::Post(_) => AuthMethod::ClientSecretPost,
            Self::Jwt { secret: None, .. } => AuthMethod::PrivateKeyJwt,
            Self::Jwt {
                secret: Some(_), ..
            } => AuthMethod::ClientSecretJwt,
            Self::Tls { .. } => AuthMethod::TlsClientAuth,
            Self::Assertion => AuthMethod::PrivateKeyJwt,
        }
    }

    /// The client secret, for the methods that have one (and the redactor);
    /// `None` for a secret asked for at each request, which no config holds.
    pub fn secret(&self) -> Option<&str> {
        let secret = match self {
            Self::Basic(secret) | Self::Post(secret) => Some(secret.secret()),
            Self::Jwt { secret, .. } => secret.as_ref().map(ClientSecret::secret),
            Self::Tls { .. } | Self::Assertion => None,
        };
        secret.filter(|s| !s.is_empty())
    }

    /// The method's name as configured (`tls_client_auth` and
    /// `self_signed_tls_client_auth` differ here, unlike [`AuthMethod::name`]).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Tls { self_signed: true } => "self_signed_tls_client_auth",
            other => other.method().name(),
        }
    }

    /// How the assertion is made, for the JWT methods.
    pub fn jwt(&self) -> Option<&JwtAuth> {
        match self {
            Self::Jwt { jwt, .. } => Some(jwt),
            _ => None,
        }
    }
}

/// How the assertion of `private_key_jwt` and `client_secret_jwt` is made.
#[derive(Clone, Debug, PartialEq)]
pub struct JwtAuth {
    /// The algorithm asked for (`None`: the key's own).
    pub algorithm: Option<Algorithm>,
    /// The header's `kid`.
    pub key_id: Option<String>,
    /// The `aud` claim, `assertionAudience`; without it, the token endpoint of the attempt.
    pub audience: Option<String>,
    /// The header's `x5t#S256`, given.
    pub x5t_s256: Option<String>,
    /// The certificate (DER) whose thumbprint makes `x5t#S256`.
    pub certificate: Option<Vec<u8>>,
}

/// Retry settings: attempts, full-jitter exponential backoff and a deadline
/// for the whole acquisition.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in one acquisition, the first included.
    pub max_attempts: u32,
    /// Backoff before the second attempt, before jitter.
    pub base_delay_ms: f64,
    /// Largest backoff step, before jitter.
    pub max_delay_ms: f64,
    /// Bound on the whole acquisition, waits included.
    pub deadline_ms: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay_ms: 250.0,
            max_delay_ms: 10_000.0,
            deadline_ms: 30_000.0,
        }
    }
}

impl RetryPolicy {
    /// Full-jitter backoff after `failed` attempts: a uniform draw from
    /// `[0, min(max_delay, base × 2^(failed−1)))`.
    pub fn backoff_ms(&self, failed: u32, rand: f64) -> f64 {
        let doubling = f64::from(1u32 << failed.saturating_sub(1).min(30));
        rand * (self.base_delay_ms * doubling).min(self.max_delay_ms)
    }
}

/// Where the token endpoint comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum Endpoint {
    /// `tokenUrl`, as the host's URL parser reads it.
    Token(String),
    /// `issuer`, exactly as given: its metadata names the token endpoint
    /// (`src/discovery.rs`), and must name this issuer character for character.
    Issuer(String),
}

impl Endpoint {
    /// The configured URL: the token endpoint, or the issuer.
    pub fn url(&self) -> &str {
        match self {
            Self::Token(url) | Self::Issuer(url) => url,
        }
    }
}

/// What identifies a client's tokens, to share them through KV: never the secret.
#[derive(Clone, Debug, PartialEq)]
pub struct Identity {
    /// Token endpoint, or the issuer that names it.
    pub endpoint: Endpoint,
    /// Client identifier.
    pub client_id: String,
    /// Space-separated scope.
    pub scope: Option<String>,
    /// `audience` parameter.
    pub audience: Option<String>,
    /// `resource` parameters.
    pub resource: Vec<String>,
}

/// What names a client's token in KV (docs/DESIGN.md, "Shared state"):
/// every input that shapes its token request, with scope, resources and
/// extra parameters sorted so that their order does not matter. Never a
/// credential: the wrapper adds a keyed fingerprint of it.
#[derive(Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KvIdentity<'a> {
    /// Token endpoint, when configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_url: Option<&'a str>,
    /// Issuer, when configured instead (never the endpoint it names, which may move).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<&'a str>,
    /// Client identifier.
    pub client_id: &'a str,
    /// How the client authenticates.
    pub auth_method: &'static str,
    /// Scope values, sorted.
    pub scope: Vec<&'a str>,
    /// `audience` parameter.
    pub audience: Option<&'a str>,
    /// `resource` parameters, sorted.
    pub resource: Vec<&'a str>,
    /// Further form parameters as `[name, value]`, sorted by name.
    pub extra_params: Vec<(&'a str, &'a str)>,
}

/// Checked client configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Token endpoint, client id, scope, audience and resource.
    pub identity: Identity,
    /// How the client authenticates, with its secret (redacted in `Debug`) or assertion settings.
    pub auth: ClientAuth,
    /// Whether a client certificate goes with the token request (RFC 8705).
    pub mutual_tls: bool,
    /// The credential asked of the host for every token request, if any.
    pub asked: Option<Asked>,
    /// Whether the token is shared through a store (the `kv` option).
    pub shared: bool,
    /// Further form parameters.
    pub extra_params: Vec<(String, String)>,
    /// Per-request timeout in milliseconds.
    pub timeout_ms: f64,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// Fixed refresh window in seconds, if set.
    pub refresh_ahead_seconds: Option<f64>,
    /// How many tokens the client keeps at once, 1 to [`MAX_POOL_SIZE`].
    pub pool_size: u32,
}

/// The largest `poolSize`: Genesys Cloud's own limit for its token pools.
pub const MAX_POOL_SIZE: u32 = 50;

impl Config {
    /// Where this client's errors come from: the token endpoint's origin
    /// (never its path or query, which may carry more than it should) and
    /// the client id. With `issuer`, the issuer's origin until its metadata
    /// names the endpoint (`src/wasm.rs` then names that one).
    pub fn source(&self) -> Source {
        Source::new(self.identity.endpoint.url(), &self.identity.client_id)
    }

    /// How long a KV lease of this client lasts: one request timeout and a margin.
    pub fn lease_ms(&self) -> f64 {
        self.timeout_ms + LEASE_MARGIN_MS
    }

    /// The longest a KV lease of this client lasts: an acquisition's
    /// deadline (its holder renews it before each retry wait) and one lease.
    /// A lease reaching further is corrupt.
    pub fn max_lease_ms(&self) -> f64 {
        self.retry.deadline_ms + self.lease_ms()
    }

    /// What names this client's token in KV.
    pub fn kv_identity(&self) -> KvIdentity<'_> {
        let Identity {
            endpoint,
            client_id,
            scope,
            audience,
            resource,
        } = &self.identity;
        let (token_url, issuer) = match endpoint {
            Endpoint::Token(url) => (Some(url.as_str()), None),
            Endpoint::Issuer(issuer) => (None, Some(issuer.as_str())),
        };
        KvIdentity {
            token_url,
            issuer,
            client_id,
            auth_method: self.auth.method().name(),
            scope: sorted(scope.iter().flat_map(|s| s.split(' '))),
            audience: audience.as_deref(),
            resource: sorted(resource.iter().map(String::as_str)),
            // In name order already: they come from a map.
            extra_params: self
                .extra_params
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect(),
        }
    }
}

/// `items` in order (a few values: placed one by one).
fn sorted<'a>(items: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for item in items {
        out.insert(out.partition_point(|x| *x < item), item);
    }
    out
}

/// The longest `timeoutMs`: 5 minutes.
const MAX_TIMEOUT_MS: u32 = 300_000;
/// The longest retry wait (`retry.baseDelayMs`, `retry.maxDelayMs`): 10 minutes.
const MAX_DELAY_MS: u32 = 600_000;
/// The longest `retry.deadlineMs`: an hour.
const MAX_DEADLINE_MS: u32 = 3_600_000;

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
    /// Applies every rule to `options`. `parse_url` normalises a URL as the
    /// host's fetch will read it (the WHATWG URL parser in the wasm), or
    /// says it is not one; the scheme and host are checked on its answer.
    pub fn new(
        options: Options,
        parse_url: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, TokenError> {
        let asked = asked(&options)?;
        let endpoint = endpoint(options.token_url, options.issuer, &parse_url)?;
        let client_id = required("clientId", options.client_id)?;
        let federated = asked == Some(Asked::Assertion);
        let (auth_method, auth_method_name) =
            match options.auth_method.as_ref().map(|t| t.0.as_str()) {
                None if federated => (AuthMethod::PrivateKeyJwt, "private_key_jwt"),
                None | Some("client_secret_basic") => {
                    (AuthMethod::ClientSecretBasic, "client_secret_basic")
                }
                Some("client_secret_post") => (AuthMethod::ClientSecretPost, "client_secret_post"),
                Some("private_key_jwt") => (AuthMethod::PrivateKeyJwt, "private_key_jwt"),
                Some("client_secret_jwt") => (AuthMethod::ClientSecretJwt, "client_secret_jwt"),
                Some("tls_client_auth") => (AuthMethod::TlsClientAuth, "tls_client_auth"),
                Some("self_signed_tls_client_auth") => {
                    (AuthMethod::TlsClientAuth, "self_signed_tls_client_auth")
                }
                Some(_) => {
                    return Err(TokenError::config(
                        "authMethod must be \"client_secret_basic\", \"client_secret_post\", \
                     \"private_key_jwt\", \"client_secret_jwt\", \"tls_client_auth\" \
                     or \"self_signed_tls_client_auth\"",
                    ))
                }
            };
        let method_name = auth_method_name;
        let private_key = auth_method == AuthMethod::PrivateKeyJwt && !federated;
        let secretless =
            auth_method == AuthMethod::PrivateKeyJwt || auth_method == AuthMethod::TlsClientAuth;
        let secret = match (secretless, options.client_secret) {
            // A function, asked for at each request (`Asked::Secret`): the config holds none.
            (false, None) if options.secret_asked => Some(String::new()),
            (true, Some(_)) => {
                return Err(TokenError::config(format!(
                    "clientSecret is not used with {method_name} (leave it out)"
                )))
            }
            (true, None) => None,
            (false, given) => Some(required("clientSecret", given)?),
        };
        if auth_method == AuthMethod::TlsClientAuth && options.client_certificate.is_none() {
            return Err(TokenError::config(format!(
                "{method_name} needs clientCertificate"
            )));
        }
        if secret.as_ref().is_some_and(|s| s.trim() != s) {
            return Err(TokenError::config(
                "clientSecret has leading or trailing whitespace (a newline from a secrets file?)",
            ));
        }
        // RFC 7518 §3.2: an HS256 key is at least as long as the hash (32 bytes).
        if auth_method == AuthMethod::ClientSecretJwt
            && secret.as_ref().is_some_and(|s| s.len() < 32)
        {
            return Err(TokenError::config(
                "client_secret_jwt needs a clientSecret of at least 32 bytes (RFC 7518 §3.2)",
            ));
        }
        match (private_key, options.private_key.is_some()) {
            (true, false) => return Err(TokenError::config("private_key_jwt needs privateKey")),
            (false, true) => {
                return Err(TokenError::config(
                    "privateKey is for authMethod \"private_key_jwt\"",
                ))
            }
            _ => {}
        }
        let scope = texts("scope", options.scope)?.map(|items| items.join(" "));
        let audience = match options.audience {
            Some(Text(a)) if a.trim().is_empty() => {
                return Err(TokenError::config(
                    "audience must not be empty (leave it out instead)",
                ))
            }
            other => other.map(|t| t.0),
        };
        let resource = texts("resource", options.resource)?.unwrap_or_default();
        let mut extra_params = Vec::new();
        for (name, Text(value)) in options.extra_params.into_iter().flatten() {
            if name.is_empty() || RESERVED_PARAMS.contains(&name.as_str()) {
                return Err(TokenError::config(format!(
                    "extraParams may not set \"{name}\"; use the option of that name"
                )));
            }
            extra_params.push((name, value));
        }
        let retry = options.retry.unwrap_or_default();
        let defaults = RetryPolicy::default();
        let policy = RetryPolicy {
            max_attempts: whole("retry.maxAttempts", retry.max_attempts, 1, 100)?
                .unwrap_or(defaults.max_attempts),
            base_delay_ms: within("retry.baseDelayMs", retry.base_delay_ms, 0, MAX_DELAY_MS)?
                .unwrap_or(defaults.base_delay_ms),
            max_delay_ms: within("retry.maxDelayMs", retry.max_delay_ms, 0, MAX_DELAY_MS)?
                .unwrap_or(defaults.max_delay_ms),
            deadline_ms: within("retry.deadlineMs", retry.deadline_ms, 1, MAX_DEADLINE_MS)?
                .unwrap_or(defaults.deadline_ms),
        };
        if policy.max_delay_ms < policy.base_delay_ms {
            return Err(TokenError::config(
                "retry.maxDelayMs must not be smaller than retry.baseDelayMs",
            ));
        }
        let jwt_options = JwtOptions {
            signing_algorithm: options.signing_algorithm,
            key_id: options.key_id,
            assertion_audience: options.assertion_audience,
            x5t_s256: options.x5t_s256,
            certificate: options.certificate,
        };
        let jwt = match auth_method {
            _ if federated => {
                jwt_options.none_given()?;
                None
            }
            AuthMethod::PrivateKeyJwt | AuthMethod::ClientSecretJwt => {
                Some(Box::new(jwt_auth(auth_method, jwt_options)?))
            }
            _ => {
                jwt_options.none_given()?;
                None
            }
        };
        let secret = secret.map(ClientSecret::new);
        let auth = match (auth_method, jwt, secret) {
            _ if federated => ClientAuth::Assertion,
            (AuthMethod::ClientSecretPost, _, Some(secret)) => ClientAuth::Post(secret),
            (AuthMethod::TlsClientAuth, _, _) => ClientAuth::Tls {
                self_signed: auth_method_name == "self_signed_tls_client_auth",
            },
            (_, Some(jwt), secret) => ClientAuth::Jwt { jwt, secret },
            (_, _, Some(secret)) => ClientAuth::Basic(secret),
            (_, None, None) => return Err(TokenError::config("clientSecret is required")),
        };
        Ok(Self {
            identity: Identity {
                endpoint,
                client_id,
                scope,
                audience,
                resource,
            },
            auth,
            mutual_tls: options.client_certificate.is_some(),
            asked,
            shared: options.kv.is_some(),
            extra_params,
            timeout_ms: within("timeoutMs", options.timeout_ms, 1, MAX_TIMEOUT_MS)?
                .unwrap_or(10_000.0),
            retry: policy,
            refresh_ahead_seconds: within(
                "refreshAheadSeconds",
                options.refresh_ahead_seconds,
                0,
                MAX_LIFETIME_SECONDS as u32,
            )?,
            pool_size: whole("poolSize", options.pool_size, 1, MAX_POOL_SIZE)?.unwrap_or(1),
        })
    }
}

/// The credential the host is asked for at each request, checked against
/// the options it cannot go with (docs/DESIGN.md, "Credentials asked for").
fn asked(options: &Options) -> Result<Option<Asked>, TokenError> {
    let method = options.auth_method.as_ref().map(|t| t.0.as_str());
    if options.client_assertion.is_some() {
        let other = [
            (
                "clientSecret",
                options.client_secret.is_some() || options.secret_asked,
            ),
            ("privateKey", options.private_key.is_some()),
        ];
        if let Some((name, _)) = other.iter().find(|(_, given)| *given) {
            return Err(TokenError::config(format!(
                "clientAssertion is the credential: leave {name} out"
            )));
        }
        if method.is_some_and(|m| m != "private_key_jwt") {
            return Err(TokenError::config(
                "clientAssertion is sent as a private_key_jwt assertion (leave authMethod out)",
            ));
        }
        return Ok(Some(Asked::Assertion));
    }
    if !options.secret_asked {
        return Ok(None);
    }
    match method {
        None | Some("client_secret_basic" | "client_secret_post") => Ok(Some(Asked::Secret)),
        // Any other method refuses a secret, or (client_secret_jwt) imports its key once.
        _ => Err(TokenError::config(
            "clientSecret as a function is for client_secret_basic and client_secret_post",
        )),
    }
}

/// The options of the JWT methods.
struct JwtOptions {
    signing_algorithm: Option<Text>,
    key_id: Option<Text>,
    assertion_audience: Option<Text>,
    x5t_s256: Option<Text>,
    certificate: Option<Text>,
}

impl JwtOptions {
    /// For a method that makes no assertion: none of these options may be given.
    fn none_given(&self) -> Result<(), TokenError> {
        let given = [
            ("signingAlgorithm", &self.signing_algorithm),
            ("keyId", &self.key_id),
            ("assertionAudience", &self.assertion_audience),
            ("x5tS256", &self.x5t_s256),
            ("certificate", &self.certificate),
        ];
        match given.iter().find(|(_, value)| value.is_some()) {
            Some((name, _)) => Err(TokenError::config(format!(
                "{name} is for authMethod \"private_key_jwt\" or \"client_secret_jwt\""
            ))),
            None => Ok(()),
        }
    }
}

/// The assertion settings of a JWT method (`private_key_jwt`, `client_secret_jwt`).
#[inline(never)]
fn jwt_auth(method: AuthMethod, options: JwtOptions) -> Result<JwtAuth, TokenError> {
    let text = |name: &str, value: Option<Text>| match value {
        Some(Text(v)) if v.trim().is_empty() => {
            Err(TokenError::config(format!("{name} must not be empty")))
        }
        other => Ok(other.map(|t| t.0)),
    };
    let algorithm = text("signingAlgorithm", options.signing_algorithm)?;
    let key_id = text("keyId", options.key_id)?;
    let audience = text("assertionAudience", options.assertion_audience)?;
    let x5t_s256 = text("x5tS256", options.x5t_s256)?;
    let certificate = text("certificate", options.certificate)?;
    let thumbprint = x5t_s256.is_some() || certificate.is_some();
    if method == AuthMethod::ClientSecretJwt && thumbprint {
        return Err(TokenError::config(
            "x5tS256 and certificate are for authMethod \"private_key_jwt\"",
        ));
    }
    let algorithm = match (method, algorithm.as_deref()) {
        (_, None) => None,
        (AuthMethod::ClientSecretJwt, Some("HS256")) => Some(Algorithm::Hs256),
        (AuthMethod::ClientSecretJwt, Some(_)) => {
            return Err(TokenError::config(
                "signingAlgorithm of client_secret_jwt is \"HS256\"",
            ))
        }
        (_, Some(name)) => Some(Algorithm::from_name(name).ok_or_else(|| {
            TokenError::config(
                "signingAlgorithm must be \"RS256\", \"PS256\", \"ES256\" or \"EdDSA\"",
            )
        })?),
    };
    if x5t_s256.is_some() && certificate.is_some() {
        return Err(TokenError::config(
            "choose one of x5tS256 and certificate (its thumbprint)",
        ));
    }
    if x5t_s256.as_deref().is_some_and(|t| !is_thumbprint(t)) {
        return Err(TokenError::config(
            "x5tS256 must be the base64url SHA-256 thumbprint of the certificate (43 characters)",
        ));
    }
    let certificate = match certificate {
        Some(text) => Some(pem(&text, "CERTIFICATE").ok_or_else(|| {
            TokenError::config("certificate must be a PEM certificate (BEGIN CERTIFICATE)")
        })?),
        None => None,
    };
    Ok(JwtAuth {
        algorithm,
        key_id,
        audience,
        x5t_s256,
        certificate,
    })
}

fn required(name: &str, value: Option<Text>) -> Result<String, TokenError> {
    match value {
        Some(Text(v)) if !v.is_empty() => Ok(v),
        Some(_) => Err(TokenError::config(format!("{name} must not be empty"))),
        None => Err(TokenError::config(format!("{name} is required"))),
    }
}

/// A list of non-blank strings; an empty list is the same as none.
fn texts(name: &str, value: Option<Texts>) -> Result<Option<Vec<String>>, TokenError> {
    match value {
        Some(Texts(items)) if items.iter().any(|i| i.trim().is_empty()) => Err(TokenError::config(
            format!("{name} must not hold empty values (leave it out instead)"),
        )),
        Some(Texts(items)) if items.is_empty() => Ok(None),
        other => Ok(other.map(|t| t.0)),
    }
}

/// A number from `min` to `max` (finite by that), or absent. Every number
/// option has such a range (README, "Options"): a value past it is a
/// mistake, and would break what is computed from it (a KV lease's
/// `expireIn`, a timer).
fn within(
    name: &str,
    value: Option<Number>,
    min: u32,
    max: u32,
) -> Result<Option<f64>, TokenError> {
    match value {
        Some(Number(v)) if !(f64::from(min)..=f64::from(max)).contains(&v) => Err(
            TokenError::config(format!("{name} must be a number from {min} to {max}")),
        ),
        other => Ok(other.map(|n| n.0)),
    }
}

fn whole(name: &str, value: Option<Number>, min: u32, max: u32) -> Result<Option<u32>, TokenError> {
    match value {
        Some(Number(v)) if v.trunc() != v || !(f64::from(min)..=f64::from(max)).contains(&v) => {
            Err(TokenError::config(format!(
                "{name} must be a whole number from {min} to {max}"
            )))
        }
        other => Ok(other.map(|n| n.0 as u32)),
    }
}

/// The token endpoint: `tokenUrl` or `issuer`, exactly one.
fn endpoint(
    token_url: Option<Text>,
    issuer: Option<Text>,
    parse_url: &impl Fn(&str) -> Option<String>,
) -> Result<Endpoint, TokenError> {
    match (token_url, issuer) {
        (Some(_), Some(_)) => Err(TokenError::config(
            "give tokenUrl or issuer, not both (the issuer's metadata names its token endpoint)",
        )),
        (None, Some(issuer)) => {
            let issuer = required("issuer", Some(issuer))?;
            let parsed = parse_url(&issuer)
                .ok_or_else(|| TokenError::config("issuer is not a valid absolute URL"))?;
            check_url("issuer", &parsed, true)?;
            // The well-known locations are built from the string as given: it must be
            // the one a URL parser writes, so that they stay on its host and path.
            if parsed.trim_end_matches('/') != issuer.trim_end_matches('/') {
                return Err(TokenError::config(
                    "issuer must be written as a URL parser writes it (lower-case scheme and \
                     host, no default port, no . or .. segments)",
                ));
            }
            // RFC 8414 §2: an issuer has no query.
            if parsed.contains('?') {
                return Err(TokenError::config(
                    "issuer must not have a query (RFC 8414 §2)",
                ));
            }
            Ok(Endpoint::Issuer(issuer))
        }
        (None, None) => Err(TokenError::config("tokenUrl (or issuer) is required")),
        (Some(token_url), None) => {
            let token_url = required("tokenUrl", Some(token_url))?;
            let token_url = parse_url(&token_url)
                .ok_or_else(|| TokenError::config("tokenUrl is not a valid absolute URL"))?;
            check_token_url(&token_url)?;
            Ok(Endpoint::Token(token_url))
        }
    }
}

/// The rules of [`check_url`] for `tokenUrl`.
pub fn check_token_url(url: &str) -> Result<(), TokenError> {
    check_url("tokenUrl", url, true)
}

/// `https:` anywhere, `http:` only to a loopback host; no credentials or
/// fragment in the URL (RFC 6749 §3.2), nor a query parameter named like a
/// credential. Expects a WHATWG-normalised URL; errors call it `name`, and
/// name the parameter only when `configured` (a server's text is never echoed).
pub fn check_url(name: &str, url: &str, configured: bool) -> Result<(), TokenError> {
    let (https, rest) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
        (Some(rest), _) => (true, rest),
        (None, Some(rest)) => (false, rest),
        _ => {
            return Err(TokenError::config(format!(
                "{name} must be an absolute https: URL"
            )))
        }
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(TokenError::config(format!(
            "{name} must not contain credentials"
        )));
    }
    if url.contains('#') {
        return Err(TokenError::config(format!(
            "{name} must not contain a fragment"
        )));
    }
    // The URL, query and all, shows in HTTP telemetry (Deno's fetch span).
    let query = url.split_once('?').map_or("", |(_, q)| q);
    if let Some((param, _)) =
        form_urlencoded::parse(query.as_bytes()).find(|(param, _)| names_a_credential(param))
    {
        let param = match configured {
            true => format!(" ({param})"),
            false => String::new(),
        };
        return Err(TokenError::config(format!(
            "{name} must not carry a credential in its query{param}: the URL shows in \
             telemetry; use clientSecret or extraParams"
        )));
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    match https {
        true if !host.is_empty() => Ok(()),
        false if is_loopback(host) => Ok(()),
        _ => Err(TokenError::config(format!(
            "{name} must use https: (http: is allowed only to a loopback host)"
        ))),
    }
}

/// Whether a query parameter's name says it carries a credential: compared
/// in lower case without `-` and `_` (so `clientSecret`, `client-secret` and
/// `CLIENT_SECRET` alike), by what it contains or, for short names, exactly.
fn names_a_credential(name: &str) -> bool {
    const CONTAINED: [&str; 6] = [
        "secret",
        "password",
        "passwd",
        "apikey",
        "token",
        "assertion",
    ];
    const EXACT: [&str; 4] = ["sig", "signature", "key", "pwd"];
    let name: String = name
        .chars()
        .filter(|c| !matches!(c, '-' | '_'))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    CONTAINED.iter().any(|part| name.contains(part)) || EXACT.contains(&name.as_str())
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::error::ErrorCode;

    /// Options from JSON, as the wasm reads them from JavaScript.
    pub(crate) fn options(json: serde_json::Value) -> Options {
        let mut base = serde_json::json!({
            "tokenUrl": "https://login.example.com/oauth/token",
            "clientId": "id",
            "clientSecret": "secret",
        });
        base.as_object_mut()
            .unwrap()
            .extend(json.as_object().unwrap().clone());
        crate::options::read(base).unwrap()
    }

    pub(crate) fn config(json: serde_json::Value) -> Result<Config, TokenError> {
        Config::new(options(json), |url| Some(url.to_owned()))
    }

    fn config_error(json: serde_json::Value) -> String {
        let e = config(json).unwrap_err();
        assert_eq!(e.code, ErrorCode::Config);
        e.description.unwrap()
    }

    #[test]
    fn defaults_follow_rfc_6749_and_our_documentation() {
        let c = config(serde_json::json!({})).unwrap();
        assert_eq!(c.auth.method(), AuthMethod::ClientSecretBasic);
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
    fn scope_is_a_string_or_a_list_joined_by_spaces() {
        let c = config(serde_json::json!({ "scope": ["a", "b"], "resource": "r" })).unwrap();
        assert_eq!(c.identity.scope.as_deref(), Some("a b"));
        assert_eq!(c.identity.resource, ["r"]);
    }

    #[test]
    fn an_empty_list_is_no_scope_or_resource() {
        let c = config(serde_json::json!({ "scope": [], "resource": [] })).unwrap();
        assert_eq!((c.identity.scope, c.identity.resource), (None, vec![]));
    }

    #[test]
    fn token_url_must_be_https_or_loopback_http() {
        for ok in [
            "https://login.mypurecloud.ie/oauth/token",
            "http://127.0.0.1:8080/token",
            "http://127.9.9.9/token",
            "http://localhost/token",
            "http://[::1]:9/token",
            "https://login.example.com/token?tenant=a&keyset=2&signin=1",
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
            "https://login.example.com/token?client_secret=x",
            "https://login.example.com/token?tenant=a&API_KEY=x",
            "https://login.example.com/token?Sig=x",
            "https://login.example.com/token?clientSecret=x",
            "https://login.example.com/token?api-key=x",
            "https://login.example.com/token?key=x",
            "https://login.example.com/token?client_assertion=x",
            "https://login.example.com/token?refresh_token=x",
            "https://login.example.com/token?pwd=x",
            "login.example.com/token",
            "",
        ] {
            assert!(check_token_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_options_are_config_errors_naming_the_option() {
        use serde_json::json;
        let cases = [
            (json!({ "clientId": "" }), "clientId"),
            (json!({ "clientSecret": "" }), "clientSecret"),
            (json!({ "authMethod": "magic" }), "authMethod"),
            (
                json!({ "extraParams": { "grant_type": "password" } }),
                "grant_type",
            ),
            (json!({ "timeoutMs": 0 }), "timeoutMs"),
            (
                json!({ "retry": { "maxAttempts": 2.5 } }),
                "retry.maxAttempts",
            ),
            (
                json!({ "retry": { "baseDelayMs": 5000, "maxDelayMs": 100 } }),
                "retry.maxDelayMs",
            ),
            (json!({ "scope": "  " }), "scope"),
            (json!({ "scope": ["a", ""] }), "scope"),
            (json!({ "audience": "" }), "audience"),
            (
                json!({ "timeoutMs": 1e308 }),
                "timeoutMs must be a number from 1 to 300000",
            ),
            (
                json!({ "retry": { "deadlineMs": 1e12 } }),
                "retry.deadlineMs",
            ),
            (
                json!({ "retry": { "maxDelayMs": 1e9 } }),
                "retry.maxDelayMs",
            ),
            (json!({ "refreshAheadSeconds": -1 }), "refreshAheadSeconds"),
            (
                json!({ "refreshAheadSeconds": 1e10 }),
                "refreshAheadSeconds",
            ),
        ];
        for (json, name) in cases {
            let message = config_error(json.clone());
            assert!(message.contains(name), "{json}: {message}");
        }
        let mut o = options(json!({}));
        o.token_url = None;
        let e = Config::new(o, |u| Some(u.to_owned())).unwrap_err();
        assert_eq!(
            e.description.as_deref(),
            Some("tokenUrl (or issuer) is required")
        );
    }

    #[test]
    fn the_kv_identity_covers_every_request_input_in_any_order() {
        use serde_json::json;
        let a =
            config(json!({ "scope": "b a", "extraParams": { "y": "1", "organization": "org_A" } }))
                .unwrap();
        let b = config(
            json!({ "scope": ["a", "b"], "extraParams": { "organization": "org_A", "y": "1" } }),
        )
        .unwrap();
        assert_eq!(a.kv_identity(), b.kv_identity());
        for other in [
            json!({ "scope": "a b", "extraParams": { "y": "1", "organization": "org_B" } }),
            json!({ "scope": "a b", "extraParams": { "y": "1", "organization": "org_A" }, "authMethod": "client_secret_post" }),
            json!({ "scope": "a", "extraParams": { "y": "1", "organization": "org_A" } }),
        ] {
            assert_ne!(
                config(other.clone()).unwrap().kv_identity(),
                a.kv_identity(),
                "{other}"
            );
        }
        let c = config(json!({ "clientSecret": "canary-secret-value" })).unwrap();
        let text = serde_json::to_string(&c.kv_identity()).unwrap();
        assert!(!text.contains("canary"), "{text}");
    }

    #[test]
    fn errors_name_the_endpoints_origin_and_the_client_never_the_path_or_query() {
        let c = config(serde_json::json!({
            "tokenUrl": "https://login.mypurecloud.ie:8443/oauth/token?tenant=x",
            "clientId": "7f3c-app",
        }))
        .unwrap();
        let e = TokenError::new(
            crate::error::ErrorCode::InvalidClient,
            "client authentication failed",
        )
        .with_status(401)
        .from_source(&c.source());
        assert_eq!(
            e.message(),
            "invalid_client (HTTP 401) from https://login.mypurecloud.ie:8443 for client 7f3c-app: \
             client authentication failed"
        );
    }

    #[test]
    fn a_credential_in_the_token_url_query_is_named_never_shown() {
        let e = check_token_url("https://a.example/t?x=1&Client_Secret=canary-value").unwrap_err();
        let text = e.description.unwrap();
        assert!(text.contains("(Client_Secret)"), "{text}");
        assert!(!text.contains("canary"), "{text}");
    }

    #[test]
    fn tls_client_auth_needs_the_certificate_and_no_secret() {
        use serde_json::json;
        for method in ["tls_client_auth", "self_signed_tls_client_auth"] {
            let error = config_error(json!({ "authMethod": method }));
            assert!(error.contains("clientSecret is not used with"), "{error}");
            let mut o = options(json!({ "authMethod": method }));
            o.client_secret = None;
            let e = Config::new(o, |u| Some(u.to_owned())).unwrap_err();
            assert!(
                e.message().contains("needs clientCertificate"),
                "{}",
                e.message()
            );
            let mut o = options(json!({ "authMethod": method }));
            o.client_secret = None;
            o.client_certificate = Some(crate::options::Host);
            let c = Config::new(o, |u| Some(u.to_owned())).unwrap();
            assert!(matches!(c.auth, ClientAuth::Tls { .. }));
            assert_eq!(c.auth.name(), method);
        }
    }

    #[test]
    fn an_issuer_stands_in_for_the_token_url_and_names_the_kv_identity() {
        use serde_json::json;
        let mut o = options(json!({ "issuer": "https://auth.example.com" }));
        o.token_url = None;
        let c = Config::new(o, |u| Some(u.to_owned())).unwrap();
        assert_eq!(
            c.identity.endpoint,
            Endpoint::Issuer("https://auth.example.com".into())
        );
        assert_eq!(c.source().origin, "https://auth.example.com");
        let id = serde_json::to_value(c.kv_identity()).unwrap();
        assert_eq!(id["issuer"], "https://auth.example.com");
        assert!(id.get("tokenUrl").is_none());
        let fixed = serde_json::to_value(config(json!({})).unwrap().kv_identity()).unwrap();
        assert!(fixed.get("issuer").is_none());
        assert_eq!(
            config(json!({ "issuer": "https://auth.example.com" }))
                .unwrap_err()
                .description
                .unwrap(),
            "give tokenUrl or issuer, not both (the issuer's metadata names its token endpoint)"
        );
        for (issuer, message) in [
            ("http://auth.example.com", "issuer must use https:"),
            (
                "https://auth.example.com/?tenant=1",
                "issuer must not have a query",
            ),
            (
                "https://auth.example.com/#x",
                "issuer must not contain a fragment",
            ),
            ("", "issuer must not be empty"),
        ] {
            let mut o = options(json!({ "issuer": issuer }));
            o.token_url = None;
            let e = Config::new(o, |u| Some(u.to_owned())).unwrap_err();
            assert!(
                e.description.as_deref().unwrap().starts_with(message),
                "{issuer}: {e:?}"
            );
        }
    }

    #[test]
    fn jwt_methods_take_their_options_and_others_refuse_them() {
        use serde_json::json;
        let long = "s".repeat(32);
        let c = config(json!({ "authMethod": "client_secret_jwt", "clientSecret": long })).unwrap();
        let jwt = c.auth.jwt().unwrap().clone();
        assert_eq!(jwt.audience, None);
        assert_eq!(jwt.algorithm, None);
        let mut o = options(json!({ "authMethod": "private_key_jwt", "keyId": "k1",
            "signingAlgorithm": "PS256", "assertionAudience": "https://issuer.example" }));
        o.client_secret = None;
        o.private_key = Some(crate::options::Host);
        let c = Config::new(o, |u| Some(u.to_owned())).unwrap();
        assert_eq!(c.auth.secret(), None);
        assert_eq!(
            c.auth.jwt().cloned().map(Box::new),
            Some(Box::new(JwtAuth {
                algorithm: Some(Algorithm::Ps256),
                key_id: Some("k1".into()),
                audience: Some("https://issuer.example".into()),
                x5t_s256: None,
                certificate: None,
            }))
        );
        let cases = [
            (json!({ "keyId": "k" }), "keyId is for authMethod"),
            (
                json!({ "authMethod": "client_secret_jwt", "signingAlgorithm": "RS256",
                    "clientSecret": long }),
                "HS256",
            ),
            (
                json!({ "authMethod": "client_secret_jwt" }),
                "at least 32 bytes",
            ),
            (
                json!({ "authMethod": "client_secret_jwt", "x5tS256": "x", "clientSecret": long }),
                "private_key_jwt",
            ),
            (
                json!({ "authMethod": "private_key_jwt" }),
                "clientSecret is not used",
            ),
            (
                json!({ "privateKey": "pem" }),
                "privateKey is for authMethod",
            ),
        ];
        for (json, message) in cases {
            let error = config_error(json.clone());
            assert!(error.contains(message), "{json}: {error}");
        }
        let mut o = options(json!({ "authMethod": "private_key_jwt", "x5tS256": "short" }));
        o.client_secret = None;
        o.private_key = Some(crate::options::Host);
        let e = Config::new(o, |u| Some(u.to_owned())).unwrap_err();
        assert!(e.message().contains("43 characters"), "{}", e.message());
        let mut o = options(json!({ "authMethod": "private_key_jwt" }));
        o.client_secret = None;
        let e = Config::new(o, |u| Some(u.to_owned())).unwrap_err();
        assert!(e.message().contains("needs privateKey"));
    }

    #[test]
    fn a_secret_with_surrounding_whitespace_is_refused_without_showing_it() {
        for secret in ["canary\n", " canary", "canary\t"] {
            let message = config_error(serde_json::json!({ "clientSecret": secret }));
            assert!(message.contains("whitespace"), "{message}");
            assert!(!message.contains("canary"));
        }
    }

    #[test]
    fn debug_of_config_hides_the_secret() {
        let c = config(serde_json::json!({ "clientSecret": "canary-77" })).unwrap();
        let printed = format!("{c:?}");
        assert!(!printed.contains("canary-77"), "{printed}");
    }
}
