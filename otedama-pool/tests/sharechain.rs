//! The engine on a sharechain, in memory: a job's coinbase is the sharechain's, each miner's
//! own job pays the miner, and a share that meets both targets goes to the main chain first
//! and then to the sharechain, where a peer's chain takes it.

#![cfg(all(feature = "devnet", feature = "p2p"))]

use otedama_core::bitcoin::consensus::deserialize;
use otedama_core::bitcoin::Block;
use otedama_core::{
    stratum_merkle_root, AddressParams, BlockHeader, CompactTarget, Difficulty,
    DifficultyConvention, Share, Target,
};
use otedama_hash::{Algorithm, PowAlgorithm, ScanJob, Sha256d};
use otedama_p2p::{ChainParams, Sharechain, Verification};
use otedama_pool::sharechain::template_base;
use otedama_pool::source::devnet::{Devnet, DEVNET_REWARD};
use otedama_pool::{
    Action, BlockSubmitter, Engine, EngineConfig, FoundBlock, Now, PoolJob, Submission,
    TemplateSource,
};

const MINER: &str = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";

/// A nonce whose header, built from the job's notify fields as a miner does, meets `target`.
fn mine(job: &PoolJob, e1: &[u8], e2: &[u8], target: &Target) -> u32 {
    let n = &job.announcement.notify;
    let root = stratum_merkle_root(&n.coinb1, e1, e2, &n.coinb2, &job.job.merkle_branch);
    let header = BlockHeader {
        version: n.version,
        prev_blockhash: n.prevhash,
        merkle_root: root,
        time: n.ntime,
        bits: CompactTarget::from_consensus(n.nbits),
        nonce: 0,
    };
    let mut worker = Sha256d::new().worker().expect("worker");
    let scan = ScanJob::header80(header.to_bytes());
    let (mut found, mut start) = (Vec::new(), 0u64);
    while found.is_empty() {
        worker
            .scan(&scan, start..start + 65_536, target, &mut found)
            .expect("scan");
        start += 65_536;
    }
    found[0].nonce as u32
}

#[test]
fn a_miners_own_sharechain_job_pays_it_and_its_block_share_goes_to_both_chains() {
    let difficulty = 1.0 / 1024.0;
    let network = DifficultyConvention::Bitcoin.target_for(Difficulty::new(difficulty).expect("d"));
    let mut devnet = Devnet::new(Box::new(Sha256d::new()), network);
    let template = devnet.template().expect("template");
    // The sharechain's easiest share is easier than the devnet's blocks.
    let easiest = DifficultyConvention::Bitcoin.target_for(Difficulty::new(1e-6).expect("d"));
    let mut params = ChainParams::main("devnet", Algorithm::Sha256d, "devnet", easiest);
    params.min_output = 0;
    let chain = Sharechain::new(params.clone());
    let now = Now::read();
    let base = template_base(&chain, &template, u64::from(now.unix_secs())).expect("base");
    let pool_script = AddressParams::BITCOIN_REGTEST
        .script_pubkey("bcrt1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqdku202")
        .expect("script");
    let mut engine: Engine<u32> = Engine::new(EngineConfig {
        algorithm: "sha256d".into(),
        convention: DifficultyConvention::Bitcoin,
        chain: AddressParams::BITCOIN_REGTEST,
        payout: pool_script.clone(),
        pool_tag: b"/otedama/".to_vec(),
        solo_fee: None,
    });
    engine.handle_sharechain_work(template, base, now);
    let common = std::iter::from_fn(|| engine.poll_action())
        .find_map(|a| match a {
            Action::Announce { job } => Some(job),
            _ => None,
        })
        .expect("a job is announced");
    let common_side = common.side.as_ref().expect("a sharechain job");
    assert_eq!(common_side.template.info.payout, pool_script.as_bytes());

    // The miner's own version: its share pays the miner, on the same main-chain work.
    let own = engine
        .own_job(&common.announcement, MINER)
        .expect("the miner's own job");
    let miner_script = AddressParams::BITCOIN_REGTEST
        .script_pubkey(MINER)
        .expect("script");
    let side = own.side.as_ref().expect("a sharechain job");
    assert_eq!(side.template.info.payout, miner_script.as_bytes());
    assert_ne!(own.job.id, common.job.id);
    assert_eq!(own.job.prevhash, common.job.prevhash);
    // Asked again, the same job.
    let again = engine.own_job(&common.announcement, MINER).expect("job");
    assert_eq!(again.job.id, own.job.id);

    // A share that meets the devnet's target: a block, and a sharechain share.
    let (e1, e2) = ([1u8, 2, 3, 4], [5u8, 6, 7, 8]);
    let nonce = mine(&own, &e1, &e2, &network);
    let submission = Submission {
        share: Share {
            job_id: own.job.id.clone(),
            extranonce1: e1.to_vec(),
            extranonce2: e2.to_vec(),
            ntime: own.job.time,
            nonce,
            version_bits: None,
            worker: format!("{MINER}.rig"),
        },
        version_mask: 0,
        difficulty,
    };
    let check = engine
        .handle_share(submission, 7, now)
        .expect("the job is known");
    let checked = check.verify(&Sha256d::new());
    engine.handle_checked(checked, Now::read());
    let actions: Vec<Action<u32>> = std::iter::from_fn(|| engine.poll_action()).collect();
    assert!(
        matches!(actions.first(), Some(Action::SubmitBlock { .. })),
        "the block goes out first: {actions:?}"
    );
    let Some(Action::SubmitBlock {
        block: FoundBlock::Bitcoin(bytes),
        ..
    }) = actions.first()
    else {
        unreachable!()
    };
    devnet
        .submit_block(bytes)
        .expect("the devnet takes the block");
    // The block's coinbase is the sharechain's: the first share's window is its own miner.
    let block: Block = deserialize(bytes).expect("block");
    let paid: Vec<_> = block.txdata[0]
        .output
        .iter()
        .filter(|o| !o.script_pubkey.is_op_return())
        .map(|o| (o.script_pubkey.clone(), o.value.to_sat()))
        .collect();
    assert_eq!(paid, vec![(miner_script, DEVNET_REWARD)]);

    let share = actions
        .iter()
        .find_map(|a| match a {
            Action::SideShare { share } => Some((**share).clone()),
            _ => None,
        })
        .expect("the share goes to the sharechain");
    // Its header is the block's.
    assert_eq!(
        otedama_core::BlockHeader::from(block.header).to_bytes(),
        share.header.to_bytes()
    );
    // A peer's chain checks it fully: proof of work, target, coinbase binding.
    share.check_pow(&Sha256d::new()).expect("work");
    let mut peer = Sharechain::new(params);
    let added = peer
        .add(share, u64::from(Now::read().unix_secs()))
        .expect("a peer takes the share");
    assert_eq!(added.verification, Verification::Full);
}
