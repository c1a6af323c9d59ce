//! Keeping credentials out of error text a server sends back.
//!
//! A token endpoint may echo what it received: the secret in its error
//! text, the form body, its `Authorization` header. [`Redactor`] replaces
//! every credential we send (the secret, a signed assertion) and the access
//! token we hold with `[redacted]`, however the server encoded what it
//! echoes: the text is also read decoded (percent escapes, whole or partial,
//! `+` for a space, JSON's `\uXXXX` and `\/` escapes), and the base64 of the
//! Basic `id:secret` pair is looked for as it is. Matching ignores ASCII
//! letter case. Credentials of 8 bytes or more are replaced wherever they
//! occur; shorter ones only where they stand as a whole word, so that a
//! short or common secret does not mangle ordinary words around it.

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;

/// What replaces a credential.
pub const REDACTED: &str = "[redacted]";

/// Credentials shorter than this are only matched as whole words.
const SHORT: usize = 8;

/// The credentials to remove from server text.
#[derive(Default)]
pub struct Redactor {
    /// As sent, lower-cased: looked for in the decoded text.
    credentials: Vec<Needle>,
    /// The base64 of the Basic pair, lower-cased: looked for in the text as it is.
    encoded: Vec<Needle>,
}

struct Needle {
    text: Vec<u8>,
    whole_word: bool,
}

impl Redactor {
    /// A redactor for a client's secret, and for the base64 of the Basic
    /// `id:secret` pair it goes in (RFC 6749 §2.3.1), encoded or not. A
    /// client without a secret (`private_key_jwt`) starts empty.
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
            push(&mut redactor.encoded, &STANDARD_NO_PAD.encode(pair), false);
        }
        redactor
    }

    /// Also removes `credential` (an access token, an assertion), however encoded.
    pub fn add(&mut self, credential: &str) {
        push(&mut self.credentials, credential, credential.len() < SHORT);
    }

    /// Whether `text` holds a known credential, in any encoding [`Self::redact`] finds.
    pub fn finds(&self, text: &str) -> bool {
        self.redact(text) != text
    }

    /// `text` with every known credential replaced by `[redacted]`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for needle in &self.encoded {
            out = replace(&out, &[needle], false);
        }
        let credentials: Vec<&Needle> = self.credentials.iter().collect();
        for plus in [false, true] {
            out = replace(&out, &credentials, plus);
        }
        out
    }
}

/// Adds `text` to `needles`, longest first, so that a credential is never
/// half-replaced by a shorter one.
fn push(needles: &mut Vec<Needle>, text: &str, whole_word: bool) {
    let text = text.to_ascii_lowercase().into_bytes();
    if text.is_empty() || needles.iter().any(|n| n.text == text) {
        return;
    }
    let at = needles
        .iter()
        .position(|n| n.text.len() < text.len())
        .unwrap_or(needles.len());
    needles.insert(at, Needle { text, whole_word });
}

/// `text` with each needle found in its decoded reading replaced in the
/// original; `plus` reads `+` as a space (form encoding).
fn replace(text: &str, needles: &[&Needle], plus: bool) -> String {
    let (decoded, spans) = decode(text, plus);
    // Searched as Latin-1 text, one char per byte, so that std's linear-time
    // search serves any bytes; `starts` maps its offsets back to bytes.
    let latin = |bytes: &[u8]| bytes.iter().map(|&b| char::from(b)).collect::<String>();
    let haystack = latin(&decoded);
    let starts: Vec<usize> = haystack.char_indices().map(|(at, _)| at).collect();
    // Bytes of `text` already found: a match overlapping one is not taken.
    let mut taken = vec![false; text.len()];
    for needle in needles {
        let n = needle.text.len();
        for (offset, _) in haystack.match_indices(latin(&needle.text).as_str()) {
            let Ok(at) = starts.binary_search(&offset) else {
                continue;
            };
            let (start, end) = (spans[at].0, spans[at + n - 1].1);
            let free = !taken[start..end].contains(&true);
            if free && (!needle.whole_word || is_word_boundary(text, start, end)) {
                taken[start..end].fill(true);
            }
        }
    }
    // Each run of found bytes (whole chars: matches start and end on char boundaries) goes.
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while at < text.len() {
        let run = taken[at..]
            .iter()
            .position(|&t| t != taken[at])
            .unwrap_or(text.len() - at);
        if taken[at] {
            out += REDACTED;
        } else {
            out += &text[at..at + run];
        }
        at += run;
    }
    out
}

/// `text` lower-cased and decoded as a server may have encoded an echo, with
/// the span of `text` each decoded byte came from: `%XX` escapes, JSON's
/// `\uXXXX` (outside surrogates) and `\"`, `\\`, `\/`, and, with `plus`, `+`
/// for a space. Anything else stands for itself.
fn decode(text: &str, plus: bool) -> (Vec<u8>, Vec<(usize, usize)>) {
    let bytes = text.as_bytes();
    let hex = |at: usize, len: usize| -> Option<u32> {
        let digits = text.get(at..at + len)?;
        if digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            u32::from_str_radix(digits, 16).ok()
        } else {
            None
        }
    };
    let mut out = Vec::with_capacity(bytes.len());
    let mut spans = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let (decoded, len): (Option<char>, usize) = match bytes[i] {
            b'%' => match hex(i + 1, 2) {
                // A byte, maybe one of a UTF-8 sequence: pushed as it is below.
                Some(byte) => {
                    out.push((byte as u8).to_ascii_lowercase());
                    spans.push((i, i + 3));
                    i += 3;
                    continue;
                }
                None => (None, 1),
            },
            b'\\' => match bytes.get(i + 1) {
                Some(b'u') => (hex(i + 2, 4).and_then(char::from_u32), 6),
                Some(&c @ (b'"' | b'\\' | b'/')) => (Some(char::from(c)), 2),
                _ => (None, 1),
            },
            b'+' if plus => (Some(' '), 1),
            _ => (None, 1),
        };
        match decoded {
            Some(c) => {
                let mut buffer = [0; 4];
                for &b in c.to_ascii_lowercase().encode_utf8(&mut buffer).as_bytes() {
                    out.push(b);
                    spans.push((i, i + len));
                }
                i += len;
            }
            None => {
                out.push(bytes[i].to_ascii_lowercase());
                spans.push((i, i + 1));
                i += 1;
            }
        }
    }
    (out, spans)
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
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

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
    fn partly_encoded_and_json_escaped_echoes_are_removed_too() {
        let secret = "Zx9/q+Lm w8~Pk(7)";
        let r = Redactor::new("id", Some(secret));
        for echo in [
            // Python's quote(): "/" and "~" left as they are.
            "Zx9/q%2BLm%20w8~Pk%287%29",
            "Zx9/q%2BLm%20w8~Pk(7)",
            "Zx9%2Fq%2BLm+w8~Pk(7)",
            // JSON written by encoders that escape "/" or "+".
            "Zx9\\/q\\u002bLm w8~Pk(7)",
            "zx9%2fq%2blm%20w8%7epk%287%29",
        ] {
            let clean = r.redact(&format!("bad secret {echo} given"));
            assert_eq!(clean, "bad secret [redacted] given", "{echo}");
        }
        // What only looks like an escape is left alone.
        assert_eq!(r.redact("100% sure \\q"), "100% sure \\q");
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
    fn a_megabyte_of_echoes_is_cleaned() {
        let secret = "canary-secret-x";
        let r = Redactor::new("id", Some(secret));
        let text = format!("{secret} ").repeat(65_536);
        // Each match marks the bytes it covers: no match is compared with all the others.
        let clean = r.redact(&text);
        assert!(!clean.contains("canary"));
        assert_eq!(clean.matches(REDACTED).count(), 65_536);
    }

    #[test]
    fn finds_a_credential_inside_other_text_in_any_encoding() {
        let secret = "canary-secret/x+y";
        let mut r = Redactor::new("app", Some(secret));
        r.add("another-key-0123456789");
        let percent = utf8_percent_encode(secret, NON_ALPHANUMERIC).to_string();
        for text in [
            format!("postgres://app:{percent}@db/x"),
            format!("https://app:{secret}@host/"),
            format!("Basic {}", basic("app", secret)),
            secret.to_uppercase(),
            "key=ANOTHER-KEY-0123456789;".to_owned(),
        ] {
            assert!(r.finds(&text), "{text}");
        }
        for text in ["postgres://app:other@db/x", "app", "canary-secret", ""] {
            assert!(!r.finds(text), "{text}");
        }
    }

    #[test]
    fn text_without_credentials_is_unchanged() {
        let r = Redactor::new("app", Some("very-secret-value"));
        let text = "invalid_client: the client could not be authenticated";
        assert_eq!(r.redact(text), text);
    }
}
