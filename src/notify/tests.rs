//! The stream's decisions, one table row per situation.

use super::*;
use crate::error::ErrorCode;

fn at(ms: f64) -> Now {
    Now {
        wall: 1_700_000_000_000.0 + ms,
        mono: ms,
    }
}

fn stream() -> Stream {
    Stream::new(vec![
        "v2.users.a.presence".into(),
        "v2.users.b.presence".into(),
    ])
    .unwrap()
}

/// Feeds `inputs` (at ms, rand, input) and returns the actions they gave.
fn run(stream: &mut Stream, inputs: Vec<(f64, f64, Input)>) -> Vec<Action> {
    let mut out = vec![];
    for (ms, rand, input) in inputs {
        stream.handle(at(ms), rand, input);
        out.extend(std::iter::from_fn(|| stream.poll()));
    }
    out
}

fn created(channel: u32, expires_in_ms: f64, now_ms: f64) -> Input {
    Input::Created {
        channel,
        expires: Some(at(now_ms).wall + expires_in_ms),
        server_date: None,
    }
}

const HOUR: f64 = 3_600_000.0;
const DAY: f64 = 24.0 * HOUR;

/// A stream whose channel 1 (a day's) is open at t=100.
fn open_stream() -> Stream {
    open_stream_for(DAY)
}

/// A stream whose channel 1, expiring `lifetime` ms after its making at t=10, is open at t=100.
fn open_stream_for(lifetime: f64) -> Stream {
    let mut s = stream();
    let first: Vec<_> = std::iter::from_fn(|| s.poll()).collect();
    assert_eq!(
        first,
        vec![Action::Create {
            channel: 1,
            timeout_ms: REST_TIMEOUT_MS
        }]
    );
    let actions = run(
        &mut s,
        vec![
            (10.0, 0.5, created(1, lifetime, 10.0)),
            (20.0, 0.5, Input::Subscribed { channel: 1 }),
            (100.0, 0.5, Input::Opened { channel: 1 }),
        ],
    );
    assert_eq!(
        actions,
        vec![
            Action::Subscribe {
                channel: 1,
                timeout_ms: REST_TIMEOUT_MS
            },
            Action::Connect { channel: 1 }
        ]
    );
    s
}

#[test]
fn a_stream_creates_subscribes_then_connects() {
    let s = open_stream();
    assert_eq!(s.wake_at(), Some(100.0 + SILENCE_MS));
}

#[test]
fn drops_closings_and_silence_reconnect_the_same_channel_after_the_jittered_back_off() {
    // (what happens, at ms, rand, the actions, when the reconnect is due)
    type Row = (&'static str, f64, f64, Input, Vec<Action>, f64);
    let rows: Vec<Row> = vec![
        (
            "a dropped socket",
            5_000.0,
            0.5,
            Input::Dropped { channel: 1 },
            vec![],
            5_000.0 + 250.0,
        ),
        (
            "socket_closing",
            5_000.0,
            1.0,
            Input::Heard {
                channel: 1,
                closing: true,
            },
            vec![Action::Disconnect { channel: 1 }],
            5_000.0 + 500.0,
        ),
        (
            "two minutes without a message",
            100.0 + SILENCE_MS,
            0.0,
            Input::Tick,
            vec![Action::Disconnect { channel: 1 }],
            100.0 + SILENCE_MS,
        ),
    ];
    for (what, ms, rand, input, actions, due) in rows {
        let mut s = open_stream();
        assert_eq!(run(&mut s, vec![(ms, rand, input)]), actions, "{what}");
        assert_eq!(s.wake_at(), Some(due), "{what}");
        assert_eq!(
            run(&mut s, vec![(due - 1.0, 0.5, Input::Tick)]),
            vec![],
            "{what}: not before"
        );
        assert_eq!(
            run(&mut s, vec![(due, 0.5, Input::Tick)]),
            vec![Action::Connect { channel: 1 }],
            "{what}"
        );
    }
}

#[test]
fn a_message_of_any_kind_postpones_the_silence_deadline() {
    let mut s = open_stream();
    run(
        &mut s,
        vec![(
            30_000.0,
            0.5,
            Input::Heard {
                channel: 1,
                closing: false,
            },
        )],
    );
    assert_eq!(s.wake_at(), Some(30_000.0 + SILENCE_MS));
    assert_eq!(
        run(&mut s, vec![(100.0 + SILENCE_MS, 0.5, Input::Tick)]),
        vec![]
    );
}

#[test]
fn the_back_off_doubles_to_a_minute_and_starts_over_after_a_connection_that_lived_a_minute() {
    let mut s = open_stream();
    let mut t = 1_000.0;
    let mut waits = vec![];
    for _ in 0..10 {
        run(&mut s, vec![(t, 0.999_999, Input::Dropped { channel: 1 })]);
        let due = s.wake_at().unwrap();
        waits.push(((due - t) / 100.0).round() * 100.0);
        run(
            &mut s,
            vec![
                (due, 0.5, Input::Tick),
                (due + 10.0, 0.5, Input::Opened { channel: 1 }),
            ],
        );
        t = due + 20.0;
    }
    let ceilings: Vec<f64> = [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]
        .iter()
        .map(|s| s * 1000.0)
        .collect();
    assert_eq!(waits, ceilings);
    // This connection lives a minute: the next wait is 0.5 s at most again.
    let t = t + 60_000.0;
    run(&mut s, vec![(t, 0.999_999, Input::Dropped { channel: 1 })]);
    assert!((s.wake_at().unwrap() - t - 500.0).abs() < 1.0);
}

#[test]
fn a_socket_that_will_not_open_is_checked_and_a_channel_the_server_lost_is_replaced() {
    let mut s = open_stream();
    let actions = run(
        &mut s,
        vec![
            (1_000.0, 0.0, Input::Dropped { channel: 1 }),
            (1_000.0, 0.0, Input::Tick),
            (1_050.0, 0.0, Input::Dropped { channel: 1 }),
            (
                1_100.0,
                0.0,
                Input::Known {
                    channel: 1,
                    known: false,
                },
            ),
            (1_100.0, 0.0, Input::Tick),
        ],
    );
    assert_eq!(
        actions,
        vec![
            Action::Connect { channel: 1 },
            Action::Verify {
                channel: 1,
                timeout_ms: REST_TIMEOUT_MS
            },
            Action::Forget { channel: 1 },
            Action::Create {
                channel: 2,
                timeout_ms: REST_TIMEOUT_MS
            },
        ]
    );
    // A late answer about channel 1 changes nothing.
    assert_eq!(
        run(&mut s, vec![(1_200.0, 0.0, Input::Opened { channel: 1 })]),
        vec![]
    );
}

#[test]
fn a_socket_that_hangs_while_opening_is_given_up_after_the_connect_timeout() {
    let mut s = open_stream();
    run(
        &mut s,
        vec![
            (1_000.0, 0.0, Input::Dropped { channel: 1 }),
            (1_000.0, 0.0, Input::Tick),
        ],
    );
    assert_eq!(
        run(
            &mut s,
            vec![(1_000.0 + CONNECT_TIMEOUT_MS, 0.0, Input::Tick)]
        ),
        vec![
            Action::Disconnect { channel: 1 },
            Action::Verify {
                channel: 1,
                timeout_ms: REST_TIMEOUT_MS
            }
        ]
    );
}

#[test]
fn a_rollover_opens_the_next_channel_before_forgetting_the_old_one() {
    let mut s = open_stream_for(100_000.0);
    // A channel of 100 s rolls over a fifth of its lifetime before it expires.
    let roll = 10.0 + 80_000.0;
    assert_eq!(
        run(
            &mut s,
            vec![(
                roll - 1.0,
                0.5,
                Input::Heard {
                    channel: 1,
                    closing: false
                }
            )]
        ),
        vec![]
    );
    let actions = run(
        &mut s,
        vec![
            (
                roll,
                0.5,
                Input::Heard {
                    channel: 1,
                    closing: false,
                },
            ),
            (roll + 10.0, 0.5, created(2, DAY, roll + 10.0)),
            (roll + 20.0, 0.5, Input::Subscribed { channel: 2 }),
        ],
    );
    assert_eq!(
        actions,
        vec![
            Action::Create {
                channel: 2,
                timeout_ms: REST_TIMEOUT_MS
            },
            Action::Subscribe {
                channel: 2,
                timeout_ms: REST_TIMEOUT_MS
            },
            Action::Connect { channel: 2 },
        ],
        "channel 1 stays open meanwhile"
    );
    assert_eq!(
        run(
            &mut s,
            vec![(roll + 30.0, 0.5, Input::Opened { channel: 2 })]
        ),
        vec![Action::Forget { channel: 1 }]
    );
}

#[test]
fn the_rollover_time_reads_the_lifetime_on_the_servers_clock() {
    // (expires in on our clock, the server's clock minus ours, the rollover after the making)
    let rows = [
        (DAY, None, DAY - ROLL_AHEAD_MAX_MS),
        (10_000.0, None, 8_000.0),
        (11_000.0, Some(0.0), 8_000.0), // `Date` is whole seconds: a second is taken off
        (10_000.0, Some(HOUR), ROLL_AFTER_MIN_MS), // by the server's clock, it has expired
        (HOUR + 11_000.0, Some(HOUR), 8_000.0), // our clock is an hour behind: no matter
        (11_000.0, Some(-HOUR), HOUR + 10_000.0 - ROLL_AHEAD_MAX_MS), // an hour ahead: no matter
        (-5_000.0, None, 48_000.0),     // past on our clock, no other: a minute's lifetime
    ];
    for (expires_in, server_minus_ours, after) in rows {
        let now = at(50.0);
        let date = server_minus_ours.map(|d| now.wall + d);
        let got = roll_at(now, Some(now.wall + expires_in), date);
        assert_eq!(
            got,
            Some(50.0 + after),
            "{expires_in} {server_minus_ours:?}"
        );
    }
    assert_eq!(roll_at(at(0.0), None, None), None);
}

#[test]
fn the_old_channel_lost_during_a_rollover_hands_over_to_the_next_one() {
    let mut s = open_stream_for(100_000.0);
    let roll = 10.0 + 80_000.0;
    run(
        &mut s,
        vec![(
            roll,
            0.5,
            Input::Heard {
                channel: 1,
                closing: false,
            },
        )],
    );
    let actions = run(
        &mut s,
        vec![
            (roll + 5.0, 0.0, Input::Dropped { channel: 1 }),
            (roll + 5.0, 0.0, Input::Tick),
            (roll + 6.0, 0.0, Input::Dropped { channel: 1 }),
            (
                roll + 7.0,
                0.0,
                Input::Known {
                    channel: 1,
                    known: false,
                },
            ),
            (roll + 8.0, 0.0, created(2, DAY, roll + 8.0)),
        ],
    );
    assert_eq!(
        actions,
        vec![
            Action::Connect { channel: 1 },
            Action::Verify {
                channel: 1,
                timeout_ms: REST_TIMEOUT_MS
            },
            Action::Forget { channel: 1 },
            Action::Subscribe {
                channel: 2,
                timeout_ms: REST_TIMEOUT_MS
            },
        ]
    );
}

#[test]
fn rest_failures_are_retried_after_the_back_off_and_retry_after_or_end_the_stream() {
    // (the answer to Subscribe, what follows at once, the wait before subscribing again)
    let refused = |status, retry_after_seconds: Option<f64>, detail: Option<&str>| Input::Refused {
        channel: 1,
        status,
        retry_after_seconds,
        detail: detail.map(str::to_owned),
    };
    let rows: Vec<(Input, Option<ErrorCode>, Option<f64>)> = vec![
        (refused(500, None, None), None, Some(250.0)),
        (refused(401, None, None), None, Some(250.0)),
        (refused(429, Some(7.0), None), None, Some(7_000.0)),
        (
            Input::Unreachable {
                channel: 1,
                retryable: true,
            },
            None,
            Some(250.0),
        ),
        (
            refused(400, None, Some("no such topic v2.users.b.presence")),
            Some(ErrorCode::Config),
            None,
        ),
        (
            refused(403, None, None),
            Some(ErrorCode::AccessDenied),
            None,
        ),
    ];
    for (input, code, wait) in rows {
        let mut s = stream();
        run(
            &mut s,
            vec![(0.0, 0.5, Input::Tick), (10.0, 0.5, created(1, DAY, 10.0))],
        );
        let actions = run(&mut s, vec![(20.0, 0.5, input.clone())]);
        match code {
            Some(code) => {
                let Some(Action::Fail { error: Some(error) }) = actions.last() else {
                    panic!("{input:?}: {actions:?}")
                };
                assert_eq!(error.code, code);
                assert!(s.failed() && s.wake_at().is_none());
            }
            None => {
                assert_eq!(actions, vec![], "{input:?}");
                assert_eq!(s.wake_at(), Some(20.0 + wait.unwrap()), "{input:?}");
                assert_eq!(
                    run(&mut s, vec![(20.0 + wait.unwrap(), 0.5, Input::Tick)]),
                    vec![Action::Subscribe {
                        channel: 1,
                        timeout_ms: REST_TIMEOUT_MS
                    }]
                );
            }
        }
    }
}

#[test]
fn a_400_on_subscribing_names_the_topic_and_never_the_servers_text() {
    let mut s = stream();
    let actions = run(
        &mut s,
        vec![
            (10.0, 0.5, created(1, DAY, 10.0)),
            (
                20.0,
                0.5,
                Input::Refused {
                    channel: 1,
                    status: 400,
                    retry_after_seconds: None,
                    detail: Some("<script>v2.users.b.presence is not a topic".into()),
                },
            ),
        ],
    );
    let Some(Action::Fail { error: Some(error) }) = actions.last() else {
        panic!()
    };
    let message = error.message();
    assert!(message.contains("\"v2.users.b.presence\""), "{message}");
    assert!(
        !message.contains("v2.users.a.presence") && !message.contains("script"),
        "{message}"
    );
    assert!(!error.retryable);
    // Nothing follows: no retry loop.
    assert_eq!(run(&mut s, vec![(1e9, 0.5, Input::Tick)]), vec![]);
}

#[test]
fn an_unreachable_server_with_a_final_error_ends_the_stream_with_that_error() {
    let mut s = stream();
    s.poll();
    let actions = run(
        &mut s,
        vec![(
            10.0,
            0.5,
            Input::Unreachable {
                channel: 1,
                retryable: false,
            },
        )],
    );
    assert_eq!(
        actions,
        vec![Action::Forget { channel: 1 }, Action::Fail { error: None }]
    );
}

#[test]
fn topics_are_checked_before_anything_is_sent() {
    for topics in [
        vec![],
        vec!["".to_owned()],
        vec!["a b".to_owned()],
        vec!["a\nb".to_owned()],
    ] {
        let error = Stream::new(topics.clone()).unwrap_err();
        assert_eq!(error.code, ErrorCode::Config, "{topics:?}");
    }
    assert!(Stream::new(vec!["x".into(); MAX_TOPICS + 1]).is_err());
}

#[test]
fn stale_inputs_change_nothing() {
    let mut s = open_stream();
    let before = format!("{s:?}");
    let actions = run(
        &mut s,
        vec![
            (200.0, 0.5, Input::Subscribed { channel: 1 }),
            (200.0, 0.5, created(1, DAY, 200.0)),
            (200.0, 0.5, Input::Opened { channel: 9 }),
            (
                200.0,
                0.5,
                Input::Known {
                    channel: 1,
                    known: false,
                },
            ),
        ],
    );
    assert_eq!(actions, vec![]);
    assert_eq!(format!("{s:?}"), before);
}

#[test]
fn a_tick_at_the_deadline_always_acts_so_the_next_one_is_later() {
    // Deadlines come back as `at - now` timers and are added again: rounding must not stall.
    for opened in [21_060.533_511_106_925, 4_136_771.4, 0.1 + 0.2, 123.456_789] {
        let mut s = stream();
        run(
            &mut s,
            vec![
                (opened - 3.0, 0.5, created(1, DAY, opened - 3.0)),
                (opened - 2.0, 0.5, Input::Subscribed { channel: 1 }),
                (opened, 0.5, Input::Opened { channel: 1 }),
            ],
        );
        let due = s.wake_at().unwrap();
        let tick = opened + (due - opened); // as a timer of `due - now` lands
        run(&mut s, vec![(tick, 0.5, Input::Tick)]);
        assert!(s.wake_at().unwrap() > tick, "{opened}");
    }
}
