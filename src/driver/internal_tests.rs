//! An executor that drives the acquisition out of order is a bug in
//! freshtoken: the acquisition ends with an `internal` error, not
//! retryable, and an `internal_error` event (never a retryable `network`
//! error that would turn the bug into retries and a hold-back).

use super::*;
use crate::config::tests::config;
use serde_json::json;

const NOW: Now = Now {
    wall: 1_700_000_000_000.0,
    mono: 1_000.0,
};

/// A client with a store, and its acquisition begun.
fn begun() -> (Config, TokenState, Option<Box<Metadata>>, Driver) {
    let config = config(json!({})).unwrap();
    let mut state = TokenState::new(None).sharing(true);
    state.begin(NOW, false).unwrap();
    let driver = Driver::new(&config, NOW, true, false);
    (config, state, None, driver)
}

fn parts<'a>(
    config: &'a Config,
    state: &'a mut TokenState,
    metadata: &'a mut Option<Box<Metadata>>,
) -> Parts<'a> {
    Parts {
        config,
        state,
        metadata,
        parse_url: |url| Some(url.to_owned()),
    }
}

/// The acquisition's end is an `internal` failure with its event.
fn assert_internal(effect: Effect, driver: &mut Driver) {
    let Effect::Fail { error } = effect else {
        panic!("expected a failure, got {effect:?}");
    };
    assert_eq!(error.code, ErrorCode::Internal);
    assert!(!error.retryable);
    assert!(driver
        .take_events()
        .iter()
        .any(|e| matches!(e, Event::InternalError { .. })));
    assert!(driver.is_over());
}

#[test]
fn polling_again_before_handing_back_the_outcome_is_internal() {
    let (config, mut state, mut metadata, mut driver) = begun();
    let c = &mut parts(&config, &mut state, &mut metadata);
    assert_eq!(
        driver.poll(c, NOW, 0.5),
        Effect::ReadStore { eventual: true }
    );
    let effect = driver.poll(c, NOW, 0.5);
    assert_internal(effect, &mut driver);
    assert!(
        !state.in_flight(),
        "the state is told the acquisition ended"
    );
}

#[test]
fn the_outcome_of_another_effect_is_internal() {
    let (config, mut state, mut metadata, mut driver) = begun();
    let c = &mut parts(&config, &mut state, &mut metadata);
    assert_eq!(
        driver.poll(c, NOW, 0.5),
        Effect::ReadStore { eventual: true }
    );
    driver.handle(c, NOW, Outcome::Slept, 0.5);
    let effect = driver.poll(c, NOW, 0.5);
    assert_internal(effect, &mut driver);
}

#[test]
fn polling_after_the_end_is_internal() {
    let (config, mut state, mut metadata, mut driver) = begun();
    let c = &mut parts(&config, &mut state, &mut metadata);
    driver.poll(c, NOW, 0.5);
    // The store failed: this isolate fetches alone, and the server answers with a token.
    driver.handle(c, NOW, Outcome::Snapshot(None), 0.5);
    assert!(matches!(driver.poll(c, NOW, 0.5), Effect::Send { .. }));
    let body = json!({ "access_token": "t", "token_type": "Bearer", "expires_in": 3600 });
    let answer = Received {
        status: 200,
        retry_after: None,
        cache_control: None,
        body: body.to_string().into_bytes(),
    };
    driver.handle(c, NOW, Outcome::Answer(Ok(answer)), 0.5);
    assert!(matches!(driver.poll(c, NOW, 0.5), Effect::Done { .. }));
    let effect = driver.poll(c, NOW, 0.5);
    assert_internal(effect, &mut driver);
}
