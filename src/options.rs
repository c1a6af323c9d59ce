//! Options as they arrive from JavaScript, before any rule is applied.
//!
//! Each value is read through a shape ([`Text`], [`Texts`], [`Number`]) whose
//! error says what the option must be and never echoes the value given,
//! which may be a secret put in the wrong place. [`read`] names the option
//! in every error (`retry.maxAttempts must be a number`), and
//! [`check_names`] refuses unknown option names with the closest known one.
//! The rules about values (https only, ranges) are in [`crate::config`].

use crate::error::TokenError;
use crate::text::closest;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, SeqAccess, Visitor};
use std::collections::BTreeMap;
use std::fmt;

/// The options of `createTokenClient`, as given. Its field names (camelCase)
/// are the option names: [`option_names`] reads them from here.
#[derive(Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Options {
    /// Token endpoint.
    pub token_url: Option<Text>,
    /// Issuer whose metadata names the token endpoint (instead of `tokenUrl`).
    pub issuer: Option<Text>,
    /// Client identifier.
    pub client_id: Option<Text>,
    /// Client secret.
    pub client_secret: Option<Text>,
    /// `clientSecret` was a function, asked for every token request (the
    /// binding sees it and leaves `client_secret` out: serde cannot read one).
    #[serde(skip)]
    pub secret_asked: bool,
    /// A function giving another identity provider's JWT, sent as the
    /// client assertion of every token request (RFC 7523 §2.2; the wrapper calls it).
    pub client_assertion: Option<Host>,
    /// `"client_secret_basic"`, `"client_secret_post"`, `"private_key_jwt"`,
    /// `"client_secret_jwt"`, `"tls_client_auth"` or `"self_signed_tls_client_auth"`.
    pub auth_method: Option<Text>,
    /// The private key of `private_key_jwt`: a `CryptoKey`, a private JWK or
    /// a PKCS#8 PEM string (the wasm binding reads it).
    pub private_key: Option<Host>,
    /// The assertion's `kid`.
    pub key_id: Option<Text>,
    /// `"RS256"`, `"PS256"`, `"ES256"` or `"EdDSA"`.
    pub signing_algorithm: Option<Text>,
    /// The assertion's `aud`.
    pub assertion_audience: Option<Text>,
    /// The certificate's SHA-256 thumbprint, for the assertion's `x5t#S256`.
    pub x5t_s256: Option<Text>,
    /// The certificate (PEM) whose thumbprint goes in the assertion's `x5t#S256`.
    pub certificate: Option<Text>,
    /// Mutual TLS for the token request (the wrapper's).
    pub client_certificate: Option<Host>,
    /// Scope: a string, or a list joined by spaces.
    pub scope: Option<Texts>,
    /// `audience` parameter.
    pub audience: Option<Text>,
    /// `resource` parameters (RFC 8707): one or a list.
    pub resource: Option<Texts>,
    /// Further form parameters.
    pub extra_params: Option<BTreeMap<String, Text>>,
    /// Per-request timeout, ms.
    pub timeout_ms: Option<Number>,
    /// Retry settings.
    pub retry: Option<RetryOptions>,
    /// Fixed refresh window, seconds.
    pub refresh_ahead_seconds: Option<Number>,
    /// How many tokens the client keeps at once (docs/DESIGN.md, "Token pools").
    pub pool_size: Option<Number>,
    /// Base of relative URLs given to `client.fetch` (used by the wrapper).
    pub base_url: Option<Text>,
    /// Further origins `client.fetch` may send the token to (used by the wrapper).
    pub allowed_origins: Option<Texts>,
    /// A `Deno.Kv` (the wrapper's).
    pub kv: Option<Host>,
    /// KV key prefix (the wrapper's).
    pub kv_prefix: Option<Host>,
    /// KV encryption key (the wrapper's).
    pub encryption_key: Option<Host>,
    /// The fetch to use (the wrapper passes it to each acquisition).
    pub fetch: Option<Host>,
    /// The wall clock (the wrapper's).
    pub now: Option<Host>,
    /// The event hook (the wrapper's).
    pub on_event: Option<Host>,
}

/// `retry: { ... }`.
#[derive(Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryOptions {
    /// Attempts per acquisition, the first included.
    pub max_attempts: Option<Number>,
    /// First backoff step, ms.
    pub base_delay_ms: Option<Number>,
    /// Largest backoff step, ms.
    pub max_delay_ms: Option<Number>,
    /// Bound on one acquisition, ms.
    pub deadline_ms: Option<Number>,
}

/// The names serde reads for `T`: a struct's field names, as renamed.
/// serde hands them to `deserialize_struct`; this deserializer only
/// records them, so the list of options is the struct itself.
pub fn option_names<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct Names(&'static [&'static str]);
    #[derive(Debug)]
    struct Recorded;
    impl std::fmt::Display for Recorded {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("field names recorded")
        }
    }
    impl std::error::Error for Recorded {}
    impl serde::de::Error for Recorded {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Recorded
        }
    }
    impl<'de> Deserializer<'de> for &mut Names {
        type Error = Recorded;
        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Recorded> {
            self.0 = fields;
            Err(Recorded)
        }
        fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Recorded> {
            Err(Recorded)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
    let mut names = Names(&[]);
    let _ = T::deserialize(&mut names);
    names.0
}

/// Refuses the first name not in `known`, naming it (with `prefix`, e.g.
/// `"retry."`) and the closest known name. Names are not secret; values
/// are never shown.
pub fn check_names<'a>(
    names: impl IntoIterator<Item = &'a str>,
    known: &[&str],
    prefix: &str,
) -> Result<(), TokenError> {
    match names.into_iter().find(|name| !known.contains(name)) {
        None => Ok(()),
        Some(name) => Err(TokenError::config(format!(
            "unknown option {prefix}{name} (did you mean {prefix}{}?)",
            closest(name, known)
        ))),
    }
}

/// Reads options with `deserializer`, naming the option in any type error.
pub fn read<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Options, TokenError> {
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let path = if path == "." { "options" } else { &path };
        let message = error.inner().to_string();
        // Every value goes through a shape, whose errors say what it must
        // be; anything else is an object (options, retry, extraParams) given
        // a non-object, and serde's text for it could quote the value.
        let must_be = SHAPES
            .iter()
            .find(|shape| message.contains(*shape))
            .unwrap_or(&"must be an object");
        TokenError::config(format!("{path} {must_be}"))
    })
}

const STRING: &str = "must be a string";
const STRINGS: &str = "must be a string or an array of strings";
const NUMBER: &str = "must be a number";
/// What a shape's error says (a deserializer may wrap it: `Error: must be a
/// number`); the longest first, as one may contain another.
const SHAPES: [&str; 3] = [STRINGS, STRING, NUMBER];

/// A string option.
pub struct Text(pub String);

/// A string option that may also be a list of strings.
pub struct Texts(pub Vec<String>);

/// A number option (`NaN` and infinities included: the rules refuse them by name).
pub struct Number(pub f64);

/// An option the wrapper reads; any value.
#[derive(Default)]
pub struct Host;

fn shape_error<E: serde::de::Error>(must_be: &str) -> E {
    E::custom(must_be)
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Accept;
        impl Visitor<'_> for Accept {
            type Value = String;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(STRING)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
                Ok(v.to_owned())
            }
        }
        // serde's own message could quote the value: only ours leaves.
        deserializer
            .deserialize_any(Accept)
            .map(Text)
            .map_err(|_| shape_error(STRING))
    }
}

impl<'de> Deserialize<'de> for Texts {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Accept;
        impl<'de> Visitor<'de> for Accept {
            type Value = Vec<String>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(STRINGS)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<String>, E> {
                Ok(vec![v.to_owned()])
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Vec<String>, A::Error> {
                let mut all = Vec::new();
                while let Some(Text(item)) = items.next_element()? {
                    all.push(item);
                }
                Ok(all)
            }
        }
        // An item's own error ("scope[1] must be a string") stays.
        deserializer
            .deserialize_any(Accept)
            .map(Texts)
            .map_err(|e| {
                let item = e.to_string().contains(STRING);
                if item {
                    e
                } else {
                    shape_error(STRINGS)
                }
            })
    }
}

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Accept;
        impl Visitor<'_> for Accept {
            type Value = f64;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(NUMBER)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
                Ok(v)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
                Ok(v as f64)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
                Ok(v as f64)
            }
        }
        deserializer
            .deserialize_any(Accept)
            .map(Number)
            .map_err(|_| shape_error(NUMBER))
    }
}

impl<'de> Deserialize<'de> for Host {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(deserializer).map(|_| Host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(json: &str) -> String {
        let mut deserializer = serde_json::Deserializer::from_str(json);
        match read(&mut deserializer) {
            Ok(_) => panic!("{json} was accepted"),
            Err(e) => e.description.unwrap(),
        }
    }

    #[test]
    fn type_errors_name_the_option_and_never_the_value() {
        let cases = [
            (
                r#"{"retry":{"maxAttempts":"canary"}}"#,
                "retry.maxAttempts must be a number",
            ),
            (r#"{"clientId":42}"#, "clientId must be a string"),
            (
                r#"{"clientSecret":["canary"]}"#,
                "clientSecret must be a string",
            ),
            (r#"{"scope":["a",7]}"#, "scope[1] must be a string"),
            (
                r#"{"scope":7}"#,
                "scope must be a string or an array of strings",
            ),
            (
                r#"{"extraParams":{"a":1}}"#,
                "extraParams.a must be a string",
            ),
            (
                r#"{"extraParams":"canary"}"#,
                "extraParams must be an object",
            ),
            (r#"{"retry":"canary"}"#, "retry must be an object"),
            (r#""canary""#, "options must be an object"),
        ];
        for (json, expected) in cases {
            let message = error(json);
            assert_eq!(message, expected, "{json}");
            assert!(!message.contains("canary"));
        }
    }

    #[test]
    fn option_names_are_the_struct_fields_as_javascript_spells_them() {
        let names = option_names::<Options>();
        assert_eq!(names.len(), 29);
        for name in [
            "tokenUrl",
            "clientSecret",
            "clientAssertion",
            "poolSize",
            "extraParams",
            "retry",
            "kv",
            "onEvent",
        ] {
            assert!(names.contains(&name), "{name}");
        }
        assert_eq!(
            option_names::<RetryOptions>(),
            ["maxAttempts", "baseDelayMs", "maxDelayMs", "deadlineMs"]
        );
    }

    #[test]
    fn unknown_names_are_refused_with_the_closest_known_one() {
        let names = option_names::<Options>();
        let e = check_names(["tokenUrl", "encryption_key"], names, "").unwrap_err();
        assert_eq!(
            e.description.as_deref(),
            Some("unknown option encryption_key (did you mean encryptionKey?)")
        );
        let e = check_names(["maxAttemps"], option_names::<RetryOptions>(), "retry.").unwrap_err();
        assert_eq!(
            e.description.as_deref(),
            Some("unknown option retry.maxAttemps (did you mean retry.maxAttempts?)")
        );
    }
}
