//! Sharechain rules against hand-built shares: what a valid chain accepts, and each way a
//! share can be wrong.
#![allow(clippy::unwrap_used)]

use otedama_core::CompactTarget;
use otedama_hash::Sha256d;
use otedama_p2p::{
    coinbase_root, ChainParams, MainWork, Message, Node, NodeEvent, PeerLimits, PowPolicy, Share,
    ShareError, ShareId, Sharechain, Verification,
};
use std::sync::Arc;

const T0: u64 = 1_700_000_000;

mod support;

use support::is_invalid;

fn params() -> ChainParams {
    support::params("test", 20)
}

fn main_work(time: u64) -> MainWork {
    support::main_work(time)
}

/// A share on `chain`'s tip paid to `payout`, `secs` after the epoch, made unique by `tag`.
fn mine(chain: &Sharechain, payout: u8, secs: u64, tag: u64) -> Share {
    let t = chain
        .template(&[0x51, payout], main_work(T0 + secs), T0 + secs, 8)
        .unwrap();
    let en = tag.to_le_bytes();
    let header = t.header(&en).unwrap();
    t.finish(header, &en)
}

/// A chain of `n` shares, 10 s apart.
fn grow(chain: &mut Sharechain, n: u64, start: u64) -> Vec<Share> {
    let mut out = Vec::new();
    for i in 0..n {
        let s = mine(chain, (i % 3) as u8, start + 10 * i, start + i);
        chain.add(s.clone(), T0 + start + 10 * i).unwrap();
        out.push(s);
    }
    out
}

/// Rebuilds `share`'s header merkle root after its info was changed, so only the change is
/// wrong, not the binding.
fn rebind(chain: &Sharechain, mut share: Share) -> Share {
    let target = share.main_target().unwrap();
    let outputs = chain.outputs_for(&share.info, &target).unwrap();
    let info = share.info.clone();
    let b = share.bitcoin_mut().unwrap();
    b.header.merkle_root = coinbase_root(
        &info,
        chain.consensus_id(),
        &outputs,
        &b.extranonce,
        b.witness_root,
        &b.branch,
    )
    .unwrap();
    share
}

#[test]
fn a_peer_accepts_a_valid_chain_and_agrees_on_its_coinbases() {
    let mut a = Sharechain::new(params());
    let shares = grow(&mut a, 30, 0);
    let mut b = Sharechain::new(params());
    for s in &shares {
        let added = b.add(s.clone(), T0 + 1_000).unwrap();
        assert_eq!(added.verification, Verification::Full);
    }
    assert_eq!(a.tip().unwrap().share.id(), b.tip().unwrap().share.id());
    assert_eq!(b.tip().unwrap().share.info.height, 29);
    // Pruned to the horizon: two windows and the uncle depth.
    assert!(b.len() as u64 <= params().horizon() + 1);
}

#[test]
fn each_broken_rule_is_refused() {
    let mut chain = Sharechain::new(params());
    grow(&mut chain, 5, 0);
    let good = mine(&chain, 9, 60, 99);

    let mut s = good.clone();
    s.info.bits = CompactTarget::from_consensus(0x2000_ffff);
    is_invalid(chain.add(rebind(&chain, s), T0 + 60), "difficulty rule");

    let mut s = good.clone();
    s.info.timestamp = T0 + 10_000;
    is_invalid(chain.add(rebind(&chain, s), T0 + 60), "future");

    let mut s = good.clone();
    s.info.timestamp = T0 + 10;
    is_invalid(chain.add(rebind(&chain, s), T0 + 60), "median");

    let mut s = good.clone();
    s.info.height += 1;
    is_invalid(chain.add(rebind(&chain, s), T0 + 60), "height");

    let mut s = good.clone();
    s.info.anchor_time += 1;
    is_invalid(chain.add(rebind(&chain, s), T0 + 60), "anchor");

    // The coinbase pays someone else than the window: the header's root does not match.
    let mut s = good.clone();
    s.info.payout = vec![0x51, 0x77];
    is_invalid(chain.add(s, T0 + 60), "window's outputs");

    // Everything to the finder, committed honestly but not the window's split.
    let mut s = good.clone();
    let info = s.info.clone();
    let b = s.bitcoin_mut().unwrap();
    b.header.merkle_root = coinbase_root(
        &info,
        chain.consensus_id(),
        &[(bitcoin::ScriptBuf::from_bytes(vec![0x51, 9]), 1_000_000)],
        &b.extranonce,
        None,
        &b.branch,
    )
    .unwrap();
    is_invalid(chain.add(s, T0 + 60), "window's outputs");

    let mut s = good.clone();
    s.info.parent = ShareId([5; 32]);
    assert!(matches!(
        chain.add(s, T0 + 60),
        Err(ShareError::Missing { .. })
    ));

    // Another chain's share does not bind here, even with the same rules otherwise.
    let other = ChainParams {
        name: "other".into(),
        ..params()
    };
    let mut foreign = Sharechain::new(other);
    let f = grow(&mut foreign, 1, 0).remove(0);
    let mut fresh = Sharechain::new(params());
    is_invalid(fresh.add(f, T0), "window's outputs");

    // The untouched share is fine.
    assert!(chain.add(good.clone(), T0 + 60).is_ok());
    assert!(matches!(
        chain.add(good, T0 + 60),
        Err(ShareError::Duplicate { .. })
    ));
}

#[test]
fn uncles_are_paid_counted_and_checked() {
    let mut chain = Sharechain::new(params());
    grow(&mut chain, 4, 0);
    // Two children of the same parent: one wins, the other becomes an uncle.
    let winner = mine(&chain, 1, 40, 500);
    let loser = mine(&chain, 2, 41, 501);
    chain.add(winner.clone(), T0 + 41).unwrap();
    let side = chain.add(loser.clone(), T0 + 41).unwrap();
    assert!(!side.new_tip || side.reorg.is_some());
    let tip_before = chain.tip().unwrap().share.id();
    assert_eq!(chain.uncle_candidates().len(), 1);

    let nephew = mine(&chain, 0, 50, 502);
    assert_eq!(nephew.info.uncles.len(), 1);
    let uncle_id = nephew.info.uncles[0];
    assert_ne!(uncle_id, tip_before);
    let parent_work = chain.get(&nephew.info.parent).unwrap().chain_work;
    let added = chain.add(nephew.clone(), T0 + 50).unwrap();
    assert!(added.new_tip);
    let e = chain.get(&added.id).unwrap();
    let uncle_work = chain.get(&uncle_id).unwrap().work;
    assert_eq!(
        e.chain_work,
        parent_work
            .checked_add(otedama_core::U256::from_u128(e.work + uncle_work))
            .unwrap()
    );
    // Included once: no later share may include it again.
    assert!(chain.uncle_candidates().is_empty());
    let mut again = mine(&chain, 0, 60, 503);
    again.info.uncles = vec![uncle_id];
    is_invalid(
        chain.add(rebind(&chain, again), T0 + 60),
        "already included",
    );

    // An ancestor is no uncle.
    let mut s = mine(&chain, 0, 60, 504);
    s.info.uncles = vec![nephew.info.parent];
    is_invalid(chain.add(rebind(&chain, s), T0 + 60), "ancestor");

    // Too deep: a side share four heights below.
    let mut fork = Sharechain::new(params());
    let base = grow(&mut fork, 2, 0);
    let mut c = Sharechain::new(params());
    for s in &base {
        c.add(s.clone(), T0 + 100).unwrap();
    }
    let old_side = mine(&c, 7, 25, 600);
    c.add(old_side.clone(), T0 + 100).unwrap();
    grow(&mut c, 5, 30);
    let mut s = mine(&c, 0, 200, 601);
    s.info.uncles = vec![old_side.id()];
    is_invalid(c.add(rebind(&c, s), T0 + 200), "depth");
}

#[test]
fn the_heavier_branch_wins_and_the_switch_is_a_reorg() {
    let mut a = Sharechain::new(params());
    let common = grow(&mut a, 3, 0);
    let mut b = Sharechain::new(params());
    for s in &common {
        b.add(s.clone(), T0 + 100).unwrap();
    }
    // Different payouts and times make the branches differ.
    let short: Vec<Share> = (0..2)
        .map(|i| {
            let s = mine(&a, 1, 30 + 10 * i, 700 + i);
            a.add(s.clone(), T0 + 100).unwrap();
            s
        })
        .collect();
    let long: Vec<Share> = (0..3)
        .map(|i| {
            let s = mine(&b, 2, 31 + 10 * i, 800 + i);
            b.add(s.clone(), T0 + 100).unwrap();
            s
        })
        .collect();
    let mut c = Sharechain::new(params());
    for s in common.iter().chain(&short) {
        c.add(s.clone(), T0 + 100).unwrap();
    }
    assert_eq!(c.tip().unwrap().share.id(), short[1].id());
    let mut reorged = None;
    for s in &long {
        let added = c.add(s.clone(), T0 + 100).unwrap();
        if added.reorg.is_some() {
            reorged = added.reorg;
        }
    }
    assert_eq!(c.tip().unwrap().share.id(), long[2].id());
    assert_eq!(reorged, Some((short[1].id(), 2)));
}

#[test]
fn a_node_checks_real_proof_of_work_and_reports_the_sender() {
    let mut p = params();
    // One hash in about 2^8 meets this target.
    p.max_target = CompactTarget::from_consensus(0x2000_ffff);
    let pow: Arc<dyn otedama_hash::PowAlgorithm> = Arc::new(Sha256d::new());
    let mut chain = Sharechain::new(p.clone());
    let t = chain.template(&[0x51], main_work(T0), T0, 8).unwrap();
    let mut header = t.header(&[0; 8]).unwrap();
    let target = t.target();
    while !target.is_met_by(&header.block_hash()) {
        header.nonce += 1;
    }
    let solved = t.finish(header, &[0; 8]);
    let mut unsolved = solved.clone();
    let b = unsolved.bitcoin_mut().unwrap();
    b.header.nonce += 1;
    while target.is_met_by(&b.header.block_hash()) {
        b.header.nonce += 1;
    }
    assert!(matches!(
        unsolved.check_pow(pow.as_ref()),
        Err(ShareError::InsufficientWork { .. })
    ));
    solved.check_pow(pow.as_ref()).unwrap();
    chain.add(solved.clone(), T0).unwrap();

    // A message the caller checked is not hashed again: the caller vouches for its work
    // (the network service checks it on its own threads and sends bad ones unchecked).
    let mut trusting = Node::new(
        Sharechain::new(p.clone()),
        PowPolicy::Verify(pow.clone()),
        PeerLimits::default(),
    );
    trusting.on_connect(7, 0);
    trusting.on_checked_message(7, Message::Announce(Box::new(unsolved.clone())), T0 * 1000);
    assert_eq!(
        trusting.chain().tip().map(|t| t.share.id()),
        Some(unsolved.id())
    );

    let mut node = Node::new(
        Sharechain::new(p),
        PowPolicy::Verify(pow),
        PeerLimits::default(),
    );
    node.on_connect(7, 0);
    node.on_message(7, Message::Announce(Box::new(unsolved)), T0 * 1000);
    let events: Vec<NodeEvent> = std::iter::from_fn(|| node.poll_event()).collect();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, NodeEvent::Misbehaved { peer: 7, .. })),
        "{events:?}"
    );
    node.on_message(
        7,
        Message::Announce(Box::new(solved.clone())),
        T0 * 1000 + 1,
    );
    assert_eq!(node.chain().tip().map(|t| t.share.id()), Some(solved.id()));
}

#[test]
fn a_flooding_peer_is_reported() {
    let limits = PeerLimits {
        burst: 10,
        per_second: 1,
        ..PeerLimits::default()
    };
    let mut node = Node::new(Sharechain::new(params()), PowPolicy::Simulated, limits);
    node.on_connect(1, 0);
    for i in 0..20 {
        node.on_message(1, Message::GetShares(vec![ShareId([i; 32])]), 0);
    }
    let flood = std::iter::from_fn(|| node.poll_event())
        .filter(|e| matches!(e, NodeEvent::Misbehaved { peer: 1, .. }))
        .count();
    assert_eq!(flood, 10);
}

#[test]
fn a_chain_synced_from_the_middle_accepts_every_share_above_its_base() {
    let mut a = Sharechain::new(params());
    // All mined within one second: each timestamp only just passes the median of the last 11,
    // which a node holding fewer than 11 ancestors cannot recompute.
    let mut shares = Vec::new();
    for i in 0..40 {
        let s = mine(&a, (i % 3) as u8, 0, i);
        a.add(s.clone(), T0).unwrap();
        shares.push(s);
    }
    for start in [1usize, 5, 12, 20, 29] {
        let mut b = Sharechain::new(params());
        b.add_base(shares[start].clone(), T0).unwrap();
        for s in &shares[start + 1..] {
            b.add(s.clone(), T0).unwrap();
        }
        let tip = b.tip().unwrap();
        assert_eq!(tip.share.id(), shares[39].id());
        assert_eq!(tip.verification, Verification::Full, "synced from {start}");
    }
}

#[test]
fn only_the_senders_not_found_can_start_a_chain_at_a_base() {
    let mut a = Sharechain::new(params());
    let shares = grow(&mut a, 10, 0);
    let tip = shares[9].clone();
    let now = (T0 + 1_000) * 1000;
    let mut b = Node::new(
        Sharechain::new(params()),
        PowPolicy::Simulated,
        PeerLimits::default(),
    );
    b.on_connect(1, now);
    b.on_connect(2, now);
    b.on_message(1, Message::Announce(Box::new(tip.clone())), now);
    let sent: Vec<(u64, Message)> = std::iter::from_fn(|| b.poll_transmit()).collect();
    assert!(
        sent.iter()
            .any(|(p, m)| *p == 1 && matches!(m, Message::GetAncestors { .. })),
        "the parents are asked of the peer that sent the share: {sent:?}"
    );
    // A peer with no chain lacks the parent too; that says nothing about where the chain ends.
    b.on_message(2, Message::NotFound(vec![tip.info.parent]), now);
    assert!(b.chain().is_empty());
    b.on_message(1, Message::Shares(shares[..9].to_vec()), now);
    let t = b.chain().tip().unwrap();
    assert_eq!(t.share.id(), tip.id());
    assert_eq!(t.verification, Verification::Full);
    assert!(b.is_synced());
}

#[test]
fn one_template_base_builds_every_miners_template_as_the_chain_would() {
    let mut chain = Sharechain::new(params());
    grow(&mut chain, 25, 0);
    let now = T0 + 300;
    let base = chain.template_base(main_work(now), now, 8).unwrap();
    for payout in [vec![0x51, 0], vec![0x51, 1], vec![0x51, 9], vec![0x6a]] {
        let direct = chain.template(&payout, main_work(now), now, 8).unwrap();
        let cheap = base.for_payout(&payout).unwrap();
        assert_eq!(cheap.info, direct.info);
        assert_eq!(cheap.outputs, direct.outputs);
        assert_eq!(cheap.coinbase.coinb1(), direct.coinbase.coinb1());
        assert_eq!(cheap.coinbase.coinb2(), direct.coinbase.coinb2());
        // The chain itself pays the same outputs for that share.
        let target = main_work(now).header.bits.decode().unwrap();
        assert_eq!(
            chain.outputs_for(&cheap.info, &target).unwrap(),
            cheap.outputs
        );
    }
    // A miner new to the window is paid its own share's work; an old one gets more.
    let newcomer = base.for_payout(&[0x51, 9]).unwrap();
    assert!(newcomer
        .outputs
        .iter()
        .any(|(s, _)| s.as_bytes() == [0x51, 9]));
    assert_eq!(base.height(), 25);
    assert_eq!(base.target(), newcomer.target());
}

#[test]
fn a_node_whose_peers_have_no_chain_starts_one_after_a_quiet_request_timeout() {
    let timeout = PeerLimits::default().request_timeout_ms;
    let mut empty = Node::new(
        Sharechain::new(params()),
        PowPolicy::Simulated,
        PeerLimits::default(),
    );
    empty.on_connect(1, 1_000);
    empty.handle_timeout(1_000 + timeout - 1);
    assert!(!empty.is_synced(), "too early to call the network empty");
    empty.handle_timeout(1_000 + timeout);
    assert!(empty.is_synced());
    assert_eq!(empty.poll_event(), Some(NodeEvent::Synced { height: 0 }));

    // A peer that has a chain announces it on connect: the node syncs it, and is not synced
    // empty while it waits for the shares it asked for.
    let mut source = Sharechain::new(params());
    let shares = grow(&mut source, 5, 0);
    let mut joining = Node::new(
        Sharechain::new(params()),
        PowPolicy::Simulated,
        PeerLimits::default(),
    );
    joining.on_connect(1, 1_000);
    let tip = shares.last().unwrap().clone();
    joining.on_message(1, Message::Announce(Box::new(tip)), 1_000);
    joining.handle_timeout(1_000 + timeout / 2);
    assert!(!joining.is_synced());
    assert!(
        std::iter::from_fn(|| joining.poll_event()).all(|e| !matches!(e, NodeEvent::Synced { .. }))
    );
}

#[test]
fn a_relayed_block_needs_its_proof_of_work_and_its_share_and_goes_out_once() {
    let mut p = params();
    // Shares one hash in about 2^8; the main chain's blocks (bits 0x203fffff) are easier.
    p.max_target = CompactTarget::from_consensus(0x2000_ffff);
    let pow: Arc<dyn otedama_hash::PowAlgorithm> = Arc::new(Sha256d::new());
    let chain = Sharechain::new(p.clone());
    let t = chain.template(&[0x51], main_work(T0), T0, 8).unwrap();
    let mut header = t.header(&[0; 8]).unwrap();
    while !t.target().is_met_by(&header.block_hash()) {
        header.nonce += 1;
    }
    let share = t.finish(header, &[0; 8]);
    let mut block = header.to_bytes().to_vec();
    block.extend_from_slice(&[1, 2, 3]);

    let mut node = Node::new(
        Sharechain::new(p),
        PowPolicy::Verify(pow),
        PeerLimits::default(),
    );
    node.start_alone();
    for peer in [1, 2, 3] {
        node.on_connect(peer, 0);
    }
    std::iter::from_fn(|| node.poll_transmit()).for_each(drop);

    // The block comes first, as its finder sends it: held until its share is in the chain.
    node.on_message(1, Message::Block(block.clone()), T0 * 1000);
    assert_eq!(
        node.poll_transmit(),
        None,
        "a block whose share is unknown waits"
    );
    assert_eq!(node.poll_event(), None);
    node.on_message(1, Message::Announce(Box::new(share)), T0 * 1000 + 1);
    let sent: Vec<(u64, Message)> = std::iter::from_fn(|| node.poll_transmit()).collect();
    let blocks_to: Vec<u64> = sent
        .iter()
        .filter(|(_, m)| *m == Message::Block(block.clone()))
        .map(|(p, _)| *p)
        .collect();
    assert_eq!(
        blocks_to,
        vec![2, 3],
        "relayed to the others, not back to the sender"
    );
    let events: Vec<NodeEvent> = std::iter::from_fn(|| node.poll_event()).collect();
    assert!(
        events.contains(&NodeEvent::MainBlock {
            hash: header.block_hash(),
            raw: block.clone()
        }),
        "{events:?}"
    );
    node.on_message(2, Message::Block(block.clone()), T0 * 1000 + 2);
    assert_eq!(node.poll_transmit(), None, "a block goes out once");
    assert_eq!(node.poll_event(), None);

    // The header under bits it does not meet: the sender is reported, nothing relayed.
    let mut forged = header;
    forged.bits = CompactTarget::from_consensus(0x1d00_ffff);
    let mut raw = forged.to_bytes().to_vec();
    raw.extend_from_slice(&[1, 2, 3]);
    node.on_message(3, Message::Block(raw), T0 * 1000 + 3);
    assert_eq!(node.poll_transmit(), None);
    assert!(matches!(
        node.poll_event(),
        Some(NodeEvent::Misbehaved { peer: 3, .. })
    ));
}

#[test]
fn peers_trade_addresses_only_when_asked() {
    let mut node = Node::new(
        Sharechain::new(params()),
        PowPolicy::Simulated,
        PeerLimits::default(),
    );
    let remote = |port: u16| std::net::SocketAddr::from(([10, 0, 0, 1], port));
    // Dialled: it listens where it was reached; inbound: where it says it listens.
    node.on_connect_from(1, 0, remote(9333), true);
    node.on_connect_from(2, 0, remote(50_000), false);
    let first: Vec<(u64, Message)> = std::iter::from_fn(|| node.poll_transmit()).collect();
    assert!(first.contains(&(1, Message::GetPeers)) && first.contains(&(2, Message::GetPeers)));
    node.on_message(2, Message::Listening(9444), 1);
    node.on_message(1, Message::Peers(vec![remote(7000), remote(7001)]), 2);
    // Unasked: ignored.
    node.on_message(1, Message::Peers(vec![remote(8000)]), 3);
    let mut learnt = node.dial_candidates(10);
    learnt.sort();
    assert_eq!(
        learnt,
        vec![remote(7000), remote(7001)],
        "connected peers are not dialled again"
    );

    node.on_message(2, Message::GetPeers, 4);
    let Some((2, Message::Peers(told))) = node.poll_transmit() else {
        panic!("no answer");
    };
    assert!(told.contains(&remote(9333)) && told.contains(&remote(7000)));
    assert!(
        !told.contains(&remote(9444)),
        "a peer is not told its own address"
    );
    node.on_message(2, Message::GetPeers, 5);
    assert_eq!(node.poll_transmit(), None, "answered once in 5 s at most");
    // Asked again 6 s after connecting, when the nodes that came at the same time are known.
    node.handle_timeout(6_000);
    let again: Vec<(u64, Message)> = std::iter::from_fn(|| node.poll_transmit()).collect();
    assert!(again.contains(&(1, Message::GetPeers)) && again.contains(&(2, Message::GetPeers)));
    node.handle_timeout(7_000);
    assert_eq!(node.poll_transmit(), None, "then every minute");
}

/// The bytes every node must agree on, pinned: the consensus id of a chain's rules, and a
/// chain of shares as they travel (their ids commit to the coinbases every node rebuilds).
/// A change here splits the network; make it on purpose, with a new chain name or version.
#[test]
fn consensus_and_wire_bytes_are_pinned() {
    use sha2::{Digest, Sha256};
    let p = params();
    let mut chain = Sharechain::new(p.clone());
    let shares = grow(&mut chain, 5, 0);
    let mut wire = Vec::new();
    for s in &shares {
        wire.extend_from_slice(&Message::Announce(Box::new(s.clone())).encode());
    }
    let tip = &shares[4];
    let outputs = chain
        .outputs_for(&tip.info, &tip.main_target().unwrap())
        .unwrap();
    let pinned = (
        hex(&p.consensus_id().0),
        hex(&Sha256::digest(&wire)),
        hex(&tip.id().0),
        outputs.iter().map(|(_, v)| *v).collect::<Vec<u64>>(),
    );
    assert_eq!(
        pinned,
        (
            "61263fe5513d5502269b2f64de561ca44e04d93f01c563503d6af52804a88d01".to_owned(),
            "0ee98cf1ebd1daf194d2e7f9a34f24adc273c79fe85b523f023d171a2dd00e06".to_owned(),
            "b51caa7cc8fc21a77e1c46c8ec63be6b7333af6ba10b04aee66e3bd5c5b585ec".to_owned(),
            vec![400_000, 400_000, 200_000],
        )
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
