//! Signing client assertions with the host's WebCrypto (RFC 7523; the rules
//! in src/assertion.rs). The key is imported once, non-extractable, at the
//! first token request; every attempt signs a new assertion with a fresh
//! `jti`, so that a retry is never taken for a replay.

use crate::assertion::{self, candidates, pem, pem_key_fault, Algorithm, Assertion, KeyKind};
use crate::config::{ClientAuth, Config, JwtAuth};
use crate::error::TokenError;
use crate::options::Host;
use js_sys::{Array, ArrayBuffer, Object, Uint8Array};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{CryptoKey, SubtleCrypto};

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(thread_local_v2, js_namespace = crypto, js_name = subtle)]
    static SUBTLE: SubtleCrypto;
    #[wasm_bindgen(js_namespace = crypto, js_name = randomUUID)]
    fn random_uuid() -> String;
}

/// Where the signing key comes from, until it is imported.
enum Source {
    /// A PKCS#8 key, as DER.
    Pkcs8(Vec<u8>),
    /// A private JWK: the JavaScript object, as WebCrypto imports it.
    Jwk(JsValue),
    /// A key the caller imported.
    Key(CryptoKey),
    /// The client secret (`client_secret_jwt`).
    Secret(Vec<u8>),
}

/// The imported key, ready to sign.
struct Ready {
    key: CryptoKey,
    algorithm: Algorithm,
    /// WebCrypto's signing parameters for `algorithm`.
    sign: Object,
    x5t_s256: Option<String>,
}

impl Ready {
    fn new(key: CryptoKey, algorithm: Algorithm, x5t_s256: Option<String>) -> Self {
        Self {
            key,
            algorithm,
            sign: params(algorithm).sign,
            x5t_s256,
        }
    }
}

/// One client's assertion signer.
pub struct Signer {
    jwt: JwtAuth,
    key_id: Option<String>,
    algorithms: Vec<Algorithm>,
    source: RefCell<Option<Source>>,
    ready: RefCell<Option<Result<std::rc::Rc<Ready>, TokenError>>>,
}

/// What a `privateKey` JWK says about itself (its private members are not read here).
#[derive(Deserialize)]
struct Jwk {
    kty: String,
    crv: Option<String>,
    alg: Option<String>,
    kid: Option<String>,
    d: Option<Host>,
}

impl Signer {
    /// The signer of a JWT method, or `None` for the others. `private_key`
    /// is the `privateKey` option as given; its shape is checked here, at
    /// creation. Whether WebCrypto takes it shows at the first token request.
    pub fn new(config: &Config, private_key: &JsValue) -> Result<Option<Self>, TokenError> {
        let ClientAuth::Jwt { jwt, secret } = &config.auth else {
            return Ok(None);
        };
        let jwt = JwtAuth::clone(jwt);
        let mut key_id = jwt.key_id.clone();
        let (source, algorithms) = match secret {
            Some(secret) => (
                Source::Secret(secret.secret().as_bytes().to_vec()),
                vec![Algorithm::Hs256],
            ),
            None => {
                let (source, kind, preferred) = read_key(private_key, &mut key_id)?;
                // A CryptoKey signs with the one algorithm it was made for.
                if let (Source::Key(_), Some(own), Some(asked)) =
                    (&source, preferred, jwt.algorithm)
                {
                    if own != asked {
                        return Err(TokenError::config(format!(
                            "signingAlgorithm {} does not fit the privateKey, a CryptoKey for {}",
                            asked.name(),
                            own.name()
                        )));
                    }
                }
                (source, candidates(kind, jwt.algorithm, preferred)?)
            }
        };
        Ok(Some(Self {
            jwt,
            key_id,
            algorithms,
            source: RefCell::new(Some(source)),
            ready: RefCell::new(None),
        }))
    }

    /// A signed assertion for one attempt at `now_ms`, from `client_id` to
    /// `audience` (the driver's choice: `assertionAudience`, else the endpoint).
    pub async fn assertion(
        &self,
        client_id: &str,
        audience: &str,
        now_ms: f64,
    ) -> Result<String, TokenError> {
        let ready = self.ready().await?;
        let jti = random_uuid();
        let input = Assertion {
            algorithm: ready.algorithm,
            key_id: self.key_id.as_deref(),
            x5t_s256: ready.x5t_s256.as_deref(),
            client_id,
            audience,
            jti: &jti,
            now_ms,
        }
        .signing_input();
        let signing = SUBTLE.with(|subtle| {
            subtle.sign_with_object_and_u8_array(&ready.sign, &ready.key, input.as_bytes())
        });
        let signature = match signing {
            Ok(promise) => JsFuture::from(promise).await,
            Err(error) => Err(error),
        }
        .map_err(|error| webcrypto_error("could not sign the client assertion", &error))?;
        let signature = Uint8Array::new(signature.unchecked_ref::<ArrayBuffer>()).to_vec();
        Ok(assertion::compact(&input, &signature))
    }

    /// Imports the key now rather than at the first token request, so that a
    /// key WebCrypto refuses fails where the client is set up (a scheduled
    /// job's start-up); the result is kept for the requests.
    pub async fn prepare(&self) -> Result<(), TokenError> {
        self.ready().await.map(|_| ())
    }

    /// The imported key: imported on first use, then kept (a failure too).
    async fn ready(&self) -> Result<std::rc::Rc<Ready>, TokenError> {
        if let Some(done) = self.ready.borrow().as_ref() {
            return done.clone();
        }
        let source = self.source.borrow_mut().take();
        let imported = match source {
            Some(source) => self.import(source).await.map(std::rc::Rc::new),
            None => Err(TokenError::config("the signing key is being imported")),
        };
        *self.ready.borrow_mut() = Some(imported.clone());
        imported
    }

    async fn import(&self, source: Source) -> Result<Ready, TokenError> {
        let x5t_s256 = match (&self.jwt.x5t_s256, &self.jwt.certificate) {
            (Some(given), _) => Some(given.clone()),
            (None, Some(der)) => Some(thumbprint(der).await?),
            (None, None) => None,
        };
        let (format, data): (&str, Object) = match source {
            Source::Key(key) => return Ok(Ready::new(key, self.algorithms[0], x5t_s256)),
            Source::Pkcs8(der) => ("pkcs8", Uint8Array::from(&der[..]).into()),
            Source::Jwk(jwk) => ("jwk", jwk.unchecked_into()),
            Source::Secret(bytes) => ("raw", Uint8Array::from(&bytes[..]).into()),
        };
        let mut refused = JsValue::UNDEFINED;
        for &algorithm in &self.algorithms {
            match import_key(format, &data, algorithm).await {
                Ok(key) => return Ok(Ready::new(key, algorithm, x5t_s256)),
                Err(error) => refused = error,
            }
        }
        let names: Vec<&str> = self.algorithms.iter().map(|a| a.name()).collect();
        Err(webcrypto_error(
            &format!(
                "privateKey could not be imported for {}",
                names.join(" or ")
            ),
            &refused,
        ))
    }
}

/// Classifies `privateKey`: a PKCS#8 PEM string, a private JWK, or a
/// `CryptoKey` that can sign. A JWK's `kid` becomes the key id when none is given.
fn read_key(
    value: &JsValue,
    key_id: &mut Option<String>,
) -> Result<(Source, KeyKind, Option<Algorithm>), TokenError> {
    if let Some(text) = value.as_string() {
        let der =
            pem(&text, "PRIVATE KEY").ok_or_else(|| TokenError::config(pem_key_fault(&text)))?;
        return Ok((Source::Pkcs8(der), KeyKind::Unknown, None));
    }
    if let Some(key) = value.dyn_ref::<CryptoKey>() {
        let can_sign = key
            .usages()
            .iter()
            .any(|u| u.as_string().as_deref() == Some("sign"));
        if key.type_() != "private" || !can_sign {
            return Err(TokenError::config(
                "privateKey must be a private CryptoKey that can sign",
            ));
        }
        let algorithm = key.algorithm().unwrap_or_else(|_| Object::new());
        let name = js_sys::Reflect::get(&algorithm, &"name".into())
            .ok()
            .and_then(|n| n.as_string())
            .unwrap_or_default();
        let kind = KeyKind::of_webcrypto(&name).ok_or_else(|| {
            TokenError::config("privateKey must be an RSA, ECDSA P-256 or Ed25519 CryptoKey")
        })?;
        // An RSA CryptoKey is bound to one of the two schemes.
        let own = match name.as_str() {
            "RSA-PSS" => Some(Algorithm::Ps256),
            "RSASSA-PKCS1-v1_5" => Some(Algorithm::Rs256),
            _ => None,
        };
        return Ok((Source::Key(key.clone()), kind, own));
    }
    let jwk: Jwk = serde_wasm_bindgen::from_value(value.clone()).map_err(|_| {
        TokenError::config("privateKey must be a CryptoKey, a private JWK or a PKCS#8 PEM string")
    })?;
    let kind = KeyKind::of_jwk(&jwk.kty, jwk.crv.as_deref()).ok_or_else(|| {
        TokenError::config("privateKey must be an RSA, EC P-256 or Ed25519 (OKP) JWK")
    })?;
    if jwk.d.is_none() {
        return Err(TokenError::config(
            "privateKey is a public JWK: pass the private one (with \"d\")",
        ));
    }
    if key_id.is_none() {
        *key_id = jwk.kid;
    }
    let own = jwk.alg.as_deref().and_then(Algorithm::from_name);
    Ok((Source::Jwk(value.clone()), kind, own))
}

/// WebCrypto's parameters for an algorithm: to import a key, and to sign.
struct Params {
    import: Object,
    sign: Object,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Named {
    name: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    hash: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    named_curve: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    salt_length: Option<u32>,
}

fn params(algorithm: Algorithm) -> Params {
    let named = |name, hash, named_curve, salt_length| -> Object {
        serde_wasm_bindgen::to_value(&Named {
            name,
            hash,
            named_curve,
            salt_length,
        })
        .map(JsCast::unchecked_into)
        .unwrap_or_else(|_| Object::new())
    };
    let sha256 = Some("SHA-256");
    match algorithm {
        Algorithm::Rs256 => Params {
            import: named("RSASSA-PKCS1-v1_5", sha256, None, None),
            sign: named("RSASSA-PKCS1-v1_5", None, None, None),
        },
        Algorithm::Ps256 => Params {
            import: named("RSA-PSS", sha256, None, None),
            sign: named("RSA-PSS", None, None, Some(32)),
        },
        Algorithm::Es256 => Params {
            import: named("ECDSA", None, Some("P-256"), None),
            sign: named("ECDSA", sha256, None, None),
        },
        Algorithm::EdDsa => Params {
            import: named("Ed25519", None, None, None),
            sign: named("Ed25519", None, None, None),
        },
        Algorithm::Hs256 => Params {
            import: named("HMAC", sha256, None, None),
            sign: named("HMAC", None, None, None),
        },
    }
}

/// Imports a signing key, non-extractable.
async fn import_key(
    format: &str,
    data: &Object,
    algorithm: Algorithm,
) -> Result<CryptoKey, JsValue> {
    let usages = Array::of1(&"sign".into());
    let promise = SUBTLE.with(|subtle| {
        subtle.import_key_with_object(format, data, &params(algorithm).import, false, &usages)
    })?;
    Ok(JsFuture::from(promise).await?.unchecked_into())
}

/// The `x5t#S256` of a certificate: base64url of the SHA-256 of its DER.
async fn thumbprint(der: &[u8]) -> Result<String, TokenError> {
    let digest = match SUBTLE.with(|subtle| subtle.digest_with_str_and_u8_array("SHA-256", der)) {
        Ok(promise) => JsFuture::from(promise).await,
        Err(error) => Err(error),
    }
    .map_err(|error| webcrypto_error("could not hash the certificate", &error))?;
    Ok(assertion::base64url(
        &Uint8Array::new(digest.unchecked_ref::<ArrayBuffer>()).to_vec(),
    ))
}

/// A `config` error saying what failed, with WebCrypto's error name (never
/// its message, which could quote key material).
fn webcrypto_error(what: &str, error: &JsValue) -> TokenError {
    let name = error
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.name()))
        .unwrap_or_else(|| "Error".into());
    TokenError::config(format!("{what} (WebCrypto: {name})"))
}
