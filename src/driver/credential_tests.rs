//! Credentials asked for at each request (credential.rs): the asking, the
//! request they go in, and the rotation after `invalid_client`.

use crate::clock::Now;
use crate::config::{Asked, AuthMethod, Config};
use crate::driver::{Driver, Effect, Event, Outcome, Parts};
use crate::error::ErrorCode;
use crate::response::Received;
use crate::state::TokenState;
use serde_json::json;

const NOW: Now = Now {
    wall: 1_700_000_000_000.0,
    mono: 1_000.0,
};

/// A config whose secret (or, with `assertion`, whose client assertion) is
/// asked for, as the binding reads a function.
fn asked_config(
    extra: serde_json::Value,
    assertion: bool,
) -> Result<Config, crate::error::TokenError> {
    let mut options = crate::config::tests::options(extra);
    options.client_secret = None;
    match assertion {
        true => options.client_assertion = Some(crate::options::Host),
        false => options.secret_asked = true,
    }
    Config::new(options, |u| Some(u.to_owned()))
}

struct Run {
    config: Config,
    state: TokenState,
    driver: Driver,
    /// Bodies of the token requests sent, in order.
    sent: Vec<String>,
    events: Vec<Event>,
}

impl Run {
    fn new(config: Config) -> Self {
        let mut state = TokenState::new(None);
        state.begin(NOW, false).unwrap();
        let driver = Driver::new(&config, NOW, false, false);
        Self {
            config,
            state,
            driver,
            sent: Vec::new(),
            events: Vec::new(),
        }
    }

    fn step(&mut self, outcome: Option<Outcome>) -> Effect {
        let mut metadata = None;
        let mut parts = Parts {
            config: &self.config,
            state: &mut self.state,
            metadata: &mut metadata,
            parse_url: |u| Some(u.to_owned()),
        };
        if let Some(outcome) = outcome {
            self.driver.handle(&mut parts, NOW, outcome, 0.5);
        }
        let effect = self.driver.poll(&mut parts, NOW, 0.5);
        if let Effect::Send { .. } = effect {
            let request = self.driver.take_request().unwrap();
            let auth = request.headers.iter().find(|(n, _)| *n == "Authorization");
            let auth = auth.map(|(_, v)| v.clone()).unwrap_or_default();
            self.sent
                .push(format!("{} {}", auth, request.body.unwrap()));
        }
        self.events.extend(self.driver.take_events());
        effect
    }
}

fn answer(status: u16, body: serde_json::Value) -> Option<Outcome> {
    Some(Outcome::Answer(Ok(Received {
        status,
        retry_after: None,
        cache_control: None,
        body: body.to_string().into_bytes(),
    })))
}

fn token() -> Option<Outcome> {
    answer(
        200,
        json!({ "access_token": "t", "token_type": "Bearer", "expires_in": 3600 }),
    )
}

fn refused() -> Option<Outcome> {
    answer(401, json!({ "error": "invalid_client" }))
}

fn given(value: &str) -> Option<Outcome> {
    Some(Outcome::Credential(Some(value.into())))
}

fn basic(secret: &str) -> String {
    crate::request::basic_auth("id", secret)
}

#[test]
fn a_secret_function_is_asked_before_each_token_request_and_sent() {
    let mut run = Run::new(asked_config(json!({}), false).unwrap());
    assert_eq!(run.config.asked, Some(Asked::Secret));
    assert_eq!(
        run.config.auth.secret(),
        None,
        "no config holds an asked secret"
    );
    assert!(matches!(run.step(None), Effect::Credential { timeout_ms } if timeout_ms > 0.0));
    assert!(matches!(run.step(given("first")), Effect::Send { .. }));
    assert_eq!(
        run.sent,
        [format!("{} grant_type=client_credentials", basic("first"))]
    );
    assert!(matches!(
        run.step(answer(503, json!({}))),
        Effect::Sleep { .. }
    ));
    // The retry asks again: a secret is never kept from one request to the next.
    assert!(matches!(
        run.step(Some(Outcome::Slept)),
        Effect::Credential { .. }
    ));
    assert!(matches!(run.step(given("second")), Effect::Send { .. }));
    assert_eq!(
        run.sent[1],
        format!("{} grant_type=client_credentials", basic("second"))
    );
    assert!(matches!(run.step(token()), Effect::Done { .. }));
}

#[test]
fn a_rotated_secret_is_sent_again_at_once_after_invalid_client() {
    let mut run =
        Run::new(asked_config(json!({ "authMethod": "client_secret_post" }), false).unwrap());
    run.step(None);
    run.step(given("old-secret"));
    // Refused: the secret is asked for once more, with no wait.
    assert!(matches!(run.step(refused()), Effect::Credential { .. }));
    assert!(matches!(run.step(given("new-secret")), Effect::Send { .. }));
    assert!(
        run.sent[1].ends_with("client_secret=new-secret"),
        "{}",
        run.sent[1]
    );
    assert!(matches!(run.step(token()), Effect::Done { .. }));
    let retried = run
        .events
        .iter()
        .any(|e| matches!(e, Event::Retry { delay_ms, .. } if *delay_ms == 0.0));
    assert!(
        retried,
        "the rotation is reported as a retry without a wait"
    );
}

#[test]
fn an_unchanged_secret_after_invalid_client_fails_with_the_refusal() {
    let mut run = Run::new(asked_config(json!({}), false).unwrap());
    run.step(None);
    run.step(given("same"));
    assert!(matches!(run.step(refused()), Effect::Credential { .. }));
    let end = run.step(given("same"));
    assert!(
        matches!(&end, Effect::Fail { error } if error.code == ErrorCode::InvalidClient),
        "{end:?}"
    );
    assert_eq!(run.sent.len(), 1, "no second request with the same secret");
}

#[test]
fn the_secret_is_asked_again_once_per_acquisition() {
    let mut run = Run::new(asked_config(json!({}), false).unwrap());
    run.step(None);
    run.step(given("a"));
    run.step(refused());
    run.step(given("b"));
    // Refused again, with the new secret too: that refusal stands.
    let end = run.step(refused());
    assert!(matches!(&end, Effect::Fail { error } if error.code == ErrorCode::InvalidClient));
    assert_eq!(run.sent.len(), 2);
}

#[test]
fn a_fixed_secret_is_not_asked_for_nor_retried_after_invalid_client() {
    let config = crate::config::tests::config(json!({})).unwrap();
    assert_eq!(config.asked, None);
    let mut run = Run::new(config);
    assert!(matches!(run.step(None), Effect::Send { .. }));
    assert!(matches!(run.step(refused()), Effect::Fail { .. }));
}

#[test]
fn a_client_assertion_goes_in_the_form_and_is_never_retried_for_rotation() {
    let mut run = Run::new(asked_config(json!({}), true).unwrap());
    assert_eq!(run.config.auth.method(), AuthMethod::PrivateKeyJwt);
    assert!(matches!(run.step(None), Effect::Credential { .. }));
    assert!(matches!(run.step(given("h.p.s")), Effect::Send { .. }));
    assert_eq!(
        run.sent[0],
        " grant_type=client_credentials\
         &client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer\
         &client_assertion=h.p.s&client_id=id"
    );
    assert!(matches!(run.step(refused()), Effect::Fail { .. }));
}

#[test]
fn what_the_host_gives_is_checked_and_never_quoted() {
    let cases = [
        (false, None, "clientSecret gave no credential"),
        (false, Some(""), "clientSecret gave an empty credential"),
        (
            false,
            Some(" canary\n"),
            "clientSecret gave a secret with leading or trailing whitespace",
        ),
        (
            true,
            Some("canary with spaces"),
            "clientAssertion gave an assertion that is no JWT",
        ),
        (true, None, "clientAssertion gave no credential"),
    ];
    for (assertion, value, expected) in cases {
        let mut run = Run::new(asked_config(json!({}), assertion).unwrap());
        run.step(None);
        let end = run.step(Some(Outcome::Credential(value.map(str::to_owned))));
        let Effect::Fail { error } = end else {
            panic!("{value:?} was sent");
        };
        let text = error.message();
        assert_eq!(error.code, ErrorCode::Config);
        assert!(text.contains(expected), "{text}");
        assert!(!text.contains("canary"), "{text}");
    }
}

#[test]
fn a_secret_echoed_by_the_server_is_removed_from_the_error() {
    let mut run = Run::new(asked_config(json!({}), false).unwrap());
    run.step(None);
    run.step(given("rotating-canary-secret"));
    // Echoed as it is, and as the Basic header that carried it.
    let header = basic("rotating-canary-secret");
    let described = format!("bad rotating-canary-secret in {header}");
    let echo = json!({ "error": "invalid_request", "error_description": described });
    let Effect::Fail { error } = run.step(answer(400, echo)) else {
        panic!("not failed");
    };
    let text = error.message();
    assert!(!text.contains("rotating-canary-secret"), "{text}");
    assert!(
        !text.contains(&header[6..]),
        "the Basic pair's base64 too: {text}"
    );
}

#[test]
fn asked_credentials_refuse_the_options_they_cannot_go_with() {
    let refused = |extra: serde_json::Value, assertion: bool| {
        asked_config(extra, assertion)
            .unwrap_err()
            .description
            .unwrap()
    };
    assert_eq!(
        refused(json!({ "authMethod": "client_secret_jwt" }), false),
        "clientSecret as a function is for client_secret_basic and client_secret_post"
    );
    assert!(refused(json!({ "authMethod": "client_secret_post" }), true)
        .contains("leave authMethod out"));
    let mut options = crate::config::tests::options(json!({}));
    options.client_assertion = Some(crate::options::Host);
    let both = Config::new(options, |u| Some(u.to_owned())).unwrap_err();
    assert_eq!(
        both.description.as_deref(),
        Some("clientAssertion is the credential: leave clientSecret out")
    );
}
