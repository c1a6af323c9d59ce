//! Any options: the request is either refused as `config` or well formed,
//! with every value form-encoded so it decodes back to what was given.
#![no_main]

use freshtoken::config::{Config, Options};
use freshtoken::request::{basic_auth, form_encode, token_request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.split('\u{1}');
    let mut next = || parts.next().unwrap_or_default().to_owned();
    let (id, secret, scope, name, value) = (next(), next(), next(), next(), next());
    let options = Options {
        token_url: "https://login.example.com/oauth/token".into(),
        client_id: id.clone(),
        client_secret: secret.clone(),
        auth_method: (text.len() % 2 == 0).then(|| "client_secret_post".into()),
        scope: (!scope.is_empty()).then(|| scope.clone()),
        extra_params: vec![(name.clone(), value.clone())],
        ..Options::default()
    };
    let Ok(config) = Config::new(options) else {
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
        .headers()
        .all(|(_, v)| !v.contains('\r') && !v.contains('\n')));
});
