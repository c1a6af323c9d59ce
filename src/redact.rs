//! Keeping credentials out of error text a server sends back.
//!
//! A token endpoint may echo what it received: the secret in its error
//! text, the form body, its `Authorization` header. [`Redactor`] replaces
//! every credential we send (the secret, a signed assertion) and the access
//! token we hold with `[redacted]`, however the server encoded what it
//! echoes: the text is also read decoded (percent escapes, whole or partial,
//! `+` for a space, JSON's `\uXXXX`, `\/`, `\n`, `\r`, `\t`, `\b` and `\f`
//! escapes), a credential that itself looks like an escape is also looked
//! for as that reading of it, and the base64 of the secret (standard or
//! URL-safe, padded or not, alone or inside longer base64 text) and of the
//! Basic `id:secret` pair are looked for as they are. A PEM private key is
//! also found by its base64 body read without white space, so that a key
//! kept in JSON, with CRLF line ends or wrapped anew is found too. Matching
//! ignores ASCII letter case. Credentials of 8 bytes or more are replaced
//! wherever they occur; shorter ones only where they stand as a whole word,
//! so that a short or common secret does not mangle ordinary words around it.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE};
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
    /// The base64 of the secret and of the Basic pair, lower-cased: looked
    /// for in the text as it is (and in its decoded reading).
    encoded: Vec<Needle>,
}

struct Needle {
    text: Vec<u8>,
    at: Place,
}

/// Where a needle counts as found.
#[derive(Clone, Copy, PartialEq)]
enum Place {
    Anywhere,
    /// Only where no ASCII letter or digit touches it.
    WholeWord,
    /// In the text read without white space (a PEM key's body, however wrapped).
    Unspaced,
}

impl Place {
    /// Where a credential of `len` bytes counts as found.
    fn for_len(len: usize) -> Self {
        if len < SHORT {
            Self::WholeWord
        } else {
            Self::Anywhere
        }
    }
}

impl Redactor {
    /// A redactor for a client's secret, its base64, and the base64 of the
    /// Basic `id:secret` pair it goes in (RFC 6749 §2.3.1), encoded or not.
    /// A client without a secret (`private_key_jwt`) starts empty.
    pub fn new(client_id: &str, secret: Option<&str>) -> Self {
        let mut redactor = Self::default();
        if let Some(secret) = secret {
            redactor.add_secret(client_id, secret);
        }
        redactor
    }

    /// Also removes `secret` as [`Redactor::new`] does: a client secret read
    /// for one request (a `clientSecret` function).
    pub fn add_secret(&mut self, client_id: &str, secret: &str) {
        self.add(secret);
        let form = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        for pair in [
            format!("{}:{}", form(client_id), form(secret)),
            format!("{client_id}:{secret}"),
        ] {
            push(
                &mut self.encoded,
                STANDARD_NO_PAD.encode(pair).as_bytes(),
                Place::Anywhere,
            );
        }
        for (form, at) in base64_forms(secret.as_bytes()) {
            push(&mut self.encoded, form.as_bytes(), at);
        }
    }

    /// Also removes `credential` (an access token, an assertion, a key),
    /// however encoded.
    pub fn add(&mut self, credential: &str) {
        let at = Place::for_len(credential.len());
        push(&mut self.credentials, credential.as_bytes(), at);
        // As the decoded reading of text shows it, should it look like an escape.
        let (decoded, _) = decode(credential, false);
        push(
            &mut self.credentials,
            &decoded,
            Place::for_len(decoded.len()),
        );
        for body in pem_key_bodies(credential) {
            push(&mut self.credentials, body.as_bytes(), Place::Unspaced);
        }
    }

    /// Whether `text` holds a known credential, in any encoding [`Self::redact`] finds.
    pub fn finds(&self, text: &str) -> bool {
        self.redact(text) != text
    }

    /// `text` with every known credential replaced by `[redacted]`.
    pub fn redact(&self, text: &str) -> String {
        let encoded: Vec<&Needle> = self.encoded.iter().collect();
        let mut out = replace(text, &encoded, false);
        let credentials: Vec<&Needle> = self.credentials.iter().collect();
        for plus in [false, true] {
            out = replace(&out, &credentials, plus);
        }
        out
    }
}

/// The base64 of `secret` (RFC 4648 §4 and §5), padded and not; and, for a
/// secret long enough not to turn up by chance, the characters its base64
/// has whatever bytes stand around it, at each of the three alignments it
/// may have inside longer encoded text.
fn base64_forms(secret: &[u8]) -> Vec<(String, Place)> {
    let mut forms = Vec::new();
    for engine in [&STANDARD, &URL_SAFE] {
        let whole = engine.encode(secret);
        let at = Place::for_len(secret.len());
        forms.push((whole.trim_end_matches('=').to_owned(), at));
        forms.push((whole, at));
        if secret.len() < SHORT {
            continue;
        }
        for before in 0..3 {
            let bytes = [&[0u8; 2][..before], secret].concat();
            // Six bits a character: those from the bytes before, and the
            // last one's when the secret does not fill it, depend on others.
            let (first, end) = ((before * 8).div_ceil(6), bytes.len() * 8 / 6);
            forms.push((
                engine.encode(&bytes)[first..end].to_owned(),
                Place::Anywhere,
            ));
        }
    }
    forms
}

/// The base64 bodies of the PEM private keys in `text` (RFC 7468 §2), white
/// space removed; an encrypted key's `Name: value` headers are not its body.
fn pem_key_bodies(text: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    let mut body: Option<String> = None;
    for line in text.lines().map(str::trim) {
        if let Some(label) = line.strip_prefix("-----BEGIN ") {
            let key = label.trim_end_matches('-').ends_with("PRIVATE KEY");
            body = key.then(String::new);
        } else if line.starts_with("-----END ") {
            bodies.extend(body.take().filter(|b| !b.is_empty()));
        } else if let Some(body) = body.as_mut().filter(|_| !line.contains(':')) {
            body.extend(line.chars().filter(|c| !c.is_ascii_whitespace()));
        }
    }
    bodies
}

/// Adds `text` to `needles`, longest first, so that a credential is never
/// half-replaced by a shorter one.
fn push(needles: &mut Vec<Needle>, text: &[u8], at: Place) {
    let text = text.to_ascii_lowercase();
    if text.is_empty() || needles.iter().any(|n| n.text == text) {
        return;
    }
    let position = needles
        .iter()
        .position(|n| n.text.len() < text.len())
        .unwrap_or(needles.len());
    needles.insert(position, Needle { text, at });
}

/// A reading of a text, searched as Latin-1 text, one char per byte, so
/// that std's linear-time search serves any bytes.
struct Reading {
    haystack: String,
    /// The byte offset in `haystack` of each byte read.
    starts: Vec<usize>,
    /// The span of the original text each byte read came from.
    spans: Vec<(usize, usize)>,
}

impl Reading {
    fn new(bytes: &[u8], spans: Vec<(usize, usize)>) -> Self {
        let haystack = latin(bytes);
        let starts = haystack.char_indices().map(|(at, _)| at).collect();
        Self {
            haystack,
            starts,
            spans,
        }
    }

    /// The same reading with its white space left out.
    fn unspaced(&self) -> Self {
        let (bytes, spans): (Vec<u8>, Vec<(usize, usize)>) = self
            .haystack
            .chars()
            .zip(&self.spans)
            .filter(|(c, _)| !c.is_ascii_whitespace())
            .map(|(c, &span)| (c as u8, span))
            .unzip();
        Self::new(&bytes, spans)
    }

    /// The span of the original text each match of `needle` covers.
    fn find<'a>(&'a self, needle: &'a str) -> impl Iterator<Item = (usize, usize)> + 'a {
        let n = needle.chars().count();
        self.haystack
            .match_indices(needle)
            .filter_map(move |(offset, _)| {
                let at = self.starts.binary_search(&offset).ok()?;
                Some((self.spans[at].0, self.spans[at + n - 1].1))
            })
    }
}

/// `bytes` as Latin-1 text.
fn latin(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// `text` with each needle found in its decoded reading replaced in the
/// original; `plus` reads `+` as a space (form encoding).
fn replace(text: &str, needles: &[&Needle], plus: bool) -> String {
    let (decoded, spans) = decode(text, plus);
    let reading = Reading::new(&decoded, spans);
    let unspaced = needles
        .iter()
        .any(|n| n.at == Place::Unspaced)
        .then(|| reading.unspaced());
    // Bytes of `text` already found: a match overlapping one is not taken.
    let mut taken = vec![false; text.len()];
    for needle in needles {
        let read = match (needle.at, &unspaced) {
            (Place::Unspaced, Some(unspaced)) => unspaced,
            _ => &reading,
        };
        for (start, end) in read.find(&latin(&needle.text)) {
            let free = !taken[start..end].contains(&true);
            let alone = needle.at != Place::WholeWord || is_word_boundary(text, start, end);
            if free && alone {
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
/// `\uXXXX` (outside surrogates), `\"`, `\\`, `\/`, `\n`, `\r`, `\t`, `\b`
/// and `\f`, and, with `plus`, `+` for a space. Anything else stands for itself.
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
                Some(b'n') => (Some('\n'), 2),
                Some(b'r') => (Some('\r'), 2),
                Some(b't') => (Some('\t'), 2),
                Some(b'b') => (Some('\u{8}'), 2),
                Some(b'f') => (Some('\u{c}'), 2),
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

    /// A PEM private key with a body long enough to wrap, as its lines: not a real key.
    fn pem_lines() -> Vec<String> {
        let body: String = (0..300u32)
            .map(|i| {
                char::from(
                    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
                        [(i * 37 % 64) as usize],
                )
            })
            .collect();
        let mut lines = vec!["-----BEGIN PRIVATE KEY-----".to_owned()];
        lines.extend(
            body.as_bytes()
                .chunks(64)
                .map(|c| String::from_utf8(c.to_vec()).unwrap()),
        );
        lines.push("-----END PRIVATE KEY-----".to_owned());
        lines
    }

    #[test]
    fn a_pem_key_is_found_json_escaped_with_crlf_or_rewrapped() {
        let lines = pem_lines();
        let pem = lines.join("\n") + "\n";
        let mut r = Redactor::new("app", None);
        r.add(&pem);
        let body: String = lines[1..lines.len() - 1].concat();
        let rewrapped = body
            .as_bytes()
            .chunks(76)
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
            .collect::<Vec<_>>()
            .join("\n");
        let json = serde_json::json!({ "type": "service_account", "private_key": pem }).to_string();
        for text in [
            format!("x {pem} y"),
            json.clone(),
            json.replace('/', "\\/"),
            lines.join("\r\n"),
            rewrapped.clone(),
            format!("key: {body}"),
            form_urlencoded::byte_serialize(pem.as_bytes()).collect::<String>(),
        ] {
            assert!(r.finds(&text), "{text}");
            let clean = r.redact(&text);
            assert!(!clean.contains(&body[100..140]), "{clean}");
        }
        // The armour alone, or another key's body, is not the key.
        assert!(!r.finds("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"));
        assert_eq!(r.redact("tab\tnew\nline"), "tab\tnew\nline");
    }

    #[test]
    fn json_escapes_of_white_space_are_read_decoded() {
        let r = Redactor::new("app", Some("two\nlines\tand-more"));
        let echo = serde_json::to_string("two\nlines\tand-more").unwrap();
        assert_eq!(r.redact(&format!("got {echo}")), "got \"[redacted]\"");
        // A secret that looks like an escape is still found as it is.
        for secret in ["canary\\new-secret", "canary%41-secret"] {
            let r = Redactor::new("app", Some(secret));
            assert_eq!(
                r.redact(&format!("got {secret}.")),
                "got [redacted].",
                "{secret}"
            );
        }
    }

    #[test]
    fn the_base64_of_the_secret_alone_is_removed() {
        use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
        for secret in [
            "r4-canary-secret/exec+x",
            "canary-secret-?>?>",
            "canary-secret~~~",
        ] {
            let r = Redactor::new("app", Some(secret));
            for echo in [
                STANDARD.encode(secret),
                STANDARD_NO_PAD.encode(secret),
                URL_SAFE.encode(secret),
                URL_SAFE_NO_PAD.encode(secret),
            ] {
                let clean = r.redact(&format!("secret={echo};"));
                assert_eq!(clean, "secret=[redacted];", "{secret}: {echo}");
            }
            // Inside a longer base64 text, at each of the three alignments.
            for prefix in ["", "a", "ab"] {
                let text = STANDARD.encode(format!("{prefix}{{\"secret\":\"{secret}\"}}"));
                assert!(r.finds(&text), "{prefix}: {text}");
            }
        }
        // A short secret's base64 goes only as a whole word.
        let r = Redactor::new("app", Some("abc"));
        assert_eq!(r.redact("YWJj and xYWJjx"), "[redacted] and xYWJjx");
        assert!(!Redactor::new("app", Some("canary-secret-zz")).finds("Y2FuYXJ5"));
    }

    #[test]
    fn text_without_credentials_is_unchanged() {
        let r = Redactor::new("app", Some("very-secret-value"));
        let text = "invalid_client: the client could not be authenticated";
        assert_eq!(r.redact(text), text);
    }
}
