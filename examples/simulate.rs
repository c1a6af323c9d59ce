//! Runs the deterministic simulation of many isolates sharing one store
//! (`src/sim/`; about a quarter of its scenarios run token pools through
//! it), and of pools in memory (`src/sim/pool.rs`), each seed both:
//! `scripts/simulate.sh SEEDS [FIRST_SEED]`. Seeds run on
//! every core; the first failing one is printed with its invariant, the
//! steps before it and the command that replays it.

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
            eprintln!("usage: scripts/simulate.sh SEEDS [FIRST_SEED]");
            return ExitCode::from(2);
        }
    };
    let workers = thread::available_parallelism().map_or(1, |n| n.get() as u64);
    let started = std::time::Instant::now();
    let (mut spared, mut pools) = (0, 0);
    let mut violations: Vec<(u64, String)> = thread::scope(|scope| {
        let runs: Vec<_> = (0..workers)
            .map(|w| {
                scope.spawn(move || {
                    let (mut spared, mut pools) = (0, 0);
                    let violations = (first..first + count)
                        .filter(|seed| seed % workers == w)
                        .flat_map(|seed| {
                            let report = freshtoken::sim::run(seed);
                            spared += u64::from(report.skewed_requests);
                            pools += u64::from(report.pool_size > 1);
                            // The same seed also runs pools (src/sim/pool.rs).
                            let pool = freshtoken::sim::run_pool(seed).violation;
                            [report.violation, pool]
                                .into_iter()
                                .flatten()
                                .map(move |v| (seed, v))
                        })
                        .collect::<Vec<_>>();
                    (violations, spared, pools)
                })
            })
            .collect();
        runs.into_iter()
            .map(|r| r.join().expect("a worker ran"))
            .fold(Vec::new(), |mut all, (violations, n, p)| {
                spared += n;
                pools += p;
                all.extend(violations);
                all
            })
    });
    violations.sort_by_key(|(seed, _)| *seed);
    if let Some((seed, text)) = violations.first() {
        println!("first failing seed {seed}: {text}");
        println!("replay: scripts/simulate.sh 1 {seed}");
    }
    if violations.len() > 1 {
        let seeds: Vec<String> = violations[1..].iter().map(|(s, _)| s.to_string()).collect();
        println!("other failing seeds: {}", seeds.join(" "));
    }
    eprintln!(
        "({:.1} s on {workers} threads; {pools} scenarios ran token pools through the shared \
         store; each seed ran a scenario of pools in memory too; {spared} requests spared by \
         invariant 3 as from isolates whose clocks shared no refresh window with the token's \
         writer)",
        started.elapsed().as_secs_f64()
    );
    println!(
        "simulated {count} scenarios: {} invariant violations",
        violations.len()
    );
    if violations.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
