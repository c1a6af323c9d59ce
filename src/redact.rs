//! Keeping credentials out of error text a server sends back.
//!
//! A token endpoint may echo what it received: the secret in its error
//! text, the form body, its `Authorization` header. [`Redactor`] replaces
//! every encoding of the secret we send, and of the access token we hold,
//! with `[redacted]`, matched without regard to ASCII letter case: a server
//! may upper- or lower-case what it echoes, hex escapes and all.
//! Credentials of 8 bytes or more are replaced wherever they occur; shorter
//! ones only where they stand as a whole word, so that a short or common
//! secret does not mangle ordinary words around it.

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// What replaces a credential.
pub const REDACTED: &str = "[redacted]";

/// Credentials shorter than this are only matched as whole words.
const SHORT: usize = 8;

/// Characters JavaScript's `encodeURIComponent` escapes.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// The strings to remove from server text, longest first.
#[derive(Default)]
pub struct Redactor {
    needles: Vec<Needle>,
}

struct Needle {
    text: String,
    whole_word: bool,
}

impl Redactor {
    /// A redactor for a client's secret: raw, form- and percent-encoded,
    /// and inside the base64 of the Basic `id:secret`
    /// pair (RFC 6749 §2.3.1), encoded or not. A client without a secret
    /// (`private_key_jwt`) starts empty.
    pub fn new(client_id: &str, secret: Option<&str>) -> Self {
        let mut redactor = Self::default();
        let Some(secret) = secret else {
            return redactor;
        };
        redactor.add(secret);
        let form = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        for pair in [
            format!("{}:{}", form(client_id), form(secret)),
            format!("{client_id}:{secret}"),
        ] {
            redactor.push(STANDARD_NO_PAD.encode(pair), false);
        }
        redactor
    }

    /// Also removes `credential` (an access token) in every encoding.
    pub fn add(&mut self, credential: &str) {
        let whole_word = credential.len() < SHORT;
        let form = form_urlencoded::byte_serialize(credential.as_bytes()).collect::<String>();
        let component = utf8_percent_encode(credential, COMPONENT).to_string();
        let escaped = utf8_percent_encode(credential, NON_ALPHANUMERIC).to_string();
        for text in [credential.to_owned(), form, component, escaped] {
            self.push(text, whole_word);
        }
    }

    fn push(&mut self, text: String, whole_word: bool) {
        let text = text.to_ascii_lowercase();
        if text.is_empty() || self.needles.iter().any(|n| n.text == text) {
            return;
        }
        // Longest first, so that an encoding is never half-replaced by a shorter one.
        let at = self
            .needles
            .iter()
            .position(|n| n.text.len() < text.len())
            .unwrap_or(self.needles.len());
        self.needles.insert(at, Needle { text, whole_word });
    }

    /// `text` with every known credential replaced by `[redacted]`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for needle in &self.needles {
            out = needle.replace_in(&out);
        }
        out
    }
}

impl Needle {
    fn replace_in(&self, text: &str) -> String {
        // Found in a lower-cased copy, replaced in the original: folding
        // ASCII letters keeps every byte where it is.
        let folded = text.to_ascii_lowercase();
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for (at, found) in folded.match_indices(self.text.as_str()) {
            let end = at + found.len();
            if at < last || (self.whole_word && !is_word_boundary(text, at, end)) {
                continue;
            }
            out += &text[last..at];
            out += REDACTED;
            last = end;
        }
        out += &text[last..];
        out
    }
}

/// Whether `text[start..end]` stands alone: no ASCII letter or digit touches it.
fn is_word_boundary(text: &str, start: usize, end: usize) -> bool {
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    !word(before) && !word(after)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "s p:a@c/e+é~canary-secret";

    fn basic(id: &str, secret: &str) -> String {
        let form = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", form(id), form(secret)))
    }

    #[test]
    fn every_encoding_of_the_secret_is_removed() {
        let r = Redactor::new("my id", Some(SECRET));
        let form = form_urlencoded::byte_serialize(SECRET.as_bytes()).collect::<String>();
        let echoes = [
            SECRET.to_owned(),
            form.clone(),
            form.to_lowercase(),
            utf8_percent_encode(SECRET, COMPONENT).to_string(),
            utf8_percent_encode(SECRET, NON_ALPHANUMERIC).to_string(),
            utf8_percent_encode(SECRET, NON_ALPHANUMERIC)
                .to_string()
                .to_lowercase(),
            format!("Authorization: Basic {}", basic("my id", SECRET)),
            format!("client_secret={form}&grant_type=client_credentials"),
        ];
        for echo in echoes {
            let text = format!("you sent <{echo}>!");
            let clean = r.redact(&text);
            assert!(clean.contains(REDACTED), "{echo} -> {clean}");
            assert!(!clean.contains("canary"), "{echo} -> {clean}");
            assert!(!clean.contains(&basic("my id", SECRET)[..20]), "{clean}");
        }
    }

    #[test]
    fn every_encoding_is_matched_in_any_letter_case() {
        let secret = "hard-Secret+/Canary-secret";
        let r = Redactor::new("Id", Some(secret));
        let percent = utf8_percent_encode(secret, NON_ALPHANUMERIC).to_string();
        let form = form_urlencoded::byte_serialize(secret.as_bytes()).collect::<String>();
        for echo in [secret.to_owned(), percent, form, basic("Id", secret)] {
            for cased in [echo.to_lowercase(), echo.to_uppercase()] {
                let clean = r.redact(&format!("got {cased}."));
                assert_eq!(clean, "got [redacted].", "{cased}");
            }
        }
    }

    #[test]
    fn an_access_token_is_removed_like_the_secret() {
        let mut r = Redactor::new("id", Some("secret-long-enough"));
        r.add("canary-token-4f/2+x==");
        let clean = r.redact("token canary-token-4f%2F2%2bx%3D%3D is revoked");
        assert_eq!(clean, "token [redacted] is revoked");
    }

    #[test]
    fn short_secrets_are_only_removed_as_whole_words() {
        let r = Redactor::new("app", Some("abc"));
        assert_eq!(
            r.redact("abc is wrong; abcd and xabc stay"),
            "[redacted] is wrong; abcd and xabc stay"
        );
        // A long secret goes wherever it is.
        let r = Redactor::new("app", Some("abcdefgh"));
        assert_eq!(r.redact("xabcdefghx"), "x[redacted]x");
    }

    #[test]
    fn text_without_credentials_is_unchanged() {
        let r = Redactor::new("app", Some("very-secret-value"));
        let text = "invalid_client: the client could not be authenticated";
        assert_eq!(r.redact(text), text);
    }
}
