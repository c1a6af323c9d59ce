//! The token request as data ([RFC 6749 §4.4.2]): no I/O here.
//!
//! [RFC 6749 §4.4.2]: https://www.rfc-editor.org/rfc/rfc6749#section-4.4.2

use crate::config::{AuthMethod, Config};
use alloc::string::String;
use core::fmt;

/// A ready-to-send HTTP request. `Debug` hides the headers and body, which
/// carry the client secret.
pub struct HttpRequest {
    /// Where to `POST`.
    pub url: String,
    /// The `Authorization` header (`client_secret_basic`).
    pub authorization: Option<String>,
    /// `application/x-www-form-urlencoded` body.
    pub body: String,
}

/// The headers every token request carries.
const FIXED_HEADERS: [(&str, &str); 2] = [
    ("Content-Type", "application/x-www-form-urlencoded"),
    ("Accept", "application/json"),
];

impl HttpRequest {
    /// Header names and values, in order.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        let authorization = self.authorization.as_deref().map(|v| ("Authorization", v));
        FIXED_HEADERS.into_iter().chain(authorization)
    }
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

/// Builds the client-credentials request for `config`.
pub fn token_request(config: &Config) -> HttpRequest {
    let mut body = String::from("grant_type=client_credentials");
    let mut param = |name: &str, value: &str| {
        body.push('&');
        form_encode_into(&mut body, name);
        body.push('=');
        form_encode_into(&mut body, value);
    };
    let secret = config.client_secret.secret();
    if config.auth_method == AuthMethod::ClientSecretPost {
        param("client_id", &config.client_id);
        param("client_secret", secret);
    }
    if let Some(scope) = &config.scope {
        param("scope", scope);
    }
    if let Some(audience) = &config.audience {
        param("audience", audience);
    }
    for resource in &config.resource {
        param("resource", resource);
    }
    for (name, value) in &config.extra_params {
        param(name, value);
    }
    let basic = config.auth_method == AuthMethod::ClientSecretBasic;
    HttpRequest {
        url: config.token_url.clone(),
        authorization: basic.then(|| basic_auth(&config.client_id, secret)),
        body,
    }
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))`, RFC 6749 §2.3.1.
pub fn basic_auth(client_id: &str, secret: &str) -> String {
    let mut pair = form_encode(client_id);
    pair.push(':');
    form_encode_into(&mut pair, secret);
    let mut header = String::from("Basic ");
    base64_into(&mut header, pair.as_bytes());
    header
}

/// `application/x-www-form-urlencoded` encoding of one name or value
/// (RFC 6749 Appendix B): `*-._` and ASCII alphanumerics stay, space
/// becomes `+`, every other byte of the UTF-8 form becomes `%XX`.
pub fn form_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    form_encode_into(&mut out, text);
    out
}

fn form_encode_into(out: &mut String, text: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for byte in text.bytes() {
        match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(HEX[usize::from(byte >> 4)] as char);
                out.push(HEX[usize::from(byte & 15)] as char);
            }
        }
    }
}

/// Standard base64 with padding (RFC 4648 §4).
fn base64_into(out: &mut String, input: &[u8]) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in input.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Options;

    fn config(edit: impl FnOnce(&mut Options)) -> Config {
        let mut o = Options {
            token_url: "https://login.example.com/oauth/token".into(),
            client_id: "my id".into(),
            client_secret: "p@ss:w+rd/é".into(),
            ..Options::default()
        };
        edit(&mut o);
        Config::new(o).unwrap()
    }

    fn base64(input: &[u8]) -> String {
        let mut out = String::new();
        base64_into(&mut out, input);
        out
    }

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
        assert_eq!(base64(&[0xff, 0xfe, 0xfd]), "//79");
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
        let header = basic_auth("my id", "p@ss:w+rd/é");
        assert_eq!(
            header,
            format!("Basic {}", base64(b"my+id:p%40ss%3Aw%2Brd%2F%C3%A9"))
        );
    }

    #[test]
    fn client_secret_basic_puts_credentials_in_the_header_only() {
        let request = token_request(&config(|_| {}));
        assert_eq!(request.body, "grant_type=client_credentials");
        let authorization = basic_auth("my id", "p@ss:w+rd/é");
        assert_eq!(
            request.headers().collect::<Vec<_>>(),
            vec![
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Accept", "application/json"),
                ("Authorization", authorization.as_str()),
            ]
        );
    }

    #[test]
    fn client_secret_post_puts_credentials_in_the_body() {
        let request = token_request(&config(|o| {
            o.auth_method = Some("client_secret_post".into());
        }));
        assert_eq!(
            request.body,
            "grant_type=client_credentials&client_id=my+id&client_secret=p%40ss%3Aw%2Brd%2F%C3%A9"
        );
        assert!(request.headers().all(|(name, _)| name != "Authorization"));
    }

    #[test]
    fn scope_audience_resource_and_extra_params_are_added_in_order() {
        let request = token_request(&config(|o| {
            o.scope = Some("read write".into());
            o.audience = Some("https://api.example.com".into());
            o.resource = vec!["https://a.example".into(), "https://b.example".into()];
            o.extra_params = vec![("tenant".into(), "t&1".into())];
        }));
        assert_eq!(
            request.body,
            "grant_type=client_credentials&scope=read+write\
             &audience=https%3A%2F%2Fapi.example.com\
             &resource=https%3A%2F%2Fa.example&resource=https%3A%2F%2Fb.example&tenant=t%261"
        );
    }

    #[test]
    fn debug_of_request_hides_credentials() {
        let request = token_request(&config(|o| {
            o.auth_method = Some("client_secret_post".into());
        }));
        let printed = format!("{request:?}");
        assert!(
            !printed.contains("p%40ss") && !printed.contains("p@ss"),
            "{printed}"
        );
    }
}
