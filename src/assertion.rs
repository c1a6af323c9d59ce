//! Client authentication with a signed JWT ([RFC 7523 §2.2], OpenID Connect
//! `private_key_jwt` and `client_secret_jwt`): what to sign and how the
//! result is laid out. The signature itself is the host's WebCrypto's
//! (src/wasm/sign.rs); nothing here holds key material.
//!
//! [RFC 7523 §2.2]: https://www.rfc-editor.org/rfc/rfc7523#section-2.2

use crate::error::TokenError;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde::Serialize;

/// The `client_assertion_type` of a JWT assertion (RFC 7523 §2.2).
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How long an assertion is valid: servers refuse long-lived ones.
pub const LIFETIME_SECONDS: f64 = 60.0;

/// A JWS algorithm freshtoken signs assertions with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PSS with SHA-256.
    Ps256,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// Ed25519.
    EdDsa,
    /// HMAC with SHA-256, keyed with the client secret (`client_secret_jwt`).
    Hs256,
}

impl Algorithm {
    /// Its JWS name (RFC 7518, RFC 8037).
    pub fn name(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Ps256 => "PS256",
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
            Self::Hs256 => "HS256",
        }
    }

    /// The algorithms a `signingAlgorithm` option may name.
    pub const PRIVATE_KEY: [Algorithm; 4] = [Self::Rs256, Self::Ps256, Self::Es256, Self::EdDsa];

    /// The algorithm of a `signingAlgorithm` option.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::PRIVATE_KEY.into_iter().find(|a| a.name() == name)
    }
}

/// What a private key is, as far as the algorithm goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// An RSA key: RS256 or PS256.
    Rsa,
    /// An EC key on P-256: ES256.
    EcP256,
    /// An Ed25519 key: EdDSA.
    Ed25519,
    /// A PKCS#8 key not yet imported: WebCrypto finds out.
    Unknown,
}

impl KeyKind {
    /// The kind of a JWK's `kty` and `crv`.
    pub fn of_jwk(kty: &str, crv: Option<&str>) -> Option<Self> {
        match (kty, crv) {
            ("RSA", _) => Some(Self::Rsa),
            ("EC", Some("P-256")) => Some(Self::EcP256),
            ("OKP", Some("Ed25519")) => Some(Self::Ed25519),
            _ => None,
        }
    }

    /// The kind of a WebCrypto key's algorithm name.
    pub fn of_webcrypto(name: &str) -> Option<Self> {
        match name {
            "RSASSA-PKCS1-v1_5" | "RSA-PSS" => Some(Self::Rsa),
            "ECDSA" => Some(Self::EcP256),
            "Ed25519" => Some(Self::Ed25519),
            _ => None,
        }
    }
}

/// The algorithms to try, in order, for a key of `kind`: the one
/// `requested` (refused if it does not fit the key), else the key's own
/// (`preferred`, a JWK's `alg`), else its kind's default; a PKCS#8 key of
/// unknown kind is tried as RSA, then P-256, then Ed25519.
pub fn candidates(
    kind: KeyKind,
    requested: Option<Algorithm>,
    preferred: Option<Algorithm>,
) -> Result<Vec<Algorithm>, TokenError> {
    use Algorithm::*;
    let fits = |a: Algorithm| match kind {
        KeyKind::Rsa => matches!(a, Rs256 | Ps256),
        KeyKind::EcP256 => a == Es256,
        KeyKind::Ed25519 => a == EdDsa,
        KeyKind::Unknown => a != Hs256,
    };
    match requested.or(preferred) {
        Some(a) if fits(a) => Ok(vec![a]),
        Some(a) => Err(TokenError::config(format!(
            "{} {} does not fit the privateKey",
            if requested.is_some() {
                "signingAlgorithm"
            } else {
                "the key's own alg"
            },
            a.name()
        ))),
        None => Ok(match kind {
            KeyKind::Rsa => vec![Rs256],
            KeyKind::EcP256 => vec![Es256],
            KeyKind::Ed25519 => vec![EdDsa],
            KeyKind::Unknown => vec![Rs256, Es256, EdDsa],
        }),
    }
}

/// The DER inside a PEM block labelled `label` (`PRIVATE KEY`, `CERTIFICATE`).
pub fn pem(text: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let body = text.trim().strip_prefix(begin.as_str())?;
    let body = &body[..body.find(end.as_str())?];
    let base64: String = body.split_whitespace().collect();
    STANDARD.decode(base64).ok().filter(|der| !der.is_empty())
}

/// Why a `privateKey` string is not a PKCS#8 PEM key, in words that say what to do.
pub fn pem_key_fault(text: &str) -> &'static str {
    if text.contains("ENCRYPTED PRIVATE KEY") {
        "privateKey is an encrypted PKCS#8 key: pass it decrypted (a CryptoKey is kept non-extractable)"
    } else if text.contains("RSA PRIVATE KEY") || text.contains("EC PRIVATE KEY") {
        "privateKey must be PKCS#8 (BEGIN PRIVATE KEY): convert it with openssl pkcs8 -topk8 -nocrypt"
    } else {
        "privateKey must be a CryptoKey, a private JWK or a PKCS#8 PEM string"
    }
}

/// Whether `text` is an `x5t#S256`: the unpadded base64url of a SHA-256 digest.
pub fn is_thumbprint(text: &str) -> bool {
    URL_SAFE_NO_PAD
        .decode(text)
        .is_ok_and(|digest| digest.len() == 32)
}

/// The unpadded base64url of `bytes`, as JWS uses it.
pub fn base64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[derive(Serialize)]
struct Header<'a> {
    alg: &'a str,
    typ: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    kid: Option<&'a str>,
    #[serde(rename = "x5t#S256", skip_serializing_if = "Option::is_none")]
    x5t_s256: Option<&'a str>,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    jti: &'a str,
    iat: u64,
    nbf: u64,
    exp: u64,
}

/// What one assertion says.
pub struct Assertion<'a> {
    /// The signing algorithm.
    pub algorithm: Algorithm,
    /// The header's `kid`.
    pub key_id: Option<&'a str>,
    /// The header's `x5t#S256` (Microsoft Entra ID's certificate credentials).
    pub x5t_s256: Option<&'a str>,
    /// `iss` and `sub`.
    pub client_id: &'a str,
    /// `aud`.
    pub audience: &'a str,
    /// `jti`: new for every attempt, as servers refuse a replay.
    pub jti: &'a str,
    /// Now, epoch milliseconds: `iat` and `nbf`, and `exp` 60 s later.
    pub now_ms: f64,
}

impl Assertion<'_> {
    /// `base64url(header) "." base64url(claims)`: the bytes to sign.
    pub fn signing_input(&self) -> String {
        let header = Header {
            alg: self.algorithm.name(),
            typ: "JWT",
            kid: self.key_id,
            x5t_s256: self.x5t_s256,
        };
        let iat = (self.now_ms / 1000.0).floor().max(0.0) as u64;
        let claims = Claims {
            iss: self.client_id,
            sub: self.client_id,
            aud: self.audience,
            jti: self.jti,
            iat,
            // Microsoft Entra ID asks for `nbf` too.
            nbf: iat,
            exp: iat + LIFETIME_SECONDS as u64,
        };
        format!("{}.{}", part(&header), part(&claims))
    }
}

/// One part of a JWS: its JSON, base64url-encoded. Headers and claims are
/// plain structs of strings and numbers, which always serialise.
fn part<T: Serialize>(value: &T) -> String {
    base64url(serde_json::to_string(value).unwrap_or_default().as_bytes())
}

/// The compact JWS: the signing input and its signature.
pub fn compact(signing_input: &str, signature: &[u8]) -> String {
    format!("{signing_input}.{}", base64url(signature))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_part(part: &str) -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    #[test]
    fn the_assertion_says_who_for_whom_and_until_when() {
        let assertion = Assertion {
            algorithm: Algorithm::Es256,
            key_id: Some("key-1"),
            x5t_s256: Some("abc"),
            client_id: "my-app",
            audience: "https://login.example.com/oauth2/token",
            jti: "4b1d…",
            now_ms: 1_700_000_000_500.0,
        };
        let input = assertion.signing_input();
        let (header, claims) = input.split_once('.').unwrap();
        assert_eq!(
            decode_part(header),
            serde_json::json!({ "alg": "ES256", "typ": "JWT", "kid": "key-1", "x5t#S256": "abc" })
        );
        assert_eq!(
            decode_part(claims),
            serde_json::json!({
                "iss": "my-app", "sub": "my-app", "aud": "https://login.example.com/oauth2/token",
                "jti": "4b1d…", "iat": 1_700_000_000u64, "nbf": 1_700_000_000u64,
                "exp": 1_700_000_060u64,
            })
        );
        assert_eq!(compact(&input, &[0xfb, 0xff]), format!("{input}.-_8"));
    }

    #[test]
    fn the_algorithm_follows_the_key_unless_one_that_fits_is_asked_for() {
        use Algorithm::*;
        assert_eq!(candidates(KeyKind::Rsa, None, None).unwrap(), [Rs256]);
        assert_eq!(
            candidates(KeyKind::Rsa, None, Some(Ps256)).unwrap(),
            [Ps256]
        );
        assert_eq!(
            candidates(KeyKind::Rsa, Some(Ps256), Some(Rs256)).unwrap(),
            [Ps256]
        );
        assert_eq!(candidates(KeyKind::EcP256, None, None).unwrap(), [Es256]);
        assert_eq!(candidates(KeyKind::Ed25519, None, None).unwrap(), [EdDsa]);
        assert_eq!(
            candidates(KeyKind::Unknown, None, None).unwrap(),
            [Rs256, Es256, EdDsa]
        );
        let e = candidates(KeyKind::EcP256, Some(Rs256), None).unwrap_err();
        assert_eq!(
            e.description.as_deref(),
            Some("signingAlgorithm RS256 does not fit the privateKey")
        );
        assert_eq!(Algorithm::from_name("HS256"), None);
        assert_eq!(Algorithm::from_name("EdDSA"), Some(EdDsa));
    }

    #[test]
    fn pem_blocks_are_read_and_odd_keys_get_advice() {
        let pem_text = "-----BEGIN PRIVATE KEY-----\nAAEC\nAw==\n-----END PRIVATE KEY-----\n";
        assert_eq!(pem(pem_text, "PRIVATE KEY"), Some(vec![0, 1, 2, 3]));
        assert_eq!(pem(pem_text, "CERTIFICATE"), None);
        assert_eq!(
            pem(
                "-----BEGIN PRIVATE KEY-----\n!!\n-----END PRIVATE KEY-----",
                "PRIVATE KEY"
            ),
            None
        );
        assert!(pem_key_fault("-----BEGIN RSA PRIVATE KEY-----").contains("pkcs8 -topk8"));
        assert!(pem_key_fault("-----BEGIN ENCRYPTED PRIVATE KEY-----").contains("encrypted"));
        assert!(pem_key_fault("hunter2").contains("CryptoKey, a private JWK"));
    }

    #[test]
    fn a_thumbprint_is_the_base64url_of_32_bytes() {
        assert!(is_thumbprint(&base64url(&[7; 32])));
        assert!(!is_thumbprint(&base64url(&[7; 20])));
        assert!(!is_thumbprint("not/base64url+"));
    }
}
