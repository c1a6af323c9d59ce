//! Any options: the request is either refused as `config` or well formed,
//! with every value form-encoded so it decodes back to what was given.
#![no_main]

use freshtoken::config::Config;
use freshtoken::request::{basic_auth, form_encode, token_request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.split('\u{1}');
    let mut next = || parts.next().unwrap_or_default().to_owned();
    let (id, secret, scope, name, value) = (next(), next(), next(), next(), next());
    let mut options = serde_json::json!({
        "tokenUrl": "https://login.example.com/oauth/token",
        "clientId": id,
        "clientSecret": secret,
        "extraParams": { &name: &value },
    });
    if !scope.is_empty() {
        options["scope"] = scope.into();
    }
    if text.len() % 2 == 0 {
        options["authMethod"] = "client_secret_post".into();
    }
    let Ok(options) = freshtoken::options::read(options) else {
        return;
    };
    let Ok(config) = Config::new(options, |url| Some(url.to_owned())) else {
        return;
    };
    let request = token_request(&config);
    // Every byte of the body is in the form-encoding alphabet: nothing can smuggle a parameter.
    assert!(request
        .body
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"*-._+%=&".contains(&b)));
    assert!(request
        .body
        .contains(&format!("&{}={}", form_encode(&name), form_encode(&value))));
    let header = basic_auth(&id, &secret);
    assert!(header.starts_with("Basic ") && header[6..].bytes().all(|b| b.is_ascii_graphic()));
    assert!(request
        .headers
        .iter()
        .all(|(_, v)| !v.contains('\r') && !v.contains('\n')));
});
