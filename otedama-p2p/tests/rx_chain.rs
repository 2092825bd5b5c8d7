//! A RandomX sharechain: shares whose hashing blob commits, through its tree root, to a devnet
//! coinbase paying the window, with the commitment and the main-chain difficulty as the
//! coinbase's extra data.
#![allow(clippy::unwrap_used)]

use otedama_core::rx::{RxBlob, RxCoinbase, RxPayees, RX_NONCE_OFFSET};
use otedama_core::{monero_check_hash, monero_target, sha256d, Target};
use otedama_hash::{Algorithm, PowAlgorithm, RandomX, RandomXMode};
use otedama_p2p::{
    ChainParams, Layout, MainProof, Message, RxMainWork, RxShareTemplate, Share, ShareError,
    Sharechain, Verification, RX_EXTRA_PREFIX,
};

mod support;

use support::is_invalid;

const T0: u64 = 1_700_000_000;
const REWARD: u64 = 600_000_000_000;
const ALICE: &[u8] = b"44AliceAddressAsTheDevnetCoinbaseWritesIt";
const BOB: &[u8] = b"44BobAddressAsTheDevnetCoinbaseWritesIt";

fn params(max_target: Target) -> ChainParams {
    ChainParams {
        window_max_shares: 20,
        ..ChainParams::main("devnet", Algorithm::RandomX, "devnet", max_target)
    }
}

/// A node's blob for main-chain height `height`: its tree root and nonce are the share's.
fn main_work(height: u64, difficulty: u64) -> RxMainWork {
    let blob = RxBlob {
        major: 16,
        minor: 16,
        timestamp: T0,
        prev_id: [height as u8; 32],
        nonce: 0,
        tree_root: [0; 32],
        tx_count: 1,
    };
    RxMainWork {
        blob: blob.to_bytes(),
        height,
        difficulty,
        reward: REWARD,
    }
}

fn template(chain: &Sharechain, payout: &[u8], secs: u64, session: u8) -> RxShareTemplate {
    chain
        .rx_template_base(main_work(5, 1_000_000), T0 + secs)
        .unwrap()
        .for_rx_payout(payout, [session; 8])
        .unwrap()
}

/// A chain of `n` shares, 10 s apart, alternating between two payouts.
fn grow(chain: &mut Sharechain, n: u64) -> Vec<Share> {
    (0..n)
        .map(|i| {
            let payout = if i % 2 == 0 { ALICE } else { BOB };
            let share = template(chain, payout, 10 * i, i as u8).finish(i as u32);
            chain.add(share.clone(), T0 + 10 * i).unwrap();
            share
        })
        .collect()
}

#[test]
fn a_peer_rebuilds_every_coinbase_and_accepts_the_chain() {
    let p = params(Target::MAX);
    let mut chain = Sharechain::new(p.clone());
    let shares = grow(&mut chain, 6);
    let mut peer = Sharechain::new(p);
    for s in &shares {
        let added = peer.add(s.clone(), T0 + 100).unwrap();
        assert_eq!(added.verification, Verification::Full);
    }
    assert_eq!(peer.tip().unwrap().share.id(), shares[5].id());

    // The next share's coinbase pays both miners the whole reward, and carries the
    // commitment and the main chain's difficulty as its extra data.
    let t = template(&chain, ALICE, 60, 9);
    let coinbase = RxCoinbase::parse(&t.coinbase).unwrap();
    assert_eq!((coinbase.height, coinbase.reserved), (5, [9; 8]));
    let RxPayees::Outputs { outputs, extra } = &coinbase.payees else {
        panic!("a sharechain coinbase lists its outputs");
    };
    let payouts: Vec<&[u8]> = outputs.iter().map(|(p, _)| p.as_slice()).collect();
    assert!(
        payouts.contains(&ALICE) && payouts.contains(&BOB),
        "{payouts:?}"
    );
    assert_eq!(coinbase.payees.total(), Some(REWARD));
    assert_eq!(&extra[..4], &RX_EXTRA_PREFIX);
    assert_eq!(&extra[4..36], &t.info.commitment(chain.consensus_id()));
    assert_eq!(&extra[36..], &1_000_000u64.to_le_bytes());
    // The blob is the node's, with the coinbase's root and a zero nonce.
    let blob = RxBlob::parse(&t.blob).unwrap();
    assert_eq!(blob.tree_root, sha256d(&t.coinbase));
    assert_eq!((blob.prev_id, blob.nonce, blob.timestamp), ([5; 32], 0, T0));
    let share = t.finish(0xdead_beef);
    let MainProof::RandomX(proof) = &share.main else {
        panic!("a randomx share");
    };
    assert_eq!(
        &proof.blob[RX_NONCE_OFFSET..RX_NONCE_OFFSET + 4],
        &0xdead_beefu32.to_le_bytes()
    );
    assert_eq!(share.id().0, sha256d(&proof.blob));
    assert_eq!(share.main_target().unwrap(), monero_target(1_000_000));
}

#[test]
fn shares_that_do_not_commit_to_their_coinbase_are_refused() {
    let p = params(Target::MAX);
    let mut chain = Sharechain::new(p.clone());
    grow(&mut chain, 3);
    let good = template(&chain, ALICE, 30, 3).finish(7);

    let edit = |f: &dyn Fn(&mut otedama_p2p::RxProof)| {
        let mut s = good.clone();
        let MainProof::RandomX(proof) = &mut s.main else {
            unreachable!()
        };
        f(proof);
        s
    };
    // Another session's reserved bytes: another coinbase than the blob's root commits to.
    is_invalid(
        chain.add(edit(&|p| p.reserved = [0xee; 8]), T0 + 30),
        "window's outputs",
    );
    // A lower main-chain difficulty (a smaller window) than the coinbase committed to.
    is_invalid(
        chain.add(edit(&|p| p.difficulty = 10), T0 + 30),
        "window's outputs",
    );
    is_invalid(chain.add(edit(&|p| p.difficulty = 0), T0 + 30), "zero");
    is_invalid(
        chain.add(edit(&|p| p.blob.push(0)), T0 + 30),
        "hashing blob",
    );
    // The payout changed after the fact.
    let mut s = good.clone();
    s.info.payout = BOB.to_vec();
    is_invalid(chain.add(s, T0 + 30), "window's outputs");
    chain.add(good, T0 + 30).unwrap();

    // A share of the other layout never enters, whatever it commits to.
    let bitcoin = Sharechain::new(ChainParams::main(
        "devnet",
        Algorithm::Sha256d,
        "devnet",
        Target::MAX,
    ));
    assert!(bitcoin.rx_template_base(main_work(5, 1_000), T0).is_err());
    let mut fresh = Sharechain::new(p);
    let genesis = template(&fresh, ALICE, 0, 0).finish(0);
    let mut other = genesis.clone();
    other.main = MainProof::Bitcoin(otedama_p2p::BitcoinProof {
        header: otedama_core::BlockHeader {
            version: 1,
            prev_blockhash: [0; 32],
            merkle_root: [0; 32],
            time: 0,
            bits: otedama_core::CompactTarget::from_consensus(0x207f_ffff),
            nonce: 0,
        },
        extranonce: vec![],
        witness_root: None,
        branch: otedama_core::MerkleBranch::default(),
    });
    is_invalid(fresh.add(other, T0), "layout");
    assert!(fresh.rx_template_base(main_work(5, 0), T0).is_err());
    fresh.add(genesis, T0).unwrap();
}

#[test]
fn randomx_shares_travel_in_their_own_messages() {
    let mut chain = Sharechain::new(params(Target::MAX));
    let shares = grow(&mut chain, 3);
    let announce = Message::Announce(Box::new(shares[2].clone()));
    let bytes = announce.encode();
    assert_eq!(Message::decode(&bytes).unwrap(), announce);
    let batch = Message::Shares(shares.clone());
    assert_eq!(Message::decode(&batch.encode()).unwrap(), batch);
    // Read in the Bitcoin layout, the bytes are not a share.
    assert!(Share::from_bytes(&shares[0].to_bytes()).is_err());
    assert_eq!(
        Share::from_bytes_in(&shares[0].to_bytes(), Layout::RandomX).unwrap(),
        shares[0]
    );
}

#[test]
fn the_proof_of_work_is_randomx_over_the_blob() {
    // Shares at Monero difficulty 8: one hash in eight meets the target.
    let p = params(monero_target(8));
    let chain = Sharechain::new(p);
    let kernel = RandomX::new(b"otedama randomx devnet seed 0001", RandomXMode::Light, 1).unwrap();
    let t = template(&chain, ALICE, 0, 1);
    let (mut met, mut missed) = (None, None);
    for nonce in 0u32..200 {
        let share = t.finish(nonce);
        let hash = kernel.hash(&share.pow_input()).unwrap().hash;
        let slot = if monero_check_hash(&hash, 8) {
            &mut met
        } else {
            &mut missed
        };
        slot.get_or_insert(share);
        if met.is_some() && missed.is_some() {
            break;
        }
    }
    met.unwrap().check_pow(&kernel).unwrap();
    assert!(matches!(
        missed.unwrap().check_pow(&kernel),
        Err(ShareError::InsufficientWork { .. })
    ));
}
