//! The driver's transitions, table by table (docs/DESIGN.md, "The effect
//! loop"): each row starts an acquisition, hands the driver one outcome
//! after another, and names the effect it must poll next.

use crate::clock::Now;
use crate::config::tests::config;
use crate::discovery::Metadata;
use crate::driver::{Driver, Effect, LeaseResult, Outcome, Parts, Seen};
use crate::error::{ErrorCode, TokenError};
use crate::response::Received;
use crate::shared::TokenRecord;
use crate::state::TokenState;
use serde_json::json;

const WALL0: f64 = 1_700_000_000_000.0;

/// How the client is set up.
#[derive(Clone, Copy)]
enum Client {
    /// `tokenUrl`, no store.
    Alone,
    /// `tokenUrl`, a store.
    Shared,
    /// A store, `refresh()`: a stored token is taken only if newer.
    Forced,
    /// A store, a read alone (`Decision::Read`).
    Reading,
    /// `issuer`, no store.
    Issuer,
    /// `issuer`, a store.
    SharedIssuer,
    /// `client_secret_jwt`, no store.
    Jwt,
}

/// What the executor hands back.
#[derive(Clone, Copy)]
enum In {
    /// A read: the store failed.
    ReadFailed,
    /// A read: nothing stored.
    Empty,
    /// A read: a usable token another isolate stored.
    Stored,
    /// A read: another isolate's live lease.
    Leased,
    /// A read: a shared back-off for the next 10 s.
    BackedOff,
    Lease(LeaseResult),
    Renewed(bool),
    /// The stored metadata copy: none.
    NoCopy,
    Signed,
    SignFailed,
    /// The token endpoint's (or the issuer's) answer with this status.
    Answer(u16),
    /// The issuer's metadata document.
    Document,
    /// No answer within the time.
    Timeout,
    Slept,
    /// A write, release or back-off done.
    Done,
}

struct Harness {
    config: crate::config::Config,
    state: TokenState,
    metadata: Option<Box<Metadata>>,
    driver: Driver,
    now: Now,
    /// The last sleep polled, ms: a `Slept` moves the clocks by it.
    slept: f64,
}

impl Harness {
    fn new(client: Client) -> Self {
        let options = match client {
            Client::Issuer | Client::SharedIssuer => {
                json!({ "tokenUrl": null, "issuer": "https://login.example.com" })
            }
            Client::Jwt => json!({ "authMethod": "client_secret_jwt",
                "clientSecret": "a-client-secret-of-at-least-32-bytes" }),
            _ => json!({}),
        };
        let mut options = options;
        if options["tokenUrl"].is_null() {
            options.as_object_mut().unwrap().remove("tokenUrl");
        }
        let config = match &options["issuer"] {
            serde_json::Value::Null => config(options).unwrap(),
            _ => {
                let mut o = crate::config::tests::options(options);
                o.token_url = None;
                crate::config::Config::new(o, |u| Some(u.to_owned())).unwrap()
            }
        };
        let now = Now {
            wall: WALL0,
            mono: 1_000.0,
        };
        let store = !matches!(client, Client::Alone | Client::Issuer | Client::Jwt);
        let mut state = TokenState::new(None).sharing(store);
        let driver = match client {
            Client::Reading => {
                state.begin_reading();
                Driver::reading(&config, now)
            }
            _ => {
                state.begin(now, false).unwrap();
                Driver::new(&config, now, store, matches!(client, Client::Forced))
            }
        };
        Self {
            config,
            state,
            metadata: None,
            driver,
            now,
            slept: 0.0,
        }
    }

    fn poll(&mut self) -> Effect {
        let mut parts = Parts {
            config: &self.config,
            state: &mut self.state,
            metadata: &mut self.metadata,
            parse_url: |url| Some(url.to_owned()),
        };
        let effect = self.driver.poll(&mut parts, self.now, 0.5);
        if let Effect::Sleep { ms, .. } = effect {
            self.slept = ms;
        }
        effect
    }

    fn handle(&mut self, input: In) {
        if let In::Slept = input {
            self.now.wall += self.slept;
            self.now.mono += self.slept;
        }
        let outcome = outcome(input, self.now);
        let mut parts = Parts {
            config: &self.config,
            state: &mut self.state,
            metadata: &mut self.metadata,
            parse_url: |url| Some(url.to_owned()),
        };
        self.driver.handle(&mut parts, self.now, outcome, 0.5);
    }
}

fn record(now: Now) -> TokenRecord {
    let expires_at = now.wall + 3_599_000.0;
    TokenRecord {
        access_token: "stored-token".into(),
        token_type: "Bearer".into(),
        scope: None,
        lifetime_seconds: 3600.0,
        expires_at,
        refresh_at: expires_at - 600_000.0,
        usable_until: expires_at - 30_000.0,
    }
}

fn answer(status: u16, body: serde_json::Value) -> Outcome {
    Outcome::Answer(Ok(Received {
        status,
        retry_after: None,
        cache_control: None,
        body: body.to_string().into_bytes(),
    }))
}

fn outcome(input: In, now: Now) -> Outcome {
    let seen = |seen: Seen| Outcome::Snapshot(Some(seen));
    match input {
        In::ReadFailed => Outcome::Snapshot(None),
        In::Empty => seen(Seen::default()),
        In::Stored => seen(Seen {
            token: Some(record(now)),
            ..Seen::default()
        }),
        In::Leased => seen(Seen {
            lease_until: Some(now.wall + 5_000.0),
            lease_holder: Some("another".into()),
            lease_taken_at: Some(now.wall),
            ..Seen::default()
        }),
        In::BackedOff => seen(Seen {
            backoff_until: now.wall + 10_000.0,
            ..Seen::default()
        }),
        In::Lease(result) => Outcome::Lease(result),
        In::Renewed(kept) => Outcome::Renewed(kept),
        In::NoCopy => Outcome::MetadataCopy(None),
        In::Signed => Outcome::Signed(Ok("an-assertion".into())),
        In::SignFailed => Outcome::Signed(Err(TokenError::new(
            ErrorCode::Config,
            "the key cannot sign",
        ))),
        In::Answer(200) => answer(
            200,
            json!({ "access_token": "fresh", "token_type": "Bearer", "expires_in": 3600 }),
        ),
        In::Answer(status) => answer(status, json!({ "error": "invalid_client" })),
        In::Document => answer(
            200,
            json!({ "issuer": "https://login.example.com",
                "token_endpoint": "https://login.example.com/oauth/token" }),
        ),
        In::Timeout => Outcome::Answer(Err(TokenError::new(ErrorCode::Timeout, "no answer"))),
        In::Slept => Outcome::Slept,
        In::Done => Outcome::Stored,
    }
}

/// The effect's name as the executor reads it (`type`), with its telling field.
fn name(effect: &Effect) -> String {
    match effect {
        Effect::ReadStore { eventual: true } => "read_store eventual".into(),
        Effect::Sleep { why, .. } => format!("sleep {why:?}").to_lowercase(),
        Effect::Done { source, .. } => format!("done {source:?}").to_lowercase(),
        Effect::Fail { error } => format!("fail {}", error.code.as_str()),
        other => serde_json::to_value(other).unwrap()["type"]
            .as_str()
            .unwrap()
            .to_owned(),
    }
}

/// Each outcome handed back, and the name of the effect polled after it.
type Steps<'a> = &'a [(In, &'a str)];

/// Runs one row: the first poll, then each outcome and the poll after it.
fn run(row: &str, client: Client, first: &str, steps: Steps) {
    let mut h = Harness::new(client);
    assert_eq!(name(&h.poll()), first, "{row}: the first effect");
    for (i, (input, expected)) in steps.iter().enumerate() {
        h.handle(*input);
        assert_eq!(name(&h.poll()), *expected, "{row}: after step {}", i + 1);
    }
}

use In::*;

#[test]
fn a_client_without_a_store_sends_retries_and_ends() {
    let rows: &[(&str, &str, Steps)] = &[
        ("a token at once", "send", &[(Answer(200), "done network")]),
        (
            "a 503, then a token",
            "send",
            &[
                (Answer(503), "sleep retry"),
                (Slept, "send"),
                (Answer(200), "done network"),
            ],
        ),
        (
            "a timeout, then a token",
            "send",
            &[
                (Timeout, "sleep retry"),
                (Slept, "send"),
                (Answer(200), "done network"),
            ],
        ),
        (
            "a 401 is not retried",
            "send",
            &[(Answer(401), "fail invalid_client")],
        ),
        (
            "every attempt fails",
            "send",
            &[
                (Answer(503), "sleep retry"),
                (Slept, "send"),
                (Answer(503), "sleep retry"),
                (Slept, "send"),
                (Answer(503), "sleep retry"),
                (Slept, "send"),
                (Answer(503), "fail server_error"),
            ],
        ),
    ];
    for (row, first, steps) in rows {
        run(row, Client::Alone, first, steps);
    }
}

#[test]
fn a_client_with_a_store_reads_takes_the_lease_or_waits() {
    let rows: &[(&str, Client, Steps)] = &[
        (
            "a replica's token is taken",
            Client::Shared,
            &[(Stored, "done kv")],
        ),
        (
            "nothing in a replica: the primary is read",
            Client::Shared,
            &[(Empty, "read_store"), (Stored, "done kv")],
        ),
        (
            "nothing stored: the lease is taken, the token fetched, written, the lease released",
            Client::Shared,
            &[
                (Empty, "read_store"),
                (Empty, "take_lease"),
                (Lease(LeaseResult::Taken), "send"),
                (Answer(200), "write_store"),
                (Done, "release_lease"),
                (Done, "done network"),
            ],
        ),
        (
            "another isolate's lease is waited on",
            Client::Shared,
            &[
                (Empty, "read_store"),
                (Leased, "sleep lease"),
                (Slept, "read_store"),
                (Stored, "done kv"),
            ],
        ),
        (
            "a lost race is read again",
            Client::Shared,
            &[
                (Empty, "read_store"),
                (Empty, "take_lease"),
                (Lease(LeaseResult::Held), "sleep lease"),
                (Slept, "read_store"),
                (Stored, "done kv"),
            ],
        ),
        (
            "three lost races for a free lease: fetched without it, written for the others",
            Client::Shared,
            &[
                (Empty, "read_store"),
                (Empty, "take_lease"),
                (Lease(LeaseResult::Held), "sleep lease"),
                (Slept, "read_store"),
                (Empty, "take_lease"),
                (Lease(LeaseResult::Held), "sleep lease"),
                (Slept, "read_store"),
                (Empty, "take_lease"),
                (Lease(LeaseResult::Held), "send"),
                (Answer(200), "write_store"),
                (Done, "done network"),
            ],
        ),
        (
            "the store fails the lease: fetched alone, nothing written",
            Client::Shared,
            &[
                (Empty, "read_store"),
                (Empty, "take_lease"),
                (Lease(LeaseResult::Failed), "send"),
                (Answer(200), "done network"),
            ],
        ),
        (
            "the store fails the read: fetched alone",
            Client::Shared,
            &[(ReadFailed, "send"), (Answer(200), "done network")],
        ),
        (
            "a shared back-off is waited out, then the store read again",
            Client::Shared,
            &[
                (Empty, "read_store"),
                (BackedOff, "sleep backoff"),
                (Slept, "read_store"),
            ],
        ),
        (
            "a holder renews its lease before a retry",
            Client::Shared,
            &[
                (Empty, "read_store"),
                (Empty, "take_lease"),
                (Lease(LeaseResult::Taken), "send"),
                (Answer(503), "renew_lease"),
                (Renewed(true), "sleep retry"),
                (Slept, "send"),
                (Answer(200), "write_store"),
            ],
        ),
        (
            "a holder whose lease was taken over waits for the new holder's token",
            Client::Shared,
            &[
                (Empty, "read_store"),
                (Empty, "take_lease"),
                (Lease(LeaseResult::Taken), "send"),
                (Answer(503), "renew_lease"),
                (Renewed(false), "sleep retry"),
                (Slept, "read_store"),
                (Stored, "done kv"),
            ],
        ),
        (
            "a holder that fails sets the shared back-off, releases, and looks once more",
            Client::Shared,
            &[
                (Empty, "read_store"),
                (Empty, "take_lease"),
                (Lease(LeaseResult::Taken), "send"),
                (Answer(503), "renew_lease"),
                (Renewed(true), "sleep retry"),
                (Slept, "send"),
                (Answer(503), "renew_lease"),
                (Renewed(true), "sleep retry"),
                (Slept, "send"),
                (Answer(503), "renew_lease"),
                (Renewed(true), "sleep retry"),
                (Slept, "send"),
                (Answer(503), "set_backoff"),
                (Done, "release_lease"),
                (Done, "read_store"),
                (Empty, "fail server_error"),
            ],
        ),
        (
            "a failed holder's last look takes a token stored meanwhile",
            Client::Shared,
            &[
                (Empty, "read_store"),
                (Empty, "take_lease"),
                (Lease(LeaseResult::Taken), "send"),
                (Answer(401), "release_lease"),
                (Done, "read_store"),
                (Stored, "done kv"),
            ],
        ),
        (
            "refresh() reads the primary and fetches when nothing newer is stored",
            Client::Forced,
            &[
                (Empty, "read_store"),
                (Empty, "take_lease"),
                (Lease(LeaseResult::Taken), "send"),
            ],
        ),
        (
            "a read alone takes a stored token",
            Client::Reading,
            &[(Empty, "read_store"), (Stored, "done kv")],
        ),
        (
            "a read alone that finds nothing fails without a request",
            Client::Reading,
            &[(Empty, "read_store"), (Empty, "fail rate_limited")],
        ),
    ];
    for (row, client, steps) in rows {
        run(row, *client, "read_store eventual", steps);
    }
}

#[test]
fn discovery_and_signing_come_before_the_token_request() {
    let rows: &[(&str, Client, &str, Steps)] = &[
        (
            "the issuer's metadata is fetched first",
            Client::Issuer,
            "send",
            &[(Document, "send"), (Answer(200), "done network")],
        ),
        (
            "the first location has none: the second is asked",
            Client::Issuer,
            "send",
            &[(Answer(404), "send"), (Document, "send")],
        ),
        (
            "the issuer fails: retried like the token request",
            Client::Issuer,
            "send",
            &[(Answer(503), "sleep retry"), (Slept, "send")],
        ),
        (
            "with a store, the stored copy is read first and a fresh one written",
            Client::SharedIssuer,
            "read_store eventual",
            &[
                (Empty, "read_store"),
                (Empty, "take_lease"),
                (Lease(LeaseResult::Taken), "read_metadata"),
                (NoCopy, "send"),
                (Document, "write_metadata"),
                (Done, "send"),
                (Answer(200), "write_store"),
            ],
        ),
        (
            "an assertion is signed for each token request",
            Client::Jwt,
            "sign",
            &[
                (Signed, "send"),
                (Answer(503), "sleep retry"),
                (Slept, "sign"),
                (Signed, "send"),
                (Answer(200), "done network"),
            ],
        ),
        (
            "a signing that fails ends the attempt",
            Client::Jwt,
            "sign",
            &[(SignFailed, "fail config")],
        ),
    ];
    for (row, client, first, steps) in rows {
        run(row, *client, first, steps);
    }
}

#[test]
fn an_executor_out_of_order_gets_a_failure_not_a_panic() {
    // Polled twice without an outcome.
    let mut h = Harness::new(Client::Alone);
    assert_eq!(name(&h.poll()), "send");
    assert!(matches!(h.poll(), Effect::Fail { error } if error.message().contains("out of order")));
    // The wrong outcome for the effect.
    let mut h = Harness::new(Client::Shared);
    assert_eq!(name(&h.poll()), "read_store eventual");
    h.handle(Lease(LeaseResult::Taken));
    assert!(matches!(h.poll(), Effect::Fail { .. }));
    // Polled after the end.
    let mut h = Harness::new(Client::Alone);
    h.poll();
    h.handle(Answer(200));
    assert_eq!(name(&h.poll()), "done network");
    assert!(h.driver.is_over());
    assert!(matches!(h.poll(), Effect::Fail { .. }));
}

#[test]
fn the_events_tell_the_fetch_and_the_wait() {
    let mut h = Harness::new(Client::Shared);
    h.poll();
    h.handle(Empty);
    h.poll();
    h.handle(Leased);
    h.poll();
    let events = serde_json::to_value(h.driver.take_events()).unwrap();
    assert_eq!(events[0]["type"], "lease_wait");
    h.handle(Slept);
    h.poll();
    h.handle(Empty);
    h.poll();
    h.handle(Lease(LeaseResult::Taken));
    h.poll();
    h.handle(Answer(200));
    h.poll();
    let types: Vec<_> = serde_json::to_value(h.driver.take_events())
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(types, ["fetch_start", "fetch_ok"]);
}
