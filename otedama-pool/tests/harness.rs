//! The whole share path in memory, no sockets: the engine, the embedded devnet, a real
//! Stratum v1 pool session and a real miner session passing lines to each other, a real
//! SQLite share log, and time passed in by the test.

#![cfg(all(feature = "devnet", feature = "sqlite"))]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use otedama_core::{Difficulty, DifficultyConvention};
use otedama_hash::{PowAlgorithm, Sha256d};
use otedama_pool::accounting::{
    pay, track_blocks, track_blocks_reading, Accounting, Note, PaymentRules, Scheme,
};
use otedama_pool::source::devnet::{Devnet, DevnetWallet, DEVNET_REWARD};
use otedama_pool::store::{BlockStatus, LedgerKind, PaymentStatus, SqliteStore};
use otedama_pool::{
    Action, Engine, EngineConfig, FoundBlock, Now, Report, ShareError, ShareLog, Stage, StoreError,
    Submission, TemplateSource,
};
use otedama_rewards::{FeeRate, Window};
use otedama_stratum::{
    ExtranonceAllocator, MinerConfig, MinerEvent, MinerJob, MinerSession, PoolConfig, PoolEvent,
    PoolSession, ShareToken, ShareVerdict, VardiffConfig,
};

const MINER: &str = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";
/// The pool's own address: a 20-byte program nobody holds the key to.
fn pool_address() -> String {
    use otedama_core::bitcoin::bech32::{segwit, Hrp};
    segwit::encode(
        Hrp::parse("bcrt").expect("hrp"),
        segwit::VERSION_0,
        &[7u8; 20],
    )
    .expect("address")
}

struct Harness {
    engine: Engine<ShareToken>,
    devnet: Devnet,
    pool: PoolSession,
    miner: MinerSession,
    kernel: Sha256d,
    log: ShareLog,
    dir: PathBuf,
    now: Instant,
    now_ms: i64,
    jobs: Vec<MinerJob>,
    results: Vec<bool>,
    reports: Vec<Report>,
    /// Storage refuses the next share when set: the engine must not acknowledge it.
    refuse_next: bool,
    /// Block submissions and commits are held back, not carried out, while set: a lost
    /// thread or a hung node or database, as the engine sees them.
    hold: bool,
    held: Vec<Action<ShareToken>>,
}

/// The directory of the harness named `name`, as it is.
fn temp_dir_of(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("otedama-harness-{}-{name}", std::process::id()))
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = temp_dir_of(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

impl Harness {
    fn new(name: &str, share_difficulty: f64, network_difficulty: f64) -> Harness {
        Harness::build(name, share_difficulty, network_difficulty, false)
    }

    fn build(name: &str, share_difficulty: f64, network_difficulty: f64, vardiff: bool) -> Harness {
        let chain = otedama_core::AddressParams::BITCOIN_REGTEST;
        let devnet = Devnet::new(
            Box::new(Sha256d::new()),
            DifficultyConvention::Bitcoin
                .target_for(Difficulty::new(network_difficulty).expect("difficulty")),
        );
        let engine = Engine::new(EngineConfig {
            algorithm: "sha256d".into(),
            convention: DifficultyConvention::Bitcoin,
            chain,
            payout: chain.script_pubkey(&pool_address()).expect("pool address"),
            pool_tag: b"/harness/".to_vec(),
            solo_fee: None,
        });
        let dir = temp_dir(name);
        let store = SqliteStore::open(&dir.join("pool.db")).expect("store");
        let (log, _writer) = ShareLog::start(Box::new(store)).expect("share log");
        let now = Instant::now();
        let config = PoolConfig {
            initial_difficulty: share_difficulty,
            vardiff_enabled: vardiff,
            vardiff: VardiffConfig {
                min_difficulty: share_difficulty / 1000.0,
                ..VardiffConfig::default()
            },
            ..PoolConfig::default()
        };
        let allocator = ExtranonceAllocator::new(&[], 4).expect("allocator");
        let pool = PoolSession::new(Arc::new(config), allocator, now);
        let mut miner = MinerSession::new(
            MinerConfig {
                user: format!("{MINER}.rig1"),
                ..MinerConfig::default()
            },
            now,
        );
        miner.start();
        let mut h = Harness {
            engine,
            devnet,
            pool,
            miner,
            kernel: Sha256d::new(),
            log,
            dir,
            now,
            now_ms: 1_800_000_000_000,
            jobs: Vec::new(),
            results: Vec::new(),
            reports: Vec::new(),
            refuse_next: false,
            hold: false,
            held: Vec::new(),
        };
        h.new_template();
        h.exchange();
        h
    }

    fn new_template(&mut self) {
        let template = self.devnet.template().expect("template");
        self.engine.handle_template(template, self.clock());
    }

    fn clock(&self) -> Now {
        Now {
            instant: self.now,
            unix_ms: self.now_ms,
        }
    }

    /// Moves time on by `by`, and lets the engine act on the deadlines that passed.
    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.now_ms += by.as_millis() as i64;
        if self.engine.poll_timeout().is_some_and(|at| at <= self.now) {
            self.engine.handle_timeout(self.clock());
        }
    }

    /// Moves lines, events and actions until nothing is left to do.
    fn exchange(&mut self) {
        loop {
            let mut moved = false;
            while let Some(line) = self.miner.poll_output() {
                self.pool.handle_line(line.trim_end().as_bytes(), self.now);
                moved = true;
            }
            while let Some(line) = self.pool.poll_output() {
                self.miner.handle_line(line.trim_end().as_bytes(), self.now);
                moved = true;
            }
            while let Some(event) = self.miner.poll_event() {
                match event {
                    MinerEvent::NewJob(job) => self.jobs.push(job),
                    MinerEvent::ShareResult { accepted, .. } => self.results.push(accepted),
                    _ => {}
                }
                moved = true;
            }
            while let Some(event) = self.pool.poll_event() {
                match event {
                    PoolEvent::Authorize {
                        token, username, ..
                    } => {
                        let verdict = self
                            .engine
                            .authorize(&username)
                            .map(|_| ())
                            .map_err(|e| e.to_string());
                        self.pool.authorize_result(token, verdict);
                    }
                    PoolEvent::Share(share) => {
                        let token = share.token;
                        let now = self.clock();
                        if let Some(check) =
                            self.engine
                                .handle_share(Submission::from(&share), token, now)
                        {
                            let checked = check.verify(&self.kernel);
                            self.engine.handle_checked(checked, now);
                        }
                    }
                    _ => {}
                }
                moved = true;
            }
            while let Some(action) = self.engine.poll_action() {
                let action = match action {
                    held @ (Action::SubmitBlock { .. } | Action::Persist { .. }) if self.hold => {
                        self.held.push(held);
                        moved = true;
                        continue;
                    }
                    action => action,
                };
                match action {
                    Action::Announce { job } => self.pool.send_job(&job.announcement, self.now),
                    Action::SubmitBlock {
                        share,
                        block: FoundBlock::Bitcoin(block),
                    } => {
                        let result =
                            otedama_pool::BlockSubmitter::submit_block(&mut self.devnet, &block);
                        self.engine.handle_block_result(share, result, self.clock());
                    }
                    Action::Persist {
                        share,
                        record,
                        block,
                    } => {
                        if let Some(block) = block {
                            self.log.record_block(block).expect("block recorded");
                        }
                        let durable = if std::mem::take(&mut self.refuse_next) {
                            Err(StoreError::database(std::io::Error::other("disk full")))
                        } else {
                            self.log.record_share(record)
                        };
                        self.engine.handle_persisted(share, durable);
                    }
                    Action::Answer { reply, verdict, .. } => self.pool.share_result(reply, verdict),
                    Action::Report(report) => self.reports.push(report),
                    Action::RefreshWork => self.new_template(),
                    _ => {}
                }
                moved = true;
            }
            if !moved {
                return;
            }
        }
    }

    /// The first nonce on the latest job whose hash meets (or, with `meet` false, misses)
    /// `target`, submitted by the miner.
    fn mine(&mut self, target: &otedama_core::Target, meet: bool) -> [u8; 32] {
        let job = self.jobs.last().expect("a job").clone();
        let en2 = vec![0u8; job.extranonce2_size];
        let ntime = job.notify.ntime;
        for nonce in 0..u32::MAX {
            let header = job.header(&en2, ntime, nonce, None).expect("header");
            let hash = self.kernel.hash(&header).expect("hash").hash;
            if target.is_met_by(&hash) == meet {
                self.miner.submit(job.share(&en2, ntime, nonce, None));
                self.exchange();
                return hash;
            }
        }
        panic!("no nonce found");
    }

    /// Mines shares through the whole path until the devnet's height grows by one.
    fn mine_block(&mut self) {
        let height = self.devnet.height();
        while self.devnet.height() == height {
            let target = self.share_target();
            self.mine(&target, true);
            self.advance(Duration::from_secs(1));
            // A fresh job: a new extranonce space, or the next height after the block.
            self.new_template();
            self.exchange();
        }
    }

    fn share_target(&self) -> otedama_core::Target {
        self.jobs
            .last()
            .expect("job")
            .share_target(DifficultyConvention::Bitcoin)
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn a_share_is_answered_only_once_durable_and_a_block_goes_to_the_chain_first() {
    let mut h = Harness::new("block", 1e-6, 2e-5);
    assert_eq!(h.jobs.len(), 1, "the miner got the first job");
    let network = h
        .engine
        .job(&h.jobs[0].notify.job_id)
        .expect("job")
        .network_target;

    // Shares until one is a block.
    let mut shares = 0;
    loop {
        let target = h.share_target();
        let hash = h.mine(&target, true);
        shares += 1;
        assert_eq!(h.results.last(), Some(&true), "share {shares} accepted");
        if network.is_met_by(&hash) {
            break;
        }
        // A new extranonce space for the next share: a fresh job at the same height.
        h.advance(Duration::from_secs(1));
        h.new_template();
        h.exchange();
    }
    assert_eq!(h.devnet.height(), 1, "the block is on the devnet chain");
    let stats = h.engine.stats();
    assert_eq!((stats.accepted, stats.blocks), (shares, 1));
    assert!(h.reports.iter().any(|r| matches!(
        r,
        Report::BlockSubmitted { result: Ok(()), finder, .. } if finder == MINER
    )));
    assert!(h.log.flush(Duration::from_secs(10)));
    let (count, blocks) = h
        .log
        .run(|store| Ok((store.share_count()?, store.blocks()?)))
        .expect("read back");
    assert_eq!(count, shares, "every accepted share is on disk");
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].status, BlockStatus::Accepted);
    assert_eq!(blocks[0].address, MINER);

    // The tip moved: the next template is a clean job, and the old job's shares are stale.
    let old = h.jobs.last().expect("job").clone();
    h.new_template();
    h.exchange();
    assert!(h
        .reports
        .iter()
        .any(|r| matches!(r, Report::NewHeight { height: 2 })));
    assert!(h.jobs.last().expect("job").clean);
    assert!(h.engine.job(&old.notify.job_id).is_none());
}

#[test]
fn low_difficulty_and_undurable_shares_are_not_accepted() {
    let mut h = Harness::new("reject", 1e-6, 1e-3);
    let target = h.share_target();
    h.mine(&target, false);
    assert_eq!(h.results, vec![false], "a hash missing the share target");
    h.refuse_next = true;
    h.advance(Duration::from_secs(1));
    h.mine(&target, true);
    assert_eq!(h.results, vec![false, false], "storage refused it");
    assert_eq!(h.engine.stats().accepted, 0);
    assert_eq!(h.engine.in_flight(), 0, "nothing left waiting");
    h.new_template();
    h.exchange();
    h.mine(&target, true);
    assert_eq!(h.results.last(), Some(&true));
    assert_eq!(h.engine.stats().rejected, 2);
}

#[test]
fn workers_with_addresses_of_another_chain_are_refused() {
    let h = Harness::new("authorize", 1e-6, 1e-3);
    assert!(h
        .engine
        .authorize("1BoatSLRHtKNngkdXEeobR76b53LETtpyT.rig")
        .is_err());
    assert!(h.engine.authorize("not an address").is_err());
    let id = h
        .engine
        .authorize(&format!("{}.rig+0.5", MINER.to_uppercase()))
        .expect("bech32 in upper case is the same address");
    assert_eq!(id.address, MINER);
    assert_eq!(id.difficulty, Some(0.5));
}

#[test]
fn a_found_block_is_credited_at_maturity_through_pplns() {
    let mut h = Harness::new("maturity", 1e-6, 2e-5);
    let network = h
        .engine
        .job(&h.jobs[0].notify.job_id)
        .expect("job")
        .network_target;
    loop {
        let target = h.share_target();
        let hash = h.mine(&target, true);
        if network.is_met_by(&hash) {
            break;
        }
        h.advance(Duration::from_secs(1));
        h.new_template();
        h.exchange();
    }
    let accounting = Accounting {
        coin: "sha256d".into(),
        scheme: Scheme::from_name("pplns", Window::Duration { ms: 3_600_000 }).expect("scheme"),
        fee: FeeRate::from_percent(1.0).expect("fee"),
        pool_address: pool_address(),
        convention: DifficultyConvention::Bitcoin,
        since_ms: 0,
    };
    let notes = |_: Note| {};
    let maturity = 3;
    // One confirmation: tracked, not yet credited.
    track_blocks(
        &h.log,
        &mut h.devnet,
        &accounting,
        maturity,
        &notes,
        h.now_ms,
    )
    .expect("check");
    let credited = |log: &ShareLog| {
        log.run(|store| store.ledger_totals("sha256d"))
            .expect("totals")
    };
    assert!(credited(&h.log).is_empty());
    // Two more blocks on top (mined by the pool's own miner through the same path).
    for _ in 0..2 {
        h.new_template();
        h.exchange();
        let height = h.devnet.height();
        while h.devnet.height() == height {
            let target = h.share_target();
            h.mine(&target, true);
            h.advance(Duration::from_secs(1));
            if h.devnet.height() == height {
                h.new_template();
                h.exchange();
            }
        }
    }
    // Credited through a second connection to the database, which reads the window off the
    // share log's writer thread.
    let mut reader: Option<Box<dyn otedama_pool::store::Store>> = Some(Box::new(
        SqliteStore::open(&temp_dir_of("maturity").join("pool.db")).expect("a reader"),
    ));
    track_blocks_reading(
        &h.log,
        &mut reader,
        &mut h.devnet,
        &accounting,
        maturity,
        &notes,
        h.now_ms,
    )
    .expect("check");
    assert!(reader.is_some(), "the reader kept working");
    let totals = credited(&h.log);
    let sum: i64 = totals.iter().map(|(_, v)| v).sum();
    assert!(sum > 0, "the first block is credited: {totals:?}");
    // Every block is credited in full: miners' parts and the fee add up to the reward.
    let blocks = h.log.run(|store| store.blocks()).expect("blocks");
    let confirmed = blocks
        .iter()
        .filter(|b| b.status == BlockStatus::Confirmed)
        .count() as i64;
    assert!(confirmed >= 1);
    assert_eq!(sum, confirmed * DEVNET_REWARD as i64);
    let fee: i64 = totals
        .iter()
        .filter(|(k, _)| *k == LedgerKind::Fee)
        .map(|(_, v)| v)
        .sum();
    assert_eq!(fee, confirmed * (DEVNET_REWARD as i64 / 100));
    let balances = h
        .log
        .run(|store| store.balances("sha256d"))
        .expect("balances");
    assert!(balances.iter().any(|(a, v)| a == MINER && *v > 0));
}

#[test]
fn stale_shares_after_a_new_block_are_answered_at_once() {
    let mut h = Harness::new("stale", 1e-6, 1e-3);
    let old = h.jobs.last().expect("job").clone();
    // Another block arrives from elsewhere: mine the devnet directly.
    let template = h.devnet.template().expect("template");
    let mut book = otedama_pool::JobBook::default();
    let job = book
        .make(
            Arc::new(template),
            &otedama_core::AddressParams::BITCOIN_REGTEST
                .script_pubkey(&pool_address())
                .expect("script"),
            b"/other/",
            true,
            (h.now_ms / 1000) as u32,
        )
        .expect("job");
    let share = |nonce| otedama_core::Share {
        job_id: job.job.id.clone(),
        extranonce1: vec![0; 4],
        extranonce2: vec![0; 4],
        ntime: job.job.time,
        nonce,
        version_bits: None,
        worker: String::new(),
    };
    let block = (0..u32::MAX)
        .find_map(|n| {
            match otedama_pool::validate(
                &job,
                &share(n),
                0,
                1e-9,
                &h.kernel,
                DifficultyConvention::Bitcoin,
            ) {
                Ok(otedama_pool::Outcome::Block { block, .. }) => Some(block),
                _ => None,
            }
        })
        .expect("a block");
    otedama_pool::BlockSubmitter::submit_block(&mut h.devnet, &block).expect("accepted");
    h.new_template();
    h.exchange();
    // The miner still submits on the old job: the session forgot it, or the engine did.
    let en2 = vec![0u8; old.extranonce2_size];
    h.miner.submit(old.share(&en2, old.notify.ntime, 1, None));
    h.exchange();
    assert_eq!(h.results, vec![false]);
    assert_eq!(h.engine.in_flight(), 0);
    let _ = ShareVerdict::Stale;
}

fn pplns() -> Accounting {
    Accounting {
        coin: "sha256d".into(),
        scheme: Scheme::from_name("pplns", Window::Duration { ms: 3_600_000 }).expect("scheme"),
        fee: FeeRate::from_percent(1.0).expect("fee"),
        pool_address: pool_address(),
        convention: DifficultyConvention::Bitcoin,
        since_ms: 0,
    }
}

#[test]
fn the_devnet_wallet_pays_credited_balances_once_and_the_payment_confirms() {
    let mut h = Harness::new("payment", 1e-6, 2e-5);
    let accounting = pplns();
    let notes = |_: Note| {};
    let maturity = 2;
    h.mine_block();
    h.mine_block();
    track_blocks(
        &h.log,
        &mut h.devnet,
        &accounting,
        maturity,
        &notes,
        h.now_ms,
    )
    .expect("check");
    let balances = h
        .log
        .run(|store| store.balances("sha256d"))
        .expect("balances");
    let owed = balances
        .iter()
        .find(|(a, _)| a == MINER)
        .map(|(_, v)| *v)
        .expect("the miner is credited");
    assert!(owed > 0);

    let mut wallet = DevnetWallet::new(
        h.devnet.clone(),
        otedama_core::AddressParams::BITCOIN_REGTEST,
        &pool_address(),
        maturity as u64,
    )
    .expect("wallet");
    let rules = PaymentRules {
        threshold: 1,
        max_outputs: 10,
        fee_from_miners: false,
        interval: Duration::from_secs(600),
        confirmations: 2,
        payer: "harness".into(),
    };
    pay(&h.log, &mut wallet, &accounting, &rules, &notes, h.now_ms).expect("payment round");
    let payments = h
        .log
        .run(|store| store.payments("sha256d"))
        .expect("payments");
    assert_eq!(payments.len(), 1, "{payments:?}");
    let payment = &payments[0];
    assert_eq!(payment.status, PaymentStatus::Sent);
    assert_eq!(payment.outputs, vec![(MINER.to_owned(), owed as u64)]);
    // The transaction the wallet broadcast pays the miner exactly its balance.
    let txid = payment.txid.clone().expect("txid");
    let outputs = h.devnet.broadcast_outputs(&txid).expect("broadcast");
    let miner_script = otedama_core::AddressParams::BITCOIN_REGTEST
        .script_pubkey(MINER)
        .expect("script");
    assert!(
        outputs.contains(&(miner_script, owed as u64)),
        "{outputs:?}"
    );
    let balances = h
        .log
        .run(|store| store.balances("sha256d"))
        .expect("balances");
    assert!(!balances.iter().any(|(a, _)| a == MINER), "{balances:?}");
    // A second round pays nothing twice.
    pay(&h.log, &mut wallet, &accounting, &rules, &notes, h.now_ms).expect("second round");
    assert_eq!(
        h.log
            .run(|store| store.payments("sha256d"))
            .expect("payments")
            .len(),
        1
    );
    // Two blocks later the payment is buried deep enough and reconciliation confirms it.
    h.mine_block();
    h.mine_block();
    pay(&h.log, &mut wallet, &accounting, &rules, &notes, h.now_ms).expect("third round");
    let payments = h
        .log
        .run(|store| store.payments("sha256d"))
        .expect("payments");
    assert_eq!(payments[0].status, PaymentStatus::Confirmed);
}

#[test]
fn vardiff_raises_the_difficulty_of_a_miner_that_shares_too_fast() {
    let mut h = Harness::build("vardiff", 1e-6, 1.0, true);
    let first = h.jobs.last().expect("job").difficulty;
    // A share a second against a ten-second target, for longer than a retarget interval.
    for _ in 0..70 {
        let target = h.share_target();
        h.mine(&target, true);
        h.advance(Duration::from_secs(1));
        h.new_template();
        h.exchange();
    }
    let last = h.jobs.last().expect("job").difficulty;
    assert!(last > first, "difficulty {first} -> {last}");
    assert!(h.results.iter().all(|accepted| *accepted));
    // Shares at the raised difficulty are recorded with it: the work each one counts for.
    assert!(h.log.flush(Duration::from_secs(10)));
    let shares = h.log.run(|store| store.shares(1_000)).expect("shares");
    assert!(shares.iter().any(|s| s.difficulty == last), "{last}");
}

#[test]
fn a_reorganisation_reverses_the_credits_of_the_blocks_it_orphans() {
    let mut h = Harness::new("orphan", 1e-6, 2e-5);
    let accounting = pplns();
    let notes = |_: Note| {};
    let maturity = 2;
    h.mine_block();
    h.mine_block();
    track_blocks(
        &h.log,
        &mut h.devnet,
        &accounting,
        maturity,
        &notes,
        h.now_ms,
    )
    .expect("check");
    let credited: i64 = h
        .log
        .run(|store| store.balances("sha256d"))
        .expect("balances")
        .iter()
        .map(|(_, v)| v)
        .sum();
    assert_eq!(
        credited, DEVNET_REWARD as i64,
        "the first block is credited"
    );
    // Both blocks leave the main chain.
    assert!(h.devnet.orphan_tip().is_some());
    assert!(h.devnet.orphan_tip().is_some());
    assert_eq!(h.devnet.height(), 0);
    track_blocks(
        &h.log,
        &mut h.devnet,
        &accounting,
        maturity,
        &notes,
        h.now_ms,
    )
    .expect("check");
    let blocks = h.log.run(|store| store.blocks()).expect("blocks");
    assert!(
        blocks.iter().all(|b| b.status == BlockStatus::Orphaned),
        "{blocks:?}"
    );
    let totals = h
        .log
        .run(|store| store.ledger_totals("sha256d"))
        .expect("totals");
    let reversed: i64 = totals
        .iter()
        .filter(|(k, _)| *k == LedgerKind::Reversal)
        .map(|(_, v)| v)
        .sum();
    assert_eq!(reversed, -(DEVNET_REWARD as i64), "{totals:?}");
    let balances = h
        .log
        .run(|store| store.balances("sha256d"))
        .expect("balances");
    assert!(balances.is_empty(), "every credit reversed: {balances:?}");
    // The pool mines on from the new tip: the next block is at height 1 again.
    h.new_template();
    h.exchange();
    assert!(h.jobs.last().expect("job").clean);
    h.mine_block();
    assert_eq!(h.devnet.height(), 1);
}

#[test]
fn a_share_whose_check_never_comes_back_is_answered_at_its_deadline() {
    let mut h = Harness::new("check-deadline", 1e-6, 1e6);
    let job = h.jobs.last().expect("job").clone();
    let en2 = vec![0u8; job.extranonce2_size];
    h.miner.submit(job.share(&en2, job.notify.ntime, 1, None));
    // The session hands the share over; the check is started and never finished.
    while let Some(line) = h.miner.poll_output() {
        h.pool.handle_line(line.trim_end().as_bytes(), h.now);
    }
    let mut lost = None;
    while let Some(event) = h.pool.poll_event() {
        if let PoolEvent::Share(share) = event {
            lost = h
                .engine
                .handle_share(Submission::from(&share), share.token, h.clock());
        }
    }
    let lost = lost.expect("the share's job is valid: a check to run");
    assert_eq!(h.engine.in_flight(), 1);
    let limit = h.engine.deadlines().check;
    assert_eq!(h.engine.poll_timeout(), Some(h.now + limit));
    h.advance(limit - Duration::from_millis(1));
    h.exchange();
    assert!(h.results.is_empty(), "no answer before the deadline");
    h.advance(Duration::from_millis(1));
    h.exchange();
    assert_eq!(h.results, vec![false], "answered, and not as accepted");
    assert_eq!(h.engine.in_flight(), 0, "nothing left waiting");
    assert!(h.reports.iter().any(|r| matches!(
        r,
        Report::ShareTimedOut {
            stage: Stage::Check,
            ..
        }
    )));
    // The check coming back late changes nothing: no second answer, no record.
    let checked = lost.verify(&h.kernel);
    h.engine.handle_checked(checked, h.clock());
    h.exchange();
    assert_eq!(h.results, vec![false]);
    assert_eq!(h.engine.stats().accepted, 0);
    assert_eq!(h.engine.stats().rejected, 1);
}

#[test]
fn a_commit_that_hangs_is_never_acknowledged() {
    let mut h = Harness::new("persist-deadline", 1e-6, 1e6);
    h.hold = true;
    let target = h.share_target();
    h.mine(&target, true);
    assert!(
        matches!(h.held.as_slice(), [Action::Persist { .. }]),
        "the share waits on its commit"
    );
    assert!(h.results.is_empty());
    h.advance(h.engine.deadlines().persist);
    h.exchange();
    assert_eq!(h.results, vec![false]);
    assert!(h.reports.iter().any(|r| matches!(
        r,
        Report::ShareTimedOut {
            stage: Stage::Persist,
            ..
        }
    )));
    // The commit lands after all: the miner was told nothing false, and no second answer.
    let Some(Action::Persist { share, record, .. }) = h.held.pop() else {
        panic!("held commit");
    };
    h.log.record_share(record).expect("late commit");
    h.engine.handle_persisted(share, Ok(()));
    h.exchange();
    assert_eq!(h.results, vec![false]);
    assert_eq!(h.engine.in_flight(), 0);
}

#[test]
fn a_block_the_node_never_answers_about_is_recorded_as_submitted_and_its_share_accepted() {
    let mut h = Harness::new("block-deadline", 1e-6, 1e-6);
    h.hold = true;
    let target = h.share_target();
    h.mine(&target, true);
    let Some(Action::SubmitBlock { .. }) = h.held.pop() else {
        panic!("the block waits on the node, got {:?}", h.held);
    };
    h.advance(h.engine.deadlines().block);
    h.exchange();
    // Out of the block's stage, into its commit: carried out now.
    h.hold = false;
    let held: Vec<_> = std::mem::take(&mut h.held);
    let [Action::Persist {
        share,
        record,
        block: Some(block),
    }] = <[Action<ShareToken>; 1]>::try_from(held).expect("one commit")
    else {
        panic!("the share's commit, with its block");
    };
    assert_eq!(block.status, BlockStatus::Submitted, "the node never said");
    assert!(h.reports.iter().any(|r| matches!(
        r,
        Report::BlockSubmitted {
            result: Err(otedama_pool::SubmitError::TimedOut),
            ..
        }
    )));
    h.log.record_block(block).expect("block");
    h.log.record_share(record).expect("share");
    h.engine.handle_persisted(share, Ok(()));
    h.exchange();
    assert_eq!(h.results, vec![true]);
}

#[test]
fn a_quiet_source_is_asked_for_fresh_work_once_per_interval() {
    let mut h = Harness::new("refresh", 1e-6, 1e6);
    let jobs = h.jobs.len();
    let refresh = h.engine.deadlines().refresh;
    assert_eq!(h.engine.poll_timeout(), Some(h.now + refresh));
    h.advance(refresh);
    h.exchange();
    assert_eq!(
        h.jobs.len(),
        jobs + 1,
        "the harness fetched a template when asked"
    );
    let refreshed = h.jobs.last().expect("job");
    assert!(!refreshed.clean, "same tip: not a clean job");
    assert!(refreshed.notify.ntime >= h.jobs[jobs - 1].notify.ntime + 30);
}

#[test]
fn a_share_that_cannot_be_recorded_says_why() {
    let error = ShareError::NotRecorded(StoreError::database(std::io::Error::other("disk full")));
    assert_eq!(
        otedama_pool::ErrorChain(&error).to_string(),
        "share not recorded: database error: disk full"
    );
    // The pool's own failure: the miner is told, and not penalised for it.
    assert_eq!(
        error.verdict(),
        ShareVerdict::PoolError("share not recorded: database error: disk full".into())
    );
    assert!(matches!(
        ShareError::TimedOut(Stage::Persist).verdict(),
        ShareVerdict::PoolError(_)
    ));
}
