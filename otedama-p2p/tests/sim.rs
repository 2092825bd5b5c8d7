//! The simulator's invariants on small networks: honest runs converge on one tip and one
//! coinbase, conserve money, refuse nothing, and repeat exactly for a seed.

use otedama_p2p::sim::{run, Partition, SimConfig};

fn check_honest(report: &otedama_p2p::sim::SimReport) {
    assert!(report.converged, "nodes disagree on the tip: {report:?}");
    assert!(report.same_coinbase, "nodes build different coinbases");
    assert_eq!(report.rejected, 0, "a valid share was refused");
    assert_eq!(report.misbehaviour, 0, "an honest peer was reported");
    assert_eq!(report.paid, report.rewards, "money not conserved");
    assert_eq!(
        report.shares,
        report.chain_shares + report.uncles + report.orphans
    );
}

#[test]
fn an_honest_network_converges_and_repeats() {
    let mut cfg = SimConfig::new(11);
    cfg.blocks = 40;
    let a = run(&cfg);
    check_honest(&a);
    assert!(a.blocks >= 40 && a.shares > 600, "{a:?}");
    let b = run(&cfg);
    assert_eq!(a.trace, b.trace, "same seed, different run");
    cfg.seed = 12;
    assert_ne!(run(&cfg).trace, a.trace);
}

#[test]
fn late_nodes_sync_at_every_depth_around_the_window() {
    let mut cfg = SimConfig::new(5);
    cfg.params.window_max_shares = 60;
    cfg.nodes = 8;
    cfg.blocks = 30;
    // With 10 s shares, share n arrives near 10 n seconds: joins around one and two windows.
    cfg.joins = vec![
        (3, 590_000),
        (4, 600_000),
        (5, 610_000),
        (6, 1_200_000),
        (7, 2_000_000),
    ];
    let report = run(&cfg);
    check_honest(&report);
}

#[test]
fn a_partition_heals_into_one_chain() {
    let mut cfg = SimConfig::new(21);
    cfg.blocks = 30;
    cfg.partitions = vec![Partition {
        start_ms: 200_000,
        end_ms: 260_000,
        group: vec![0, 1, 2, 3],
    }];
    let report = run(&cfg);
    check_honest(&report);
    assert!(
        report.orphans + report.uncles > 0,
        "a split must cost stale shares"
    );
}

#[test]
fn lost_messages_are_asked_again() {
    let mut cfg = SimConfig::new(3);
    cfg.blocks = 20;
    cfg.loss = 0.02;
    let report = run(&cfg);
    check_honest(&report);
}
