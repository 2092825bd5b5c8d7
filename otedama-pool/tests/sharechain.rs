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
use otedama_pool::sharechain::{template_base, PayoutNames};
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

/// `worker`'s share on `job` that meets `target`, judged by `engine`: the actions that follow.
fn solve(
    engine: &mut Engine<u32>,
    job: &PoolJob,
    worker: &str,
    target: &Target,
) -> Vec<Action<u32>> {
    let (e1, e2) = ([1u8, 2, 3, 4], [5u8, 6, 7, 8]);
    let nonce = mine(job, &e1, &e2, target);
    let submission = Submission {
        share: Share {
            job_id: job.job.id.clone(),
            extranonce1: e1.to_vec(),
            extranonce2: e2.to_vec(),
            ntime: job.job.time,
            nonce,
            version_bits: None,
            worker: worker.to_owned(),
        },
        version_mask: 0,
        difficulty: DIFFICULTY,
    };
    let check = engine
        .handle_share(submission, 7, Now::read())
        .expect("the job is known");
    engine.handle_checked(check.verify(&Sha256d::new()), Now::read());
    std::iter::from_fn(|| engine.poll_action()).collect()
}

/// A serialized block and what its coinbase pays, the commitment left out.
fn payouts_of(bytes: &[u8]) -> (Block, Vec<(otedama_core::bitcoin::ScriptBuf, u64)>) {
    let block: Block = deserialize(bytes).expect("block");
    let paid = block.txdata[0]
        .output
        .iter()
        .filter(|o| !o.script_pubkey.is_op_return())
        .map(|o| (o.script_pubkey.clone(), o.value.to_sat()))
        .collect();
    (block, paid)
}

/// The devnet's block difficulty in these tests: a block takes about a thousand hashes.
const DIFFICULTY: f64 = 1.0 / 1024.0;

/// An engine on a fresh sharechain over a devnet, with its common job announced.
struct OnSharechain {
    devnet: Devnet,
    network: Target,
    params: ChainParams,
    engine: Engine<u32>,
    common: std::sync::Arc<PoolJob>,
    pool_script: otedama_core::bitcoin::ScriptBuf,
    /// The least hashrate for a miner's own job.
    threshold: f64,
}

/// Shares far easier than the devnet's blocks, and outputs of at least `min_output`.
fn on_sharechain(min_output: u64) -> OnSharechain {
    let network = DifficultyConvention::Bitcoin.target_for(Difficulty::new(DIFFICULTY).expect("d"));
    let mut devnet = Devnet::new(Box::new(Sha256d::new()), network);
    let template = devnet.template().expect("template");
    let easiest = DifficultyConvention::Bitcoin.target_for(Difficulty::new(1e-6).expect("d"));
    let mut params = ChainParams::main("devnet", Algorithm::Sha256d, "devnet", easiest);
    params.min_output = min_output;
    let chain = Sharechain::new(params.clone());
    let now = Now::read();
    let base = template_base(&chain, &template, u64::from(now.unix_secs())).expect("base");
    let threshold = base.direct_hashrate();
    let pool_script = AddressParams::BITCOIN_REGTEST
        .script_pubkey(POOL)
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
    OnSharechain {
        devnet,
        network,
        params,
        engine,
        common,
        pool_script,
        threshold,
    }
}

const POOL: &str = "bcrt1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqdku202";

#[test]
fn a_miners_own_sharechain_job_pays_it_and_its_block_share_goes_to_both_chains() {
    // With no output floor every miner earns an output of its own, whatever its hashrate.
    let OnSharechain {
        mut devnet,
        network,
        params,
        mut engine,
        common,
        pool_script,
        ..
    } = on_sharechain(0);
    let common_side = common.side.as_ref().expect("a sharechain job");
    assert_eq!(common_side.template.info.payout, pool_script.as_bytes());

    // The miner's own version: its share pays the miner, on the same main-chain work.
    let own = engine
        .own_job(&common.announcement, MINER, 0.0)
        .expect("the miner's own job");
    let miner_script = AddressParams::BITCOIN_REGTEST
        .script_pubkey(MINER)
        .expect("script");
    let side = own.side.as_ref().expect("a sharechain job");
    assert_eq!(side.template.info.payout, miner_script.as_bytes());
    assert_ne!(own.job.id, common.job.id);
    assert_eq!(own.job.prevhash, common.job.prevhash);
    // Asked again, the same job.
    let again = engine
        .own_job(&common.announcement, MINER, 0.0)
        .expect("job");
    assert_eq!(again.job.id, own.job.id);

    // A share that meets the devnet's target: a block, and a sharechain share.
    let actions = solve(&mut engine, &own, &format!("{MINER}.rig"), &network);
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
    let (block, paid) = payouts_of(bytes);
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
        share.header().expect("header").to_bytes()
    );
    // A peer's chain checks it fully: proof of work, target, coinbase binding.
    share.check_pow(&Sha256d::new()).expect("work");
    let mut peer = Sharechain::new(params);
    let added = peer
        .add(share, u64::from(Now::read().unix_secs()))
        .expect("a peer takes the share");
    assert_eq!(added.verification, Verification::Full);

    // Recorded as paid in the coinbase: the ledger owes the miner nothing for it, and the
    // block brings the pool's ledger what the coinbase pays the pool: nothing.
    let Some(Action::SubmitBlock { share: id, .. }) = actions.first() else {
        unreachable!()
    };
    engine.handle_block_result(*id, Ok(()), Now::read());
    let (record, block) = std::iter::from_fn(|| engine.poll_action())
        .find_map(|a| match a {
            Action::Persist { record, block, .. } => Some((record, block)),
            _ => None,
        })
        .expect("the share is recorded");
    assert!(record.direct);
    assert_eq!(block.expect("the block is recorded").reward, 0);
}

/// A miner too small for an output of its own mines the common job: its share pays the pool's
/// address, is recorded as the ledger's to pay, and its block brings the ledger the pool's
/// output.
#[test]
fn a_small_miner_mines_through_the_pool_and_its_ledger_pays_it() {
    // The default floor: ten times the dust limit.
    let OnSharechain {
        network,
        mut engine,
        common,
        pool_script,
        threshold,
        ..
    } = on_sharechain(ChainParams::main("d", Algorithm::Sha256d, "d", Target::MAX).min_output);
    assert!(threshold > 0.0);
    assert!(
        engine
            .own_job(&common.announcement, MINER, threshold * 0.99)
            .is_none(),
        "a miner under the threshold mines the common job"
    );
    assert!(engine
        .own_job(&common.announcement, MINER, threshold)
        .is_some());

    let actions = solve(&mut engine, &common, &format!("{MINER}.small"), &network);
    let Some(Action::SubmitBlock {
        share: id,
        block: FoundBlock::Bitcoin(bytes),
    }) = actions.first()
    else {
        panic!("no block: {actions:?}");
    };
    let (_, paid) = payouts_of(bytes);
    assert_eq!(
        paid,
        vec![(pool_script, DEVNET_REWARD)],
        "the share pays the pool"
    );
    engine.handle_block_result(*id, Ok(()), Now::read());
    let (record, found) = std::iter::from_fn(|| engine.poll_action())
        .find_map(|a| match a {
            Action::Persist { record, block, .. } => Some((record, block)),
            _ => None,
        })
        .expect("the share is recorded");
    assert!(!record.direct, "the ledger owes the small miner its share");
    assert_eq!(record.address, MINER);
    assert_eq!(found.expect("the block").reward, DEVNET_REWARD);
}

/// A running pool's node on its own sharechain: a block whose coinbase pays the pool's
/// output is booked with that output, and at maturity the accounting pays it to the pool's
/// pooled miners by PPLNS, never to a miner whose shares the coinbase paid directly.
#[cfg(feature = "sqlite")]
#[test]
fn the_pools_output_in_a_sharechain_block_is_credited_to_its_pooled_miners() {
    use otedama_p2p::{NetConfig, NodeKey};
    use otedama_pool::accounting::{track_blocks, Accounting, Note, Scheme};
    use otedama_pool::sharechain::{BlockBook, SharechainConfig, SharechainNode};
    use otedama_pool::store::{BlockStatus, LedgerKind, ShareLog, ShareRecord, SqliteStore};
    use otedama_rewards::{FeeRate, Window};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    let dir = std::env::temp_dir().join(format!("otedama-sc-ledger-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let difficulty = 1.0 / 1024.0;
    let network = DifficultyConvention::Bitcoin.target_for(Difficulty::new(difficulty).expect("d"));
    let mut devnet = Devnet::new(Box::new(Sha256d::new()), network);
    let easiest = DifficultyConvention::Bitcoin.target_for(Difficulty::new(1e-6).expect("d"));
    let params = ChainParams::main("devnet", Algorithm::Sha256d, "devnet", easiest);
    let pool_address = POOL;
    let pool_script = AddressParams::BITCOIN_REGTEST
        .script_pubkey(pool_address)
        .expect("script");
    let node = runtime
        .block_on(SharechainNode::start(SharechainConfig {
            params,
            net: NetConfig::default(),
            key: NodeKey::generate().expect("key"),
            store: dir.join("sharechain.sqlite"),
            kernel: Arc::new(Sha256d::new()),
        }))
        .expect("the node starts");
    let (log, writer) = ShareLog::start(Box::new(
        SqliteStore::open(&dir.join("pool.db")).expect("db"),
    ))
    .expect("log");
    let _booking = node.record_blocks(
        log.clone(),
        BlockBook {
            algorithm: "sha256d".into(),
            payout: pool_script.to_bytes(),
            names: PayoutNames::Script(AddressParams::BITCOIN_REGTEST),
        },
    );

    // Shares the pool recorded before the block: a pooled miner's, and a miner's own.
    const DIRECT: &str = "bcrt1q9vza2e8x573nczrlzms0wvx3gsqjx7vavgkx0l";
    let before = i64::from(Now::read().unix_secs()) * 1000 - 5_000;
    for (address, direct) in [(MINER, false), (DIRECT, true)] {
        log.record_share(ShareRecord {
            algorithm: "sha256d".into(),
            time_ms: before,
            address: address.into(),
            worker: String::new(),
            difficulty: 1.0,
            job_id: "1".into(),
            height: 1,
            pow_hash: [0; 32],
            is_block: false,
            network_difficulty: difficulty,
            block_value: DEVNET_REWARD,
            tx_fees: 0,
            direct,
        })
        .expect("recorded");
    }

    // The pool's own share (the common job's) solves a block.
    let template = devnet.template().expect("template");
    let base = runtime
        .block_on(node.service().inspect({
            let template = template.clone();
            move |n| template_base(n.chain(), &template, u64::from(Now::read().unix_secs()))
        }))
        .expect("inspect")
        .expect("base");
    let share_template = base.for_payout(pool_script.as_bytes()).expect("template");
    let extranonce = [7u8; 8];
    let mut header = share_template.header(&extranonce).expect("header");
    while !network.is_met_by(&header.block_hash()) {
        header.nonce += 1;
    }
    let share = share_template.finish(header, &extranonce);
    let block_hash = header.block_hash();
    let added = runtime
        .block_on(node.service().submit(share))
        .expect("service")
        .expect("the node takes its own share");
    assert!(added.new_tip);
    // The block itself, as the pool submits it: the header and the share's coinbase.
    let coinbase = share_template
        .coinbase
        .split_at(4)
        .and_then(|c| c.transaction(&extranonce[..4], &extranonce[4..]))
        .expect("coinbase");
    let raw = template.assemble_block(
        &header,
        &otedama_core::bitcoin::consensus::serialize(&coinbase),
    );
    devnet
        .submit_block(&raw)
        .expect("the devnet takes the block");

    // Booked with the pool's output: here the whole reward, the window being the pool alone.
    let mut display = block_hash;
    display.reverse();
    let hash = otedama_core::encode_hex(&display);
    let deadline = Instant::now() + Duration::from_secs(20);
    let booked = loop {
        let found = log
            .run(|store| store.blocks())
            .expect("blocks")
            .into_iter()
            .find(|b| b.hash == hash);
        if let Some(b) = found {
            break b;
        }
        assert!(Instant::now() < deadline, "the block was never booked");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(booked.reward, DEVNET_REWARD);
    assert_eq!(booked.status, BlockStatus::Submitted);
    assert_eq!(booked.address, pool_address);

    let accounting = Accounting {
        coin: "sha256d".into(),
        scheme: Scheme::Pplns(Window::Duration { ms: 3_600_000 }),
        fee: FeeRate::from_percent(1.0).expect("fee"),
        pool_address: pool_address.into(),
        convention: DifficultyConvention::Bitcoin,
        since_ms: 0,
    };
    let notes = |_: Note| {};
    track_blocks(
        &log,
        &mut devnet,
        &accounting,
        1,
        &notes,
        otedama_pool::accounting::now_ms(),
    )
    .expect("tracked");
    let credit = |address: &str| -> i64 {
        let a = address.to_owned();
        log.run(move |store| store.ledger(&a))
            .expect("ledger")
            .iter()
            .filter(|e| e.kind == LedgerKind::Credit)
            .map(|e| e.amount)
            .sum()
    };
    let fee = i64::try_from(DEVNET_REWARD / 100).expect("fee");
    assert_eq!(
        credit(MINER),
        i64::try_from(DEVNET_REWARD).expect("reward") - fee
    );
    assert_eq!(
        credit(DIRECT),
        0,
        "the coinbase paid this miner; the ledger does not"
    );
    node.shutdown();
    // The runtime's tasks (the booking among them) hold the log: they go with it.
    drop(node);
    drop(runtime);
    drop(log);
    let _ = writer.join();
    let _ = std::fs::remove_dir_all(&dir);
}
