//! One Genesys Cloud notification stream, sans-IO (docs/DESIGN.md,
//! "Notifications"): which channel to create, subscribe, connect, verify,
//! disconnect or forget, and when. The executor (deno/_notify_executor.ts)
//! performs each [`Action`] and reports what happened as an [`Input`];
//! [`Stream::wake_at`] says when the stream needs a [`Input::Tick`] even if
//! nothing happens. Time ([`Now`]) and randomness come in as arguments.
//!
//! A stream holds at most two channels: the `current` one, whose socket
//! delivers events, and during a rollover the `next` one, made, subscribed
//! and opened before `current` is forgotten, so that no moment passes
//! without an open socket (events may then arrive twice: at least once).

mod backoff;
#[cfg(test)]
mod boundary_tests;
#[cfg(not(target_arch = "wasm32"))]
pub mod sim;
#[cfg(test)]
mod tests;

use crate::clock::Now;
use crate::error::{ErrorCode, TokenError};
pub use backoff::Backoff;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// No message at all (heartbeats come about every 30 s) for this long: the socket is dead.
pub const SILENCE_MS: f64 = 120_000.0;
/// A socket that has not opened after this long is given up and tried again.
pub const CONNECT_TIMEOUT_MS: f64 = 30_000.0;
/// The longest a REST call of the stream (create, subscribe, verify) may take.
pub const REST_TIMEOUT_MS: f64 = 30_000.0;
/// A rollover starts at most this long before the channel expires…
pub const ROLL_AHEAD_MAX_MS: f64 = 600_000.0;
/// …and at least this long after the channel was made, whatever its `expires` says.
pub const ROLL_AFTER_MIN_MS: f64 = 1_000.0;
/// An HTTP `Date` is whole seconds.
pub const DATE_RESOLUTION_MS: f64 = 1_000.0;
/// The lifetime taken for a channel whose `expires` is already past on our clock, with no server clock to read it on.
pub const ROLL_UNSURE_MS: f64 = 60_000.0;
/// The most topics one channel takes (Genesys Cloud's limit).
pub const MAX_TOPICS: usize = 1000;

/// A channel, as the core numbers them: the executor maps it to the
/// server's channel id and `connectUri`.
pub type ChannelRef = u32;

/// What the executor does next.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(
    tag = "type",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum Action {
    /// `POST /api/v2/notifications/channels`; answer [`Input::Created`].
    Create {
        /// The channel this makes.
        channel: ChannelRef,
        /// Give up on the call after this long (an [`Input::Unreachable`] `timeout`).
        timeout_ms: f64,
    },
    /// `PUT …/channels/{id}/subscriptions` with every topic; answer [`Input::Subscribed`].
    Subscribe {
        /// The channel.
        channel: ChannelRef,
        /// As for [`Action::Create`].
        timeout_ms: f64,
    },
    /// Open a WebSocket on the channel's `connectUri`; answer [`Input::Opened`] or [`Input::Dropped`].
    Connect {
        /// The channel.
        channel: ChannelRef,
    },
    /// `HEAD …/channels/{id}`: does the server still know the channel? Answer [`Input::Known`].
    Verify {
        /// The channel.
        channel: ChannelRef,
        /// As for [`Action::Create`].
        timeout_ms: f64,
    },
    /// Close the channel's socket, if open, and keep the channel: it is connected again later.
    Disconnect {
        /// The channel.
        channel: ChannelRef,
    },
    /// Close the channel's socket, if open, and forget the channel.
    Forget {
        /// The channel.
        channel: ChannelRef,
    },
    /// End the stream: with `error`, or (absent) with the error the executor last reported.
    Fail {
        /// Why, when the core says it; absent after [`Input::Unreachable`].
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<TokenError>,
    },
}

/// What happened, as the executor tells it.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
#[serde(deny_unknown_fields)]
pub enum Input {
    /// Nothing but time passing (the moment [`Stream::wake_at`] named, or any other).
    Tick,
    /// The channel was made (a 2xx to [`Action::Create`]).
    Created {
        /// The channel.
        channel: ChannelRef,
        /// Its `expires`, epoch ms, when the answer had one.
        expires: Option<f64>,
        /// The answer's `Date`, epoch ms: the server's clock, when it sent one.
        server_date: Option<f64>,
    },
    /// The topics are subscribed (a 2xx to [`Action::Subscribe`]).
    Subscribed {
        /// The channel.
        channel: ChannelRef,
    },
    /// The socket is open.
    Opened {
        /// The channel.
        channel: ChannelRef,
    },
    /// A message arrived on the channel's socket (an event, a heartbeat, anything).
    Heard {
        /// The channel.
        channel: ChannelRef,
        /// It was `v2.system.socket_closing`: the server is about to close the socket.
        closing: bool,
    },
    /// The socket closed, or did not open, without the core asking.
    Dropped {
        /// The channel.
        channel: ChannelRef,
    },
    /// The answer to [`Action::Verify`].
    Known {
        /// The channel.
        channel: ChannelRef,
        /// The server knows it (2xx); false on a 404.
        known: bool,
    },
    /// A REST call of the channel was answered with an HTTP error status.
    Refused {
        /// The channel.
        channel: ChannelRef,
        /// The status.
        status: u16,
        /// The answer's `Retry-After`, seconds.
        retry_after_seconds: Option<f64>,
        /// The answer's text, only read to tell which topic a 400 is about (never shown).
        detail: Option<String>,
    },
    /// A REST call of the channel got no answer (or its token could not be had).
    Unreachable {
        /// The channel.
        channel: ChannelRef,
        /// Whether trying again later can help (the error's `retryable`).
        retryable: bool,
    },
}

/// An [`Input`] as the executor writes it (`NotifyInput` in pkg/freshtoken.d.ts):
/// one flat record, so that reading it takes little code in the wasm.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InputRecord {
    /// The input's name, e.g. `"created"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The channel it is about.
    pub channel: Option<ChannelRef>,
    /// `created`: its `expires`.
    pub expires: Option<f64>,
    /// `created`: the answer's `Date`.
    pub server_date: Option<f64>,
    /// `heard`: it was `socket_closing`.
    pub closing: Option<bool>,
    /// `known`: the server knows the channel.
    pub known: Option<bool>,
    /// `refused`: the status.
    pub status: Option<u16>,
    /// `refused`: its `Retry-After`.
    pub retry_after_seconds: Option<f64>,
    /// `refused`: its text.
    pub detail: Option<String>,
    /// `unreachable`: the error's `retryable`.
    pub retryable: Option<bool>,
}

impl InputRecord {
    /// The input, if the record is one (its name known, its fields there).
    pub fn input(self) -> Option<Input> {
        let channel = self.channel;
        Some(match self.kind.as_str() {
            "tick" => Input::Tick,
            "created" => Input::Created {
                channel: channel?,
                expires: self.expires,
                server_date: self.server_date,
            },
            "subscribed" => Input::Subscribed { channel: channel? },
            "opened" => Input::Opened { channel: channel? },
            "heard" => Input::Heard {
                channel: channel?,
                closing: self.closing?,
            },
            "dropped" => Input::Dropped { channel: channel? },
            "known" => Input::Known {
                channel: channel?,
                known: self.known?,
            },
            "refused" => Input::Refused {
                channel: channel?,
                status: self.status?,
                retry_after_seconds: self.retry_after_seconds,
                detail: self.detail,
            },
            "unreachable" => Input::Unreachable {
                channel: channel?,
                retryable: self.retryable?,
            },
            _ => return None,
        })
    }
}

/// Where a channel is.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    /// `Create` sent.
    Creating,
    /// `Subscribe` sent.
    Subscribing,
    /// `Connect` sent at `since` (mono).
    Connecting { since: f64 },
    /// `Verify` sent.
    Verifying,
    /// The socket opened at `since`; a message last came at `heard` (mono).
    Open { since: f64, heard: f64 },
    /// Backing off until `until` (mono), then `then`.
    Waiting { until: f64, then: Step },
}

/// What a channel does once a back-off is over.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Step {
    Create,
    Subscribe,
    Connect,
}

/// A channel of the stream.
#[derive(Clone, Debug, PartialEq)]
struct Channel {
    id: ChannelRef,
    phase: Phase,
    /// When its successor is started (mono); known once made.
    roll_at: Option<f64>,
}

/// Which of the stream's two channels.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Slot {
    Current,
    Next,
}

/// One notification stream's decisions.
#[derive(Debug)]
pub struct Stream {
    topics: Vec<String>,
    current: Option<Channel>,
    next: Option<Channel>,
    numbered: ChannelRef,
    backoff: Backoff,
    out: VecDeque<Action>,
    failed: bool,
}

impl Stream {
    /// A stream of `topics` (checked: one to [`MAX_TOPICS`] names, each
    /// non-empty, without white space or control characters). It starts by
    /// creating its first channel.
    pub fn new(topics: Vec<String>) -> Result<Self, TokenError> {
        check_topics(&topics)?;
        let mut stream = Self {
            topics,
            current: None,
            next: None,
            numbered: 0,
            backoff: Backoff::default(),
            out: VecDeque::new(),
            failed: false,
        };
        stream.current = Some(stream.create());
        Ok(stream)
    }

    /// The next action to perform, in order.
    pub fn poll(&mut self) -> Option<Action> {
        self.out.pop_front()
    }

    /// When (mono) the stream needs a [`Input::Tick`] if nothing else
    /// happens first; `None` once it failed.
    pub fn wake_at(&self) -> Option<f64> {
        if self.failed {
            return None;
        }
        let roll = match &self.next {
            None => self.current.as_ref().and_then(|c| c.roll_at),
            Some(_) => None,
        };
        [self.current.as_ref(), self.next.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(|c| deadline(c.phase))
            .chain(roll)
            .reduce(f64::min)
    }

    /// Takes what happened at `now`; `rand` in `[0, 1)` draws any back-off
    /// it starts. Timers that are due run first. An input about a channel
    /// the stream no longer has, or in a phase that does not expect it, is
    /// stale and ignored.
    pub fn handle(&mut self, now: Now, rand: f64, input: Input) {
        if self.failed {
            return;
        }
        self.on_timers(now, rand);
        if let Some(channel) = input_channel(&input) {
            if let Some(slot) = self.slot_of(channel) {
                self.on_input(slot, now, rand, input);
            }
        }
    }

    /// Whether the stream has ended with [`Action::Fail`].
    pub fn failed(&self) -> bool {
        self.failed
    }

    fn on_input(&mut self, slot: Slot, now: Now, rand: f64, input: Input) {
        let phase = self.channel(slot).phase;
        match (phase, input) {
            (
                Phase::Creating,
                Input::Created {
                    expires,
                    server_date,
                    ..
                },
            ) => {
                let roll_at = roll_at(now, expires, server_date);
                let channel = self.channel_mut(slot);
                channel.roll_at = roll_at;
                self.subscribe(slot);
            }
            (Phase::Subscribing, Input::Subscribed { .. }) => self.connect(slot, now),
            (Phase::Connecting { .. }, Input::Opened { .. }) => self.opened(slot, now),
            (Phase::Open { since, .. }, Input::Heard { closing, .. }) => {
                self.channel_mut(slot).phase = Phase::Open {
                    since,
                    heard: now.mono,
                };
                if closing {
                    // DESIGN.md "Notifications": the server rebalances; same channel, after the back-off.
                    self.disconnect(slot, now, rand, since);
                }
            }
            (Phase::Open { since, .. }, Input::Dropped { .. }) => {
                self.reconnect_later(slot, now, rand, since)
            }
            (Phase::Connecting { .. }, Input::Dropped { .. }) => {
                // It would not open: the server may have dropped the channel (evicted, expired).
                self.verify(slot);
            }
            (Phase::Verifying, Input::Known { known: true, .. }) => {
                self.wait(slot, now, rand, None, Step::Connect)
            }
            (Phase::Verifying, Input::Known { known: false, .. }) => self.gone(slot, now, rand),
            (Phase::Creating | Phase::Subscribing | Phase::Verifying, input) => {
                self.rest_failed(slot, phase, now, rand, input)
            }
            _ => {} // stale: an answer to something the stream has moved on from
        }
    }

    /// A REST call of the channel failed: retry later, replace it, or give up.
    fn rest_failed(&mut self, slot: Slot, phase: Phase, now: Now, rand: f64, input: Input) {
        let retry = match phase {
            Phase::Creating => Step::Create,
            Phase::Subscribing => Step::Subscribe,
            _ => Step::Connect, // a verification that failed: try the socket again
        };
        match input {
            Input::Refused {
                status: 400,
                detail,
                ..
            } if phase == Phase::Subscribing => {
                self.fail(Some(refused_topics(&self.topics, detail.as_deref())))
            }
            Input::Refused { status: 404, .. } if phase != Phase::Creating => {
                self.gone(slot, now, rand)
            }
            Input::Refused { status, .. } if !retried_status(status) => {
                self.fail(Some(refused(status, phase)))
            }
            Input::Refused {
                retry_after_seconds,
                ..
            } => {
                let floor = retry_after_seconds.map(|s| s * 1000.0);
                self.wait(slot, now, rand, floor, retry)
            }
            Input::Unreachable {
                retryable: true, ..
            } => self.wait(slot, now, rand, None, retry),
            Input::Unreachable { .. } => self.fail(None),
            _ => {}
        }
    }

    fn on_timers(&mut self, now: Now, rand: f64) {
        for slot in [Slot::Current, Slot::Next] {
            let Some(channel) = self.slot(slot) else {
                continue;
            };
            match channel.phase {
                Phase::Waiting { until, then } if now.mono >= until => match then {
                    Step::Create => self.start(slot, Phase::Creating),
                    Step::Subscribe => self.subscribe(slot),
                    Step::Connect => self.connect(slot, now),
                },
                // Compared as `deadline` computes it, so that its moment always acts.
                Phase::Open { since, heard } if now.mono >= heard + SILENCE_MS => {
                    self.disconnect(slot, now, rand, since)
                }
                Phase::Connecting { since } if now.mono >= since + CONNECT_TIMEOUT_MS => {
                    self.out.push_back(Action::Disconnect {
                        channel: channel.id,
                    });
                    self.verify(slot);
                }
                _ => {}
            }
        }
        let due = self
            .current
            .as_ref()
            .and_then(|c| c.roll_at)
            .is_some_and(|at| now.mono >= at);
        if due && self.next.is_none() {
            // DESIGN.md "Notifications": the successor is made before the channel expires.
            self.next = Some(self.create());
        }
    }

    /// A new channel, its `Create` sent.
    fn create(&mut self) -> Channel {
        self.numbered += 1;
        self.out.push_back(Action::Create {
            channel: self.numbered,
            timeout_ms: REST_TIMEOUT_MS,
        });
        Channel {
            id: self.numbered,
            phase: Phase::Creating,
            roll_at: None,
        }
    }

    fn start(&mut self, slot: Slot, phase: Phase) {
        match phase {
            Phase::Creating => {
                // A new number: an answer to an abandoned attempt stays stale.
                let old = self.channel(slot).id;
                self.out.push_back(Action::Forget { channel: old });
                *self.slot_mut(slot) = Some(self.create());
            }
            _ => self.channel_mut(slot).phase = phase,
        }
    }

    fn subscribe(&mut self, slot: Slot) {
        let channel = self.channel_mut(slot);
        channel.phase = Phase::Subscribing;
        let channel = channel.id;
        self.out.push_back(Action::Subscribe {
            channel,
            timeout_ms: REST_TIMEOUT_MS,
        });
    }

    fn connect(&mut self, slot: Slot, now: Now) {
        let channel = self.channel_mut(slot);
        channel.phase = Phase::Connecting { since: now.mono };
        let channel = channel.id;
        self.out.push_back(Action::Connect { channel });
    }

    fn verify(&mut self, slot: Slot) {
        let channel = self.channel_mut(slot);
        channel.phase = Phase::Verifying;
        let channel = channel.id;
        self.out.push_back(Action::Verify {
            channel,
            timeout_ms: REST_TIMEOUT_MS,
        });
    }

    /// The socket is open. A rollover ends here: the old channel goes only now.
    fn opened(&mut self, slot: Slot, now: Now) {
        self.channel_mut(slot).phase = Phase::Open {
            since: now.mono,
            heard: now.mono,
        };
        if slot == Slot::Next {
            let old = self
                .current
                .take()
                .expect("a rollover has a current channel");
            self.out.push_back(Action::Forget { channel: old.id });
            self.current = self.next.take();
        }
    }

    /// We close the socket (silence, `socket_closing`) and connect again after the back-off.
    fn disconnect(&mut self, slot: Slot, now: Now, rand: f64, since: f64) {
        let channel = self.channel(slot).id;
        self.out.push_back(Action::Disconnect { channel });
        self.reconnect_later(slot, now, rand, since);
    }

    /// A connection opened at `since` ended: connect again after the back-off,
    /// which starts over if that connection lived long enough.
    fn reconnect_later(&mut self, slot: Slot, now: Now, rand: f64, since: f64) {
        self.backoff.connection_ended(now.mono - since);
        self.wait(slot, now, rand, None, Step::Connect);
    }

    /// The server no longer knows the channel: a successor replaces it.
    fn gone(&mut self, slot: Slot, now: Now, rand: f64) {
        if slot == Slot::Current && self.next.is_some() {
            // A rollover is under way: its channel takes over now.
            let old = self.channel(slot).id;
            self.out.push_back(Action::Forget { channel: old });
            self.current = self.next.take();
            return;
        }
        // Its successor is made anew, not rolled over to: the old schedule goes.
        self.channel_mut(slot).roll_at = None;
        self.wait(slot, now, rand, None, Step::Create);
    }

    /// Back off (never less than `floor_ms`, a server's `Retry-After`), then `then`.
    fn wait(&mut self, slot: Slot, now: Now, rand: f64, floor_ms: Option<f64>, then: Step) {
        let delay = self.backoff.next_delay(rand).max(floor_ms.unwrap_or(0.0));
        self.channel_mut(slot).phase = Phase::Waiting {
            until: now.mono + delay,
            then,
        };
    }

    fn fail(&mut self, error: Option<TokenError>) {
        self.failed = true;
        for channel in [self.current.take(), self.next.take()]
            .into_iter()
            .flatten()
        {
            self.out.push_back(Action::Forget {
                channel: channel.id,
            });
        }
        self.out.push_back(Action::Fail { error });
    }

    fn slot_of(&self, id: ChannelRef) -> Option<Slot> {
        [Slot::Current, Slot::Next]
            .into_iter()
            .find(|&slot| self.slot(slot).is_some_and(|c| c.id == id))
    }

    fn slot(&self, slot: Slot) -> Option<&Channel> {
        match slot {
            Slot::Current => self.current.as_ref(),
            Slot::Next => self.next.as_ref(),
        }
    }

    fn slot_mut(&mut self, slot: Slot) -> &mut Option<Channel> {
        match slot {
            Slot::Current => &mut self.current,
            Slot::Next => &mut self.next,
        }
    }

    fn channel(&self, slot: Slot) -> &Channel {
        self.slot(slot).expect("the slot holds a channel")
    }

    fn channel_mut(&mut self, slot: Slot) -> &mut Channel {
        self.slot_mut(slot)
            .as_mut()
            .expect("the slot holds a channel")
    }
}

/// The moment a channel in `phase` needs attention by itself (mono).
fn deadline(phase: Phase) -> Option<f64> {
    match phase {
        Phase::Waiting { until, .. } => Some(until),
        Phase::Open { heard, .. } => Some(heard + SILENCE_MS),
        Phase::Connecting { since } => Some(since + CONNECT_TIMEOUT_MS),
        _ => None,
    }
}

fn input_channel(input: &Input) -> Option<ChannelRef> {
    match input {
        Input::Tick => None,
        Input::Created { channel, .. }
        | Input::Subscribed { channel }
        | Input::Opened { channel }
        | Input::Heard { channel, .. }
        | Input::Dropped { channel }
        | Input::Known { channel, .. }
        | Input::Refused { channel, .. }
        | Input::Unreachable { channel, .. } => Some(*channel),
    }
}

/// When (mono) a channel made at `now` that expires at `expires` (wall) is
/// rolled over: a fifth of its lifetime before the end, at most ten
/// minutes before. The lifetime is read on the server's clock (its `Date`),
/// the one `expires` was stamped with (a second later than it says, at
/// worst): ours may be off, or jump. Without
/// it, ours is used, and a lifetime that makes no sense on it (already
/// over) is taken as a minute's; the rollover never comes sooner than
/// [`ROLL_AFTER_MIN_MS`] after the making, so a bad clock cannot make a
/// loop of rollovers. Without `expires`, the channel is never rolled over.
fn roll_at(now: Now, expires: Option<f64>, server_date: Option<f64>) -> Option<f64> {
    let expires = expires.filter(|e| e.is_finite())?;
    let lifetime = match server_date.filter(|d| d.is_finite()) {
        // `Date` is whole seconds: the server's time may be up to a second past it.
        Some(date) => expires - (date + DATE_RESOLUTION_MS),
        None => Some(expires - now.wall)
            .filter(|&l| l > 0.0)
            .unwrap_or(ROLL_UNSURE_MS),
    };
    let ahead = (lifetime / 5.0).min(ROLL_AHEAD_MAX_MS);
    Some(now.mono + (lifetime - ahead).max(ROLL_AFTER_MIN_MS))
}

/// Statuses of the stream's REST calls worth trying again after a back-off.
fn retried_status(status: u16) -> bool {
    // 401: the client has already refreshed its token once; 408, 409, 429, 5xx: transient.
    matches!(status, 401 | 408 | 409 | 425 | 429) || status >= 500
}

/// A 400 on subscribing: a `config` error naming the topics it is about.
/// The answer's text is only searched for our own topic names, never shown.
fn refused_topics(topics: &[String], detail: Option<&str>) -> TokenError {
    let named: Vec<&str> = topics
        .iter()
        .map(String::as_str)
        .filter(|t| detail.is_some_and(|d| d.contains(t)))
        .collect();
    let (shown, which) = match named.is_empty() {
        true => (
            topics.iter().map(String::as_str).collect(),
            "one of the topics",
        ),
        false => (named, "the topic"),
    };
    let list = shown
        .iter()
        .map(|t| format!("\"{t}\""))
        .collect::<Vec<_>>()
        .join(", ");
    TokenError::new(
        ErrorCode::Config,
        format!("Genesys Cloud refused to subscribe {which} {list}: unknown, misspelt, or not permitted to this client"),
    )
    .with_status(400)
}

/// A REST call refused for good (403, say).
fn refused(status: u16, phase: Phase) -> TokenError {
    let what = match phase {
        Phase::Creating => "creating a notification channel",
        Phase::Subscribing => "subscribing the topics",
        _ => "checking the notification channel",
    };
    let code = match status {
        403 => ErrorCode::AccessDenied,
        _ => ErrorCode::InvalidRequest,
    };
    let mut error =
        TokenError::new(code, format!("Genesys Cloud refused {what}")).with_status(status);
    error.retryable = false;
    error
}

/// One to [`MAX_TOPICS`] topic names, each a non-empty run of visible characters.
fn check_topics(topics: &[String]) -> Result<(), TokenError> {
    if topics.is_empty() || topics.len() > MAX_TOPICS {
        return Err(TokenError::new(
            ErrorCode::Config,
            format!("topics must list 1 to {MAX_TOPICS} topic names"),
        ));
    }
    match topics
        .iter()
        .position(|t| t.is_empty() || t.len() > 500 || t.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        Some(at) => Err(TokenError::new(
            ErrorCode::Config,
            format!("topics[{at}] must be a topic name such as \"v2.users.{{id}}.presence\" (no spaces or control characters)"),
        )),
        None => Ok(()),
    }
}
