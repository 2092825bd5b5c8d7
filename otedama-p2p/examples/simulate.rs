//! Runs the sharechain simulator and prints its report: stale rates against latency, and each
//! miner's payout share over its hashrate share.
//!
//! ```text
//! cargo run --release -p otedama-p2p --example simulate -- \
//!     [--seed N] [--nodes N] [--miners N] [--blocks N] [--latency-ms F] [--interval S]
//!     [--shares-per-block F] [--degree N] [--loss F] [--direct F]
//! ```

use otedama_p2p::sim::{run, SimConfig};

fn main() {
    let mut cfg = SimConfig::new(1);
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i + 1 < args.len() {
        let (flag, value) = (args[i].as_str(), args[i + 1].as_str());
        let ok = match flag {
            "--seed" => value.parse().map(|v| cfg.seed = v).is_ok(),
            "--nodes" => value.parse().map(|v| cfg.nodes = v).is_ok(),
            "--miners" => value.parse().map(|v| cfg.miners = v).is_ok(),
            "--blocks" => value.parse().map(|v| cfg.blocks = v).is_ok(),
            "--latency-ms" => value.parse().map(|v| cfg.latency_ms = v).is_ok(),
            "--interval" => value
                .parse()
                .map(|v| cfg.params.share_interval_secs = v)
                .is_ok(),
            "--shares-per-block" => value.parse().map(|v| cfg.shares_per_block = v).is_ok(),
            "--degree" => value.parse().map(|v| cfg.degree = v).is_ok(),
            "--loss" => value.parse().map(|v| cfg.loss = v).is_ok(),
            "--direct" => value.parse().map(|v| cfg.direct_threshold = v).is_ok(),
            "--zipf" => value.parse().map(|v| cfg.zipf_exponent = v).is_ok(),
            _ => false,
        };
        if !ok {
            eprintln!("bad argument: {flag} {value}");
            std::process::exit(2);
        }
        i += 2;
    }
    cfg.params.half_life_secs = cfg.params.share_interval_secs * 60;
    let started = std::time::Instant::now();
    let r = run(&cfg);
    let interval_ms = cfg.params.share_interval_secs as f64 * 1000.0;
    println!(
        "seed {} nodes {} miners {} interval {} s latency {} ms (sigma {}) degree {} loss {}",
        cfg.seed,
        cfg.nodes,
        cfg.miners,
        cfg.params.share_interval_secs,
        cfg.latency_ms,
        cfg.latency_sigma,
        cfg.degree,
        cfg.loss
    );
    println!(
        "simulated {:.1} h in {:.1} s: {} shares, {} blocks, {} on chain, {} uncles, {} orphans",
        r.elapsed_ms as f64 / 3.6e6,
        started.elapsed().as_secs_f64(),
        r.shares,
        r.blocks,
        r.chain_shares,
        r.uncles,
        r.orphans
    );
    println!(
        "stale rate {:.4} (uncles {:.4}, orphans {:.4}); mean propagation {:.0} ms; 1 - e^(-L/T) = {:.4}",
        r.stale_rate(),
        r.uncles as f64 / r.shares.max(1) as f64,
        r.orphans as f64 / r.shares.max(1) as f64,
        r.mean_propagation_ms,
        1.0 - (-r.mean_propagation_ms / interval_ms).exp()
    );
    println!(
        "converged {} same coinbase {} rejected {} misbehaviour {} paid {} of {}",
        r.converged, r.same_coinbase, r.rejected, r.misbehaviour, r.paid, r.rewards
    );
    println!("miner  hashrate%  payout%   ratio  direct");
    for (j, m) in r.miners.iter().enumerate() {
        println!(
            "{j:5}  {:8.3}  {:8.3}  {:6.3}  {}",
            m.hashrate_share * 100.0,
            m.payout_share * 100.0,
            m.ratio,
            m.direct
        );
    }
    println!("worst |ratio - 1| = {:.4}", r.worst_fairness());
}
