//! Runs the notification stream's simulator (`src/notify/sim.rs`):
//! `scripts/simulate_notify.sh SEEDS [FIRST_SEED]`. Seeds run on every
//! core; the first failing one is printed with its invariant, the steps
//! before it and the command that replays it, then the run's figures.

use freshtoken::notify::sim::{run_many, Report};
use std::process::ExitCode;
use std::thread;

fn main() -> ExitCode {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("SEEDS and FIRST_SEED are whole numbers"))
        .collect();
    let (count, first) = match args[..] {
        [count] => (count, 1),
        [count, first] => (count, first),
        _ => {
            eprintln!("usage: scripts/simulate_notify.sh SEEDS [FIRST_SEED]");
            return ExitCode::from(2);
        }
    };
    let workers = thread::available_parallelism().map_or(1, |n| n.get() as u64);
    let started = std::time::Instant::now();
    let parts: Vec<(Report, Vec<(u64, String)>)> = thread::scope(|scope| {
        let runs: Vec<_> = (0..workers)
            .map(|w| {
                let share = count / workers + u64::from(w < count % workers);
                let from = first
                    + (0..w)
                        .map(|v| count / workers + u64::from(v < count % workers))
                        .sum::<u64>();
                scope.spawn(move || run_many(from, share))
            })
            .collect();
        runs.into_iter()
            .map(|r| r.join().expect("a worker ran"))
            .collect()
    });
    let mut total = Report::default();
    let mut failing = vec![];
    for (report, seeds) in parts {
        total.events_sent += report.events_sent;
        total.events_received += report.events_received;
        total.reconnects += report.reconnects;
        total.rollovers += report.rollovers;
        total.faults += report.faults;
        total.longest_gap_ms = total.longest_gap_ms.max(report.longest_gap_ms);
        failing.extend(seeds);
    }
    failing.sort_by_key(|(seed, _)| *seed);
    if let Some((seed, text)) = failing.first() {
        println!("first failing seed {seed}: {text}");
        println!("replay: scripts/simulate_notify.sh 1 {seed}");
    }
    eprintln!(
        "({:.1} s on {workers} threads) events sent {} received {}, faults {}, reconnects {}, \
         rollovers {}, longest gap {:.1} s",
        started.elapsed().as_secs_f64(),
        total.events_sent,
        total.events_received,
        total.faults,
        total.reconnects,
        total.rollovers,
        total.longest_gap_ms / 1000.0
    );
    println!(
        "simulated {count} notification streams: {} invariant violations",
        failing.len()
    );
    ExitCode::from(u8::from(!failing.is_empty()))
}
