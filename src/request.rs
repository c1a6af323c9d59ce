//! The token request as data ([RFC 6749 §4.4.2]): no I/O here.
//!
//! [RFC 6749 §4.4.2]: https://www.rfc-editor.org/rfc/rfc6749#section-4.4.2

use crate::assertion::ASSERTION_TYPE;
use crate::config::{ClientAuth, Config};
use crate::transport::Exchange;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use std::fmt;

/// A ready-to-send HTTP request. `Debug` hides the headers and body, which
/// carry the client secret.
pub struct HttpRequest {
    /// Where to send it.
    pub url: String,
    /// Header names and values, in order.
    pub headers: Vec<(&'static str, String)>,
    /// `application/x-www-form-urlencoded` body of a `POST`; `None` for a `GET`.
    pub body: Option<String>,
    /// Which exchange it is, for the words of its errors.
    pub exchange: Exchange,
}

impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpRequest")
            .field("url", &self.url)
            .field("headers", &"[redacted]")
            .field("body", &"[redacted]")
            .finish()
    }
}

/// Builds the client-credentials request for `config` to `token_url` (the
/// configured one, or the issuer's) with this attempt's `credential`: the
/// assertion the JWT methods signed, the one `clientAssertion` gave, or the
/// secret a `clientSecret` function gave (else the configured secret).
pub fn token_request(config: &Config, token_url: &str, credential: Option<&str>) -> HttpRequest {
    let identity = &config.identity;
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "client_credentials");
    let mut authorization = None;
    match (&config.auth, credential) {
        (ClientAuth::Basic(secret), read) => {
            let secret = read.unwrap_or(secret.secret());
            authorization = Some(basic_auth(&identity.client_id, secret));
        }
        (ClientAuth::Post(secret), read) => {
            form.append_pair("client_id", &identity.client_id);
            form.append_pair("client_secret", read.unwrap_or(secret.secret()));
        }
        (ClientAuth::Jwt { .. } | ClientAuth::Assertion, Some(assertion)) => {
            form.append_pair("client_assertion_type", ASSERTION_TYPE);
            form.append_pair("client_assertion", assertion);
            form.append_pair("client_id", &identity.client_id);
        }
        (ClientAuth::Jwt { .. } | ClientAuth::Assertion, None) => {}
        (ClientAuth::Tls { .. }, _) => {
            form.append_pair("client_id", &identity.client_id);
        }
    }
    if let Some(scope) = &identity.scope {
        form.append_pair("scope", scope);
    }
    if let Some(audience) = &identity.audience {
        form.append_pair("audience", audience);
    }
    for resource in &identity.resource {
        form.append_pair("resource", resource);
    }
    form.extend_pairs(&config.extra_params);
    let mut headers = vec![
        (
            "Content-Type",
            "application/x-www-form-urlencoded".to_owned(),
        ),
        ("Accept", "application/json".to_owned()),
    ];
    if let Some(authorization) = authorization {
        headers.push(("Authorization", authorization));
    }
    HttpRequest {
        url: token_url.to_owned(),
        headers,
        body: Some(form.finish()),
        exchange: Exchange::Token,
    }
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))`, RFC 6749 §2.3.1.
pub fn basic_auth(client_id: &str, secret: &str) -> String {
    let pair = format!("{}:{}", form_encode(client_id), form_encode(secret));
    format!("Basic {}", STANDARD.encode(pair))
}

/// `application/x-www-form-urlencoded` encoding of one name or value
/// (RFC 6749 Appendix B): `*-._` and ASCII alphanumerics stay, space
/// becomes `+`, every other byte of the UTF-8 form becomes `%XX`.
pub fn form_encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::config;
    use serde_json::json;

    const URL: &str = "https://login.example.com/oauth/token";

    fn request(extra: serde_json::Value) -> HttpRequest {
        let mut options = json!({ "clientId": "my id", "clientSecret": "p@ss:w+rd/é" });
        options
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        token_request(&config(options).unwrap(), URL, None)
    }

    #[test]
    fn form_encoding_follows_rfc_6749_appendix_b() {
        assert_eq!(form_encode("a Z-._*~"), "a+Z-._*%7E");
        assert_eq!(form_encode("p@ss:w+rd/é"), "p%40ss%3Aw%2Brd%2F%C3%A9");
        assert_eq!(form_encode("%&="), "%25%26%3D");
    }

    #[test]
    fn basic_auth_form_encodes_id_and_secret_before_base64() {
        // RFC 6749 §2.3.1: the id and the secret are form-encoded, then joined by ':'.
        assert_eq!(
            basic_auth("my id", "p@ss:w+rd/é"),
            format!(
                "Basic {}",
                STANDARD.encode("my+id:p%40ss%3Aw%2Brd%2F%C3%A9")
            )
        );
        assert_eq!(basic_auth("a", "b"), "Basic YTpi");
    }

    #[test]
    fn client_secret_basic_puts_credentials_in_the_header_only() {
        let request = request(json!({}));
        assert_eq!(
            request.body.as_deref(),
            Some("grant_type=client_credentials")
        );
        let names: Vec<&str> = request.headers.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["Content-Type", "Accept", "Authorization"]);
        assert_eq!(request.headers[2].1, basic_auth("my id", "p@ss:w+rd/é"));
    }

    #[test]
    fn client_secret_post_puts_credentials_in_the_body() {
        let request = request(json!({ "authMethod": "client_secret_post" }));
        assert_eq!(
            request.body.as_deref().unwrap(),
            "grant_type=client_credentials&client_id=my+id&client_secret=p%40ss%3Aw%2Brd%2F%C3%A9"
        );
        assert!(request
            .headers
            .iter()
            .all(|(name, _)| *name != "Authorization"));
    }

    #[test]
    fn scope_audience_resource_and_extra_params_are_added_in_order() {
        let request = request(json!({
            "scope": "read write",
            "audience": "https://api.example.com",
            "resource": ["https://a.example", "https://b.example"],
            "extraParams": { "tenant": "t&1" },
        }));
        assert_eq!(
            request.body.as_deref().unwrap(),
            "grant_type=client_credentials&scope=read+write\
             &audience=https%3A%2F%2Fapi.example.com\
             &resource=https%3A%2F%2Fa.example&resource=https%3A%2F%2Fb.example&tenant=t%261"
        );
    }

    #[test]
    fn jwt_methods_send_the_assertion_and_no_secret() {
        let secret = "a client secret of at least 32 bytes";
        let options = json!({ "authMethod": "client_secret_jwt", "clientSecret": secret });
        let request = request(options.clone());
        assert_eq!(
            request.body.as_deref(),
            Some("grant_type=client_credentials")
        );
        let mut options = options;
        options["clientId"] = json!("my id");
        let config = config(options).unwrap();
        let request = token_request(&config, URL, Some("h.c.s"));
        assert_eq!(
            request.body.as_deref().unwrap(),
            "grant_type=client_credentials\
             &client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer\
             &client_assertion=h.c.s&client_id=my+id"
        );
        assert!(request
            .headers
            .iter()
            .all(|(name, _)| *name != "Authorization"));
    }

    #[test]
    fn tls_client_auth_sends_the_client_id_alone() {
        let mut options = crate::config::tests::options(json!({
            "authMethod": "tls_client_auth", "clientId": "my id" }));
        options.client_secret = None;
        options.client_certificate = Some(crate::options::Host);
        let config = Config::new(options, |u| Some(u.to_owned())).unwrap();
        let request = token_request(&config, URL, None);
        assert_eq!(
            request.body.as_deref().unwrap(),
            "grant_type=client_credentials&client_id=my+id"
        );
        assert!(request
            .headers
            .iter()
            .all(|(name, _)| *name != "Authorization"));
    }

    #[test]
    fn debug_of_request_hides_credentials() {
        let printed = format!(
            "{:?}",
            request(json!({ "authMethod": "client_secret_post" }))
        );
        assert!(
            !printed.contains("p%40ss") && !printed.contains("p@ss"),
            "{printed}"
        );
    }
}
