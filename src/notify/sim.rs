//! The notification stream's simulator (docs/DESIGN.md, "Notifications"):
//! one [`Stream`] against a simulated Genesys-like server in one seeded
//! process, with drops, silences, `socket_closing` storms, evictions, REST
//! failures (401s of an expired token mid-rollover among them), clock
//! jumps and refused topics. Invariants are checked at every step; a
//! failing seed replays exactly (`scripts/simulate_notify.sh 1 SEED`).
//!
//! The invariants, from what the server and the consumer can observe:
//! 1. no gap across a rollover: the stream never closes a healthy open
//!    socket unless another of its sockets is open;
//! 2. no channel expires under the stream's only open socket unless a
//!    fault hit its rollover window;
//! 3. waits follow the back-off: after a failure, the channel's next call
//!    comes within the back-off's ceiling (or the server's `Retry-After`),
//!    never sooner than the failure's draw of the first ceiling, and within
//!    the first ceiling after a connection that lived a minute;
//! 4. no tight loop: the stream's next deadline is always ahead of now, and
//!    no minute holds more than [`MAX_CALLS_PER_MINUTE`] calls;
//! 5. it recovers: a quiet spell after the last fault ends with an open
//!    socket on a channel the server knows;
//! 6. a refused topic ends the stream with a `config` error naming it, and
//!    nothing is sent after.

use super::backoff::{BASE_MS, MAX_MS, RESET_AFTER_MS};
use super::{Action, ChannelRef, Input, Stream, ROLL_AHEAD_MAX_MS, SILENCE_MS};
use crate::clock::Now;
use crate::error::ErrorCode;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, VecDeque};

/// More calls (REST and connects) than this in any minute is a tight loop.
pub const MAX_CALLS_PER_MINUTE: usize = 40;
/// Heartbeats, as Genesys sends them.
const HEARTBEAT_MS: f64 = 30_000.0;
/// The quiet spell that ends every run.
const QUIET_MS: f64 = 10.0 * 60_000.0;
/// The wall clock's origin.
const EPOCH: f64 = 1_800_000_000_000.0;
/// A topic the server refuses.
const BAD_TOPIC: &str = "v2.users.nobody.presence";

/// What one run saw.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Events the server sent while the stream had a healthy open socket.
    pub events_sent: u64,
    /// Distinct events the consumer got.
    pub events_received: u64,
    /// Sockets the stream opened after its first.
    pub reconnects: u64,
    /// Rollovers completed.
    pub rollovers: u64,
    /// Faults injected.
    pub faults: u64,
    /// The longest time without a healthy open socket, after the first opened (ms).
    pub longest_gap_ms: f64,
    /// The first invariant violated, with the last steps before it.
    pub violation: Option<String>,
}

/// A small seeded generator (SplitMix64): one seed, one run.
struct Dice(u64);

impl Dice {
    fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
    fn between(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.uniform()
    }
    fn chance(&mut self, p: f64) -> bool {
        self.uniform() < p
    }
}

/// Something the world does at a moment.
#[derive(Clone, Debug)]
enum Happening {
    /// The stream's own deadline (stale unless `generation` is the latest).
    Wake { generation: u64 },
    /// An answer reaches the stream.
    Answer(Input),
    /// The server's heartbeat on a socket.
    Heartbeat { socket: usize },
    /// The server publishes an event on every subscribed channel.
    Publish,
    /// A socket's handshake ends.
    Open { socket: usize },
    /// A channel reaches its `expires`.
    Expire { channel: usize },
    /// A fault.
    Fault(Fault),
    /// The server closes a socket after its `socket_closing`.
    CloseAfterClosing { socket: usize },
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    Drop,
    Silence,
    ClosingStorm { left: u32 },
    Evict,
    RestTrouble { ms: f64 },
    ClockJump { ms: f64 },
}

struct Scheduled {
    at: f64,
    order: u64,
    what: Happening,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    // The earliest first (a max-heap, reversed), then in the order scheduled.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .at
            .total_cmp(&self.at)
            .then(other.order.cmp(&self.order))
    }
}

/// A channel as the server keeps it.
struct ServerChannel {
    expires: f64,
    lifetime: f64,
    known: bool,
    subscribed: bool,
}

/// A socket as the server keeps it.
struct Socket {
    channel: usize,
    stream_ref: ChannelRef,
    open: bool,
    opened_at: f64,
    silent: bool,
    /// The stream closed it (perhaps before it opened).
    abandoned: bool,
}

/// The stream's executor's record of a channel.
#[derive(Default)]
struct Held {
    server: Option<usize>,
    socket: Option<usize>,
    /// When its last failure came, for invariant 3, and the most it may wait.
    failed_at: Option<(f64, f64)>,
    /// When the last failure that starts a back-off came, the least the
    /// back-off may wait (its draw of the smallest ceiling), and the most
    /// after a connection that lived a minute (invariant 3).
    backoff: Option<(f64, f64, Option<f64>)>,
}

struct World {
    dice: Dice,
    now: f64,
    /// Our wall clock minus the true time.
    skew: f64,
    order: u64,
    queue: BinaryHeap<Scheduled>,
    stream: Stream,
    generation: u64,
    channels: Vec<ServerChannel>,
    sockets: Vec<Socket>,
    held: HashMap<ChannelRef, Held>,
    lifetime: f64,
    send_date: bool,
    refuse_topic: bool,
    rest_trouble_until: f64,
    last_fault: f64,
    faults_until: f64,
    next_event: u64,
    received: Vec<bool>,
    calls: VecDeque<f64>,
    gap_since: Option<f64>,
    ever_open: bool,
    trace: VecDeque<String>,
    report: Report,
    done: bool,
}

/// Runs seed `seed` to its end or its first violation.
pub fn run(seed: u64) -> Report {
    let mut dice = Dice(seed);
    let lifetime = dice.between(5.0, 60.0) * 60_000.0;
    let refuse_topic = dice.chance(0.02);
    let mut topics = vec!["v2.users.a.presence".to_owned()];
    if refuse_topic {
        topics.push(BAD_TOPIC.to_owned());
    }
    let stream = Stream::new(topics).expect("the topics are good names");
    let mut world = World {
        send_date: dice.chance(0.9),
        dice,
        now: 0.0,
        skew: 0.0,
        order: 0,
        queue: BinaryHeap::new(),
        stream,
        generation: 0,
        channels: vec![],
        sockets: vec![],
        held: HashMap::new(),
        lifetime,
        refuse_topic,
        rest_trouble_until: 0.0,
        last_fault: f64::NEG_INFINITY,
        faults_until: 4.0 * lifetime,
        next_event: 0,
        received: vec![],
        calls: VecDeque::new(),
        gap_since: None,
        ever_open: false,
        trace: VecDeque::new(),
        report: Report::default(),
        done: false,
    };
    world.plan_faults();
    let first = world.dice.between(1_000.0, 20_000.0);
    world.at(first, Happening::Publish);
    world.perform();
    world.run();
    world.finish();
    world.report
}

/// Runs `count` seeds from `first`: the sums of their reports, and the failing seeds.
pub fn run_many(first: u64, count: u64) -> (Report, Vec<(u64, String)>) {
    let mut total = Report::default();
    let mut failing = vec![];
    for seed in first..first + count {
        let report = run(seed);
        total.events_sent += report.events_sent;
        total.events_received += report.events_received;
        total.reconnects += report.reconnects;
        total.rollovers += report.rollovers;
        total.faults += report.faults;
        total.longest_gap_ms = total.longest_gap_ms.max(report.longest_gap_ms);
        if let Some(violation) = report.violation {
            failing.push((seed, violation));
        }
    }
    (total, failing)
}

impl World {
    fn at(&mut self, delay: f64, what: Happening) {
        self.order += 1;
        self.queue.push(Scheduled {
            at: self.now + delay,
            order: self.order,
            what,
        });
    }

    fn clock(&self) -> Now {
        Now {
            wall: EPOCH + self.now + self.skew,
            mono: self.now,
        }
    }

    fn note(&mut self, line: String) {
        if self.trace.len() == 60 {
            self.trace.pop_front();
        }
        self.trace.push_back(format!("{:>12.1} {line}", self.now));
    }

    fn violate(&mut self, what: &str) {
        if self.report.violation.is_none() {
            let trace: Vec<String> = self.trace.iter().cloned().collect();
            self.report.violation = Some(format!("{what}\n{}", trace.join("\n")));
        }
        self.done = true;
    }

    /// A few faults of every kind over the run's first four lifetimes.
    fn plan_faults(&mut self) {
        let count = self.dice.between(0.0, 25.0) as u32;
        for _ in 0..count {
            let at = self.dice.between(0.0, self.faults_until);
            let fault = match (self.dice.uniform() * 6.0) as u32 {
                0 => Fault::Drop,
                1 => Fault::Silence,
                2 => Fault::ClosingStorm {
                    left: self.dice.between(2.0, 12.0) as u32,
                },
                3 => Fault::Evict,
                4 => Fault::RestTrouble {
                    ms: self.dice.between(1_000.0, 120_000.0),
                },
                _ if self.send_date => Fault::ClockJump {
                    ms: self.dice.between(-7_200_000.0, 7_200_000.0),
                },
                _ => Fault::Drop,
            };
            self.at(at, Happening::Fault(fault));
        }
        // The token expires mid-rollover: REST calls refused around every rollover, in some seeds.
        if self.dice.chance(0.3) {
            for n in 0..4 {
                let at = (n as f64 + 0.8) * self.lifetime;
                self.at(at, Happening::Fault(Fault::RestTrouble { ms: 5_000.0 }));
            }
        }
    }

    fn run(&mut self) {
        let end = self.faults_until + QUIET_MS;
        while let Some(next) = self.queue.pop() {
            if self.done || next.at > end {
                break;
            }
            self.advance(next.at);
            self.happen(next.what);
        }
    }

    fn advance(&mut self, to: f64) {
        self.now = to.max(self.now);
    }

    fn happen(&mut self, what: Happening) {
        match what {
            Happening::Wake { generation } if generation == self.generation => {
                self.tell(Input::Tick)
            }
            Happening::Wake { .. } => {}
            Happening::Answer(input) => self.tell(input),
            Happening::Heartbeat { socket } => {
                if self.sockets[socket].open {
                    if !self.sockets[socket].silent {
                        let channel = self.sockets[socket].stream_ref;
                        self.tell(Input::Heard {
                            channel,
                            closing: false,
                        });
                    }
                    self.at(HEARTBEAT_MS, Happening::Heartbeat { socket });
                }
            }
            Happening::Open { socket } => self.open(socket),
            Happening::Publish => self.publish(),
            Happening::Expire { channel } => self.expire(channel),
            Happening::Fault(fault) => self.fault(fault),
            Happening::CloseAfterClosing { socket } => self.server_closes(socket),
        }
    }

    /// Hands `input` to the stream, then performs what it says.
    fn tell(&mut self, input: Input) {
        self.tell_after(input, None);
    }

    /// As `tell`; `lived`: for a drop of an open socket, how long it had been open.
    fn tell_after(&mut self, input: Input, lived: Option<f64>) {
        if self.done {
            return;
        }
        self.note(format!("in  {input:?}"));
        if let Input::Refused {
            channel,
            retry_after_seconds,
            ..
        } = &input
        {
            let wait = MAX_MS.max(retry_after_seconds.unwrap_or(0.0) * 1000.0);
            self.failed(*channel, wait);
        }
        match &input {
            Input::Dropped { channel } | Input::Unreachable { channel, .. } => {
                self.failed(*channel, MAX_MS)
            }
            Input::Heard {
                channel,
                closing: true,
            } => self.failed(*channel, MAX_MS),
            Input::Known { channel, .. } => self.failed(*channel, MAX_MS),
            _ => {}
        }
        let rand = self.dice.uniform();
        self.backoff_starts(&input, rand, lived);
        self.stream.handle(self.clock(), rand, input);
        self.perform();
    }

    /// Notes a failure that starts a back-off, with the draw `rand` it is given.
    fn backoff_starts(&mut self, input: &Input, rand: f64, lived: Option<f64>) {
        let (channel, lived) = match input {
            Input::Dropped { channel } if lived.is_some() => (*channel, lived),
            Input::Heard {
                channel,
                closing: true,
            } => (*channel, self.open_for(*channel)),
            Input::Known { channel, .. }
            | Input::Unreachable {
                channel,
                retryable: true,
            } => (*channel, None),
            Input::Refused {
                channel, status, ..
            } if *status != 400 && *status != 403 => (*channel, None),
            _ => return,
        };
        let reset = lived.filter(|&l| l >= RESET_AFTER_MS).map(|_| BASE_MS);
        let now = self.now;
        if let Some(held) = self.held.get_mut(&channel) {
            held.backoff = Some((now, rand * BASE_MS, reset));
        }
    }

    /// How long the channel's socket has been open, if it is.
    fn open_for(&self, channel: ChannelRef) -> Option<f64> {
        let socket = self.held.get(&channel)?.socket?;
        let s = &self.sockets[socket];
        s.open.then_some(self.now - s.opened_at)
    }

    /// A failure of `channel` now: its next call must come within `wait`.
    fn failed(&mut self, channel: ChannelRef, wait: f64) {
        if let Some(held) = self.held.get_mut(&channel) {
            held.failed_at.get_or_insert((self.now, wait));
        }
    }

    /// Performs the stream's actions, then sets its wake-up.
    fn perform(&mut self) {
        let mut count = 0;
        while let Some(action) = self.stream.poll() {
            count += 1;
            self.note(format!("out {action:?}"));
            self.act(action);
            if self.done {
                return;
            }
        }
        if count > 4 {
            return self.violate("invariant 4: more than four actions for one input");
        }
        // Silence is checked by the stream's own deadline; a silent socket's channel stays "held".
        match self.stream.wake_at() {
            Some(at) if at <= self.now => {
                self.violate("invariant 4: the stream's next deadline is not ahead of now")
            }
            Some(at) => {
                self.generation += 1;
                let generation = self.generation;
                self.at(at - self.now, Happening::Wake { generation });
            }
            None => {}
        }
    }

    fn act(&mut self, action: Action) {
        match action {
            Action::Create { channel, .. } => {
                self.call(channel);
                self.held.entry(channel).or_default();
                self.create(channel);
            }
            Action::Subscribe { channel, .. } => {
                self.call(channel);
                self.subscribe(channel);
            }
            Action::Verify { channel, .. } => {
                self.call(channel);
                self.verify(channel);
            }
            Action::Connect { channel } => {
                self.call(channel);
                self.connect(channel);
            }
            Action::Disconnect { channel } => self.close_socket_of(channel, false),
            Action::Forget { channel } => {
                self.close_socket_of(channel, true);
                self.held.remove(&channel);
            }
            Action::Fail { error } => {
                let named = error.as_ref().is_some_and(|e| {
                    e.code == ErrorCode::Config && e.message().contains(BAD_TOPIC)
                });
                if !(self.refuse_topic && named) {
                    self.violate("invariant 6: the stream failed, and not for a refused topic");
                }
                self.done = true;
            }
        }
    }

    /// Counts a call (invariants 3 and 4).
    fn call(&mut self, channel: ChannelRef) {
        if let Some((at, floor, reset)) = self.held.get_mut(&channel).and_then(|h| h.backoff.take())
        {
            let waited = self.now - at;
            if waited < floor - 1e-6 {
                return self.violate("invariant 3: a call sooner than the back-off allows");
            }
            if reset.is_some_and(|most| waited > most + 1e-6) {
                return self.violate(
                    "invariant 3: after a connection that lived a minute, a wait past the first ceiling",
                );
            }
        }
        if let Some((at, wait)) = self.held.get_mut(&channel).and_then(|h| h.failed_at.take()) {
            // Connects after a verification, and calls after a REST answer, add their latency.
            if self.now - at > wait + 2_000.0 {
                return self.violate("invariant 3: a wait longer than the back-off's ceiling");
            }
        }
        self.calls.push_back(self.now);
        while self.calls.front().is_some_and(|&t| t < self.now - 60_000.0) {
            self.calls.pop_front();
        }
        if self.calls.len() > MAX_CALLS_PER_MINUTE {
            self.violate("invariant 4: too many calls in a minute");
        }
    }

    fn latency(&mut self) -> f64 {
        self.dice.between(5.0, 600.0)
    }

    fn troubled(&mut self, channel: ChannelRef) -> Option<Input> {
        if self.now >= self.rest_trouble_until {
            return None;
        }
        Some(match (self.dice.uniform() * 4.0) as u32 {
            0 => Input::Refused {
                channel,
                status: 401,
                retry_after_seconds: None,
                detail: None,
            },
            1 => Input::Refused {
                channel,
                status: 429,
                retry_after_seconds: Some(self.dice.between(1.0, 10.0).floor()),
                detail: None,
            },
            2 => Input::Refused {
                channel,
                status: 503,
                retry_after_seconds: None,
                detail: None,
            },
            _ => Input::Unreachable {
                channel,
                retryable: true,
            },
        })
    }

    fn answer(&mut self, input: Input) {
        let latency = self.latency();
        self.at(latency, Happening::Answer(input));
    }

    fn create(&mut self, channel: ChannelRef) {
        if let Some(trouble) = self.troubled(channel) {
            return self.answer(trouble);
        }
        let lifetime = self.lifetime;
        self.channels.push(ServerChannel {
            expires: self.now + lifetime,
            lifetime,
            known: true,
            subscribed: false,
        });
        let id = self.channels.len() - 1;
        self.held.get_mut(&channel).expect("held").server = Some(id);
        let latency = self.latency();
        self.at(lifetime, Happening::Expire { channel: id });
        let true_now = EPOCH + self.now + latency;
        let input = Input::Created {
            channel,
            expires: Some(EPOCH + self.channels[id].expires),
            server_date: self.send_date.then(|| (true_now / 1000.0).floor() * 1000.0),
        };
        self.at(latency, Happening::Answer(input));
    }

    fn server_of(&self, channel: ChannelRef) -> Option<usize> {
        self.held.get(&channel).and_then(|h| h.server)
    }

    fn subscribe(&mut self, channel: ChannelRef) {
        if let Some(trouble) = self.troubled(channel) {
            return self.answer(trouble);
        }
        let id = self.server_of(channel).expect("subscribed after made");
        let input = if self.refuse_topic {
            Input::Refused {
                channel,
                status: 400,
                retry_after_seconds: None,
                detail: Some(format!(
                    "{{\"message\":\"Topic {BAD_TOPIC} is not valid\"}}"
                )),
            }
        } else if self.channels[id].known {
            self.channels[id].subscribed = true;
            Input::Subscribed { channel }
        } else {
            Input::Refused {
                channel,
                status: 404,
                retry_after_seconds: None,
                detail: None,
            }
        };
        self.answer(input);
    }

    fn verify(&mut self, channel: ChannelRef) {
        if let Some(trouble) = self.troubled(channel) {
            return self.answer(trouble);
        }
        let id = self.server_of(channel).expect("verified after made");
        let known = self.channels[id].known;
        self.answer(Input::Known { channel, known });
    }

    fn connect(&mut self, channel: ChannelRef) {
        let id = self.server_of(channel).expect("connected after made");
        if !self.channels[id].known {
            return self.answer(Input::Dropped { channel });
        }
        self.sockets.push(Socket {
            channel: id,
            stream_ref: channel,
            open: false,
            opened_at: 0.0,
            silent: false,
            abandoned: false,
        });
        let socket = self.sockets.len() - 1;
        self.held.get_mut(&channel).expect("held").socket = Some(socket);
        let latency = self.latency();
        self.at(latency, Happening::Open { socket });
    }

    /// The handshake ends: open, unless the channel went or the stream gave up on it.
    fn open(&mut self, socket: usize) {
        let s = &self.sockets[socket];
        let channel = s.stream_ref;
        if s.abandoned {
            return;
        }
        if !self.channels[s.channel].known {
            self.held.get_mut(&channel).expect("held").socket = None;
            return self.tell(Input::Dropped { channel });
        }
        self.sockets[socket].open = true;
        self.sockets[socket].opened_at = self.now;
        self.report.reconnects += u64::from(self.ever_open);
        self.ever_open = true;
        self.update_gap();
        self.at(HEARTBEAT_MS, Happening::Heartbeat { socket });
        self.tell(Input::Opened { channel });
    }

    /// The stream closes a socket: a healthy one only while another is open (invariant 1).
    fn close_socket_of(&mut self, channel: ChannelRef, forget: bool) {
        let Some(socket) = self.held.get_mut(&channel).and_then(|h| h.socket.take()) else {
            return;
        };
        let healthy = self.healthy(socket);
        self.sockets[socket].open = false;
        self.sockets[socket].abandoned = true;
        if forget && healthy {
            if self.sockets.iter().any(|s| s.open && !s.silent) {
                self.report.rollovers += 1;
            } else {
                return self.violate("invariant 1: a healthy socket closed with no other open");
            }
        }
        self.update_gap();
    }

    fn healthy(&self, socket: usize) -> bool {
        let s = &self.sockets[socket];
        s.open && !s.silent && self.channels[s.channel].known
    }

    fn server_closes(&mut self, socket: usize) {
        if !self.sockets[socket].open {
            return;
        }
        self.sockets[socket].open = false;
        self.update_gap();
        let channel = self.sockets[socket].stream_ref;
        if self.held.get(&channel).and_then(|h| h.socket) == Some(socket) {
            self.held.get_mut(&channel).expect("held").socket = None;
            let lived = self.now - self.sockets[socket].opened_at;
            self.tell_after(Input::Dropped { channel }, Some(lived));
        }
    }

    fn publish(&mut self) {
        let receivers: Vec<usize> = (0..self.sockets.len())
            .filter(|&s| self.healthy(s) && self.channels[self.sockets[s].channel].subscribed)
            .collect();
        if !receivers.is_empty() {
            let event = self.next_event as usize;
            self.next_event += 1;
            self.report.events_sent += 1;
            self.received.push(false);
            for socket in receivers {
                if !self.received[event] {
                    self.received[event] = true;
                    self.report.events_received += 1;
                }
                let channel = self.sockets[socket].stream_ref;
                self.tell(Input::Heard {
                    channel,
                    closing: false,
                });
            }
        }
        let next = self.dice.between(500.0, 20_000.0);
        self.at(next, Happening::Publish);
    }

    fn expire(&mut self, channel: usize) {
        self.channels[channel].known = false;
        let open: Vec<usize> = (0..self.sockets.len())
            .filter(|&s| self.sockets[s].open && self.sockets[s].channel == channel)
            .collect();
        let others = self
            .sockets
            .iter()
            .any(|s| s.open && !s.silent && s.channel != channel);
        let lifetime = self.channels[channel].lifetime;
        let window = (lifetime / 5.0).min(ROLL_AHEAD_MAX_MS) + SILENCE_MS;
        if !open.is_empty() && !others && self.last_fault < self.now - window {
            return self.violate("invariant 2: the channel expired under the only open socket");
        }
        for socket in open {
            self.server_closes(socket);
        }
    }

    fn fault(&mut self, fault: Fault) {
        if self.now > self.faults_until {
            return;
        }
        self.report.faults += 1;
        self.last_fault = self.now;
        self.note(format!("fault {fault:?}"));
        let open: Vec<usize> = (0..self.sockets.len())
            .filter(|&s| self.sockets[s].open)
            .collect();
        let pick = |dice: &mut Dice| match open.is_empty() {
            true => None,
            false => Some(open[(dice.uniform() * open.len() as f64) as usize]),
        };
        match fault {
            Fault::Drop => {
                if let Some(socket) = pick(&mut self.dice) {
                    self.server_closes(socket);
                }
            }
            Fault::Silence => {
                if let Some(socket) = pick(&mut self.dice) {
                    self.sockets[socket].silent = true;
                    self.update_gap();
                }
            }
            Fault::ClosingStorm { left } => {
                for socket in open {
                    let channel = self.sockets[socket].stream_ref;
                    if !self.sockets[socket].silent {
                        self.tell(Input::Heard {
                            channel,
                            closing: true,
                        });
                    }
                    self.at(1_000.0, Happening::CloseAfterClosing { socket });
                }
                if left > 1 {
                    let next = self.dice.between(500.0, 20_000.0);
                    let storm = Fault::ClosingStorm { left: left - 1 };
                    self.at(next, Happening::Fault(storm));
                }
            }
            Fault::Evict => {
                if let Some(socket) = pick(&mut self.dice) {
                    let channel = self.sockets[socket].channel;
                    self.channels[channel].known = false;
                    let on_it: Vec<usize> = open
                        .iter()
                        .copied()
                        .filter(|&s| self.sockets[s].channel == channel)
                        .collect();
                    for socket in on_it {
                        self.server_closes(socket);
                    }
                }
            }
            Fault::RestTrouble { ms } => {
                self.rest_trouble_until = self.rest_trouble_until.max(self.now + ms)
            }
            Fault::ClockJump { ms } => self.skew += ms,
        }
    }

    /// Tracks the longest time without a healthy open socket.
    fn update_gap(&mut self) {
        let any = (0..self.sockets.len()).any(|s| self.healthy(s));
        match (any, self.gap_since) {
            (true, Some(since)) => {
                self.report.longest_gap_ms = self.report.longest_gap_ms.max(self.now - since);
                self.gap_since = None;
            }
            (false, None) if self.ever_open => self.gap_since = Some(self.now),
            _ => {}
        }
    }

    /// Invariant 5: after the quiet spell, a socket is open on a channel the server knows.
    fn finish(&mut self) {
        if self.done {
            return;
        }
        self.advance(self.faults_until + QUIET_MS);
        self.update_gap();
        let open = (0..self.sockets.len()).any(|s| self.healthy(s));
        if !open && !self.refuse_topic {
            self.violate("invariant 5: no healthy open socket after a quiet spell");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_thousand_seeds_hold_every_invariant() {
        let (total, failing) = run_many(1, 2_000);
        if let Some((seed, violation)) = failing.first() {
            panic!("seed {seed}: {violation}\nreplay: scripts/simulate_notify.sh 1 {seed}");
        }
        assert!(total.rollovers > 2_000, "{total:?}");
        assert!(total.events_received == total.events_sent, "{total:?}");
    }

    #[test]
    fn a_seed_replays_exactly() {
        let a = run(42);
        let b = run(42);
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
    }
}
