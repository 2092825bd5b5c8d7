//! The RandomX share path in memory, no sockets: the engine, the embedded RandomX devnet, a
//! real Monero-dialect pool session and a real miner session passing lines to each other, a
//! real SQLite share log, and time passed in by the test. RandomX runs in light mode (about a
//! tenth of a second a hash here), so the difficulties are tiny and the hashes few.

#![cfg(all(feature = "devnet", feature = "sqlite"))]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use otedama_hash::{PowAlgorithm, RandomX, RandomXMode};
use otedama_pool::source::devnet_rx::{RxDevnet, DEVNET_RX_SEED, RX_DEVNET_REWARD};
use otedama_pool::store::{BlockRecord, BlockStatus, ShareRecord, SqliteStore};
use otedama_pool::xmr_address::devnet_address;
use otedama_pool::{
    Action, AuthorizeError, Engine, FoundBlock, Now, Report, RxConfig, RxJobError, RxSource,
    RxSubmission, ShareId, ShareLog, StoreError, RX_ALGO,
};
use otedama_stratum::{
    MoneroJob, MoneroMinerConfig, MoneroMinerEvent, MoneroMinerSession, MoneroMinerShare,
    MoneroPoolConfig, MoneroPoolEvent, MoneroPoolSession, ShareToken, ShareVerdict, VardiffConfig,
};

/// xmrig's wallet in the captured session.
const WALLET: &str = "44vBLPTgU6EC6mhtnoJ2HM7YnPCRmX2o6jRquBnLieg44qfmsUVgr3oJSXxZcHJfPWbnNjEftdiYVYQ23eHWb78MENjm2cC";

/// The devnet's network difficulty: a block every four hashes or so.
const NETWORK_DIFFICULTY: u64 = 4;

/// The pool's share difficulty: a share every other hash.
const SHARE_DIFFICULTY: u64 = 2;

/// The reserved coinbase bytes of the one session.
const SESSION: [u8; 8] = [1; 8];

/// What the pool did, in order.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    /// A block went to the devnet.
    Submitted,
    /// A share (and the block it found) was written, at this devnet height.
    Persisted { block: bool, chain_height: u64 },
    /// The miner was answered.
    Answered(ShareVerdict),
}

struct Harness {
    /// The reply handle is the session's token; `None` for shares handed to the engine
    /// directly.
    engine: Engine<Option<ShareToken>>,
    devnet: Arc<RxDevnet>,
    pool: MoneroPoolSession,
    miner: MoneroMinerSession,
    kernel: RandomX,
    log: ShareLog,
    dir: PathBuf,
    now: Instant,
    now_ms: i64,
    jobs: Vec<MoneroJob>,
    results: Vec<bool>,
    errors: Vec<String>,
    reports: Vec<Report>,
    steps: Vec<Step>,
    /// Persist actions not yet carried out: storage is slow.
    held: Vec<(ShareId, ShareRecord, Option<BlockRecord>)>,
    /// Answers to shares handed to the engine directly.
    direct: Vec<ShareVerdict>,
    /// The pool's common job, as last announced.
    common: Option<MoneroJob>,
    /// Hold every persist action until released.
    hold: bool,
    /// Storage refuses the next share when set: the engine must not acknowledge it.
    refuse_next: bool,
    login_failed: Option<String>,
    /// How often the engine asked for fresh work.
    refreshes: usize,
}

fn temp_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("otedama-harness-rx-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

impl Harness {
    fn new(name: &str, login: &str) -> Harness {
        Harness::with_vardiff(name, login, None)
    }

    fn with_vardiff(name: &str, login: &str, vardiff: Option<VardiffConfig>) -> Harness {
        let devnet = Arc::new(RxDevnet::new(NETWORK_DIFFICULTY).expect("devnet"));
        let kernel = RandomX::new(&DEVNET_RX_SEED, RandomXMode::Light, 1).expect("randomx");
        let engine = Engine::randomx(RxConfig {
            algorithm: "randomx".into(),
            algo: RX_ALGO.into(),
            share_difficulty: SHARE_DIFFICULTY,
            vardiff,
        });
        let dir = temp_dir(name);
        let store = SqliteStore::open(&dir.join("pool.db")).expect("store");
        let (log, _writer) = ShareLog::start(Box::new(store)).expect("share log");
        let now = Instant::now();
        let pool = MoneroPoolSession::new(Arc::new(MoneroPoolConfig::default()), "sess1", now);
        let miner = MoneroMinerSession::new(
            MoneroMinerConfig {
                login: login.to_owned(),
                ..MoneroMinerConfig::default()
            },
            now,
        );
        let mut h = Harness {
            engine,
            devnet,
            pool,
            miner,
            kernel,
            log,
            dir,
            now,
            now_ms: 1_800_000_000_000,
            jobs: Vec::new(),
            results: Vec::new(),
            errors: Vec::new(),
            reports: Vec::new(),
            steps: Vec::new(),
            held: Vec::new(),
            direct: Vec::new(),
            common: None,
            hold: false,
            refuse_next: false,
            login_failed: None,
            refreshes: 0,
        };
        // The pool has work before the miner connects.
        h.follow_tip();
        h.exchange();
        h.miner.start();
        h.exchange();
        h
    }

    /// What the pool's tip thread does: the pool's work on the devnet's tip to the engine.
    fn follow_tip(&mut self) {
        let work = self.devnet.work(&devnet_address(), [0; 8]).expect("work");
        self.engine.handle_rx_work(work, self.clock());
    }

    /// What the server's tailor does: the session's own job on the tip.
    fn own_job(&mut self, worker: &str) -> Result<MoneroJob, RxJobError> {
        let work = self.devnet.work(&devnet_address(), SESSION).expect("work");
        let now = self.clock();
        let job = self.engine.rx_session_job_for(work, worker, 1, now)?;
        Ok(job.announcement.clone())
    }

    fn clock(&self) -> Now {
        Now {
            instant: self.now,
            unix_ms: self.now_ms,
        }
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.now_ms += by.as_millis() as i64;
    }

    fn persist(&mut self, share: ShareId, record: ShareRecord, block: Option<BlockRecord>) {
        self.steps.push(Step::Persisted {
            block: block.is_some(),
            chain_height: self.devnet.height(),
        });
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

    /// Carries out the persist actions held back.
    fn release(&mut self) {
        self.hold = false;
        for (share, record, block) in std::mem::take(&mut self.held) {
            self.persist(share, record, block);
        }
        self.exchange();
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
                    MoneroMinerEvent::NewJob { job, .. } => self.jobs.push(job),
                    MoneroMinerEvent::ShareResult {
                        accepted, error, ..
                    } => {
                        self.results.push(accepted);
                        self.errors
                            .extend(error.map(|e| e.message).into_iter().collect::<Vec<_>>());
                    }
                    MoneroMinerEvent::LoginFailed(e) => self.login_failed = Some(e.message),
                    _ => {}
                }
                moved = true;
            }
            while let Some(event) = self.pool.poll_event() {
                match event {
                    MoneroPoolEvent::Login { token, login } => {
                        let answer = match self.engine.authorize(&login.login) {
                            Ok(_) => self.own_job(&login.login).map_err(|e| e.to_string()),
                            Err(e) => Err(e.to_string()),
                        };
                        self.pool.login_result(token, answer);
                    }
                    MoneroPoolEvent::Share(share) => {
                        let token = share.token;
                        let now = self.clock();
                        if let Some(check) = self.engine.handle_rx_share(
                            RxSubmission::from(&share),
                            Some(token),
                            now,
                        ) {
                            assert_eq!(check.rx_seed(), Some(DEVNET_RX_SEED));
                            let checked = check.verify(&self.kernel);
                            self.engine.handle_checked(checked, now);
                        }
                    }
                    _ => {}
                }
                moved = true;
            }
            while let Some(action) = self.engine.poll_action() {
                match action {
                    Action::AnnounceRx { job } => {
                        self.common = Some(job.announcement.clone());
                        // The server tailors the common job for each connection.
                        let worker = self.pool.worker().map(str::to_owned);
                        if let Some(worker) = worker {
                            let own = self.own_job(&worker).expect("own job");
                            assert_eq!(own.height, job.announcement.height);
                            assert_ne!(own.blob, job.announcement.blob, "a blob of its own");
                            self.pool.send_job(&own);
                        }
                    }
                    Action::SubmitBlock { share, block } => {
                        self.steps.push(Step::Submitted);
                        let FoundBlock::Rx { blob, coinbase } = block else {
                            panic!("a randomx engine finds monero-layout blocks");
                        };
                        let result = self.devnet.submit(&blob, &coinbase);
                        self.engine.handle_block_result(share, result, self.clock());
                    }
                    Action::Persist {
                        share,
                        record,
                        block,
                    } => {
                        if self.hold {
                            self.held.push((share, record, block));
                        } else {
                            self.persist(share, record, block);
                        }
                    }
                    Action::Answer { reply, verdict, .. } => {
                        self.steps.push(Step::Answered(verdict.clone()));
                        match reply {
                            Some(token) => self.pool.share_result(token, verdict),
                            None => self.direct.push(verdict),
                        }
                    }
                    Action::Report(report) => self.reports.push(report),
                    Action::RefreshWork => self.refreshes += 1,
                    _ => {}
                }
                moved = true;
            }
            if !moved {
                return;
            }
        }
    }

    /// The first nonce on the latest job whose hash meets the job's share target, submitted
    /// by the miner with the hash it really has (`honest`) or a forged one.
    fn mine(&mut self, honest: bool) -> [u8; 32] {
        let job = self.jobs.last().expect("a job").clone();
        // Later shares on the same job start after the earlier ones: the session refuses
        // duplicates.
        let start = self.results.len() as u32 * 1_000;
        for nonce in start.. {
            let blob = job.blob_with_nonce(nonce).expect("blob");
            let hash = self.kernel.hash(&blob).expect("hash").hash;
            if job.target.is_met_by(&hash) {
                let result = if honest { hash } else { [0; 32] };
                self.miner.submit(MoneroMinerShare {
                    job_id: job.job_id.clone(),
                    nonce,
                    result,
                    algo: Some(RX_ALGO.into()),
                });
                self.exchange();
                return hash;
            }
        }
        unreachable!("some nonce meets the target")
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn a_randomx_share_is_answered_only_once_durable_and_a_block_goes_to_the_devnet_first() {
    let mut h = Harness::new("block", &format!("{WALLET}.rig1"));
    assert!(h
        .reports
        .iter()
        .any(|r| matches!(r, Report::NewHeight { height: 1 })));
    assert_eq!(h.jobs.len(), 1, "the login result carried the first job");
    let first = h.jobs[0].clone();
    assert_eq!(first.height, Some(1));
    assert_eq!(first.algo.as_deref(), Some(RX_ALGO));
    assert_eq!(first.seed_hash, Some(DEVNET_RX_SEED));
    assert_eq!(first.target.difficulty(), SHARE_DIFFICULTY);
    let job = h.engine.rx_job(&first.job_id).expect("the engine keeps it");
    assert_eq!(
        &job.work.coinbase[8..16],
        &SESSION,
        "the session's own bytes"
    );

    // Storage is slow: the share waits, unanswered, until it is durable.
    h.hold = true;
    h.mine(true);
    assert!(h.results.is_empty(), "no answer before the commit");
    assert_eq!(h.engine.in_flight(), 1);
    assert_eq!(h.engine.stats().accepted, 0);
    h.release();
    assert_eq!(h.results, vec![true]);
    assert_eq!(h.engine.in_flight(), 0);

    // Shares until one is a block (perhaps that first one).
    let mut shares = 1;
    while h.devnet.height() == 0 {
        h.advance(Duration::from_secs(1));
        h.mine(true);
        shares += 1;
        assert_eq!(h.results.last(), Some(&true), "share {shares} accepted");
    }
    // The block reached the devnet before any record was written, and the miner heard of
    // its share only after both records were.
    let submitted = h
        .steps
        .iter()
        .position(|s| *s == Step::Submitted)
        .expect("a block was submitted");
    assert_eq!(
        h.steps[submitted..],
        [
            Step::Submitted,
            Step::Persisted {
                block: true,
                chain_height: 1
            },
            Step::Answered(ShareVerdict::Accepted),
        ],
        "{:?}",
        h.steps
    );
    let stats = h.engine.stats();
    assert_eq!(
        (stats.accepted, stats.rejected, stats.blocks),
        (shares, 0, 1)
    );
    assert_eq!(stats.difficulty_sum, (shares * SHARE_DIFFICULTY) as f64);
    let block_hash = h
        .reports
        .iter()
        .find_map(|r| match r {
            Report::BlockSubmitted {
                height: 1,
                hash,
                finder,
                result: Ok(()),
            } if finder == WALLET => Some(hash.clone()),
            _ => None,
        })
        .expect("the block is reported, found by the wallet");
    assert_eq!(
        block_hash,
        otedama_core::encode_hex(&h.devnet.accepted()[0]),
        "recorded under the devnet's id"
    );

    // The tip moved: the pool's work on it retires the old jobs, the session gets its own.
    h.follow_tip();
    h.exchange();
    assert!(h
        .reports
        .iter()
        .any(|r| matches!(r, Report::NewHeight { height: 2 })));
    assert!(h.engine.rx_job(&first.job_id).is_none(), "retired");
    assert_eq!(h.jobs.last().expect("job").height, Some(2));
    // Work left over from the old tip makes no job.
    let current = h.jobs.last().expect("job").job_id.clone();
    let mut old = h.engine.rx_job(&current).expect("current job").work.clone();
    old.height = 1;
    assert!(matches!(
        h.engine.rx_session_job(old, WALLET),
        Err(RxJobError::Stale { height: 1, tip: 2 })
    ));

    assert!(h.log.flush(Duration::from_secs(10)));
    let (count, blocks) = h
        .log
        .run(|store| Ok((store.share_count()?, store.blocks()?)))
        .expect("read back");
    assert_eq!(count, shares, "every accepted share is on disk");
    assert_eq!(blocks.len(), 1);
    let block = &blocks[0];
    assert_eq!(block.status, BlockStatus::Accepted);
    assert_eq!(
        (block.address.as_str(), block.worker.as_str()),
        (WALLET, "rig1")
    );
    assert_eq!((block.height, block.reward), (1, RX_DEVNET_REWARD));
    assert_eq!(block.algorithm, "randomx");
}

#[test]
fn randomx_logins_forged_results_and_undurable_shares_are_refused() {
    // A mistyped address: the engine's parser and the Monero address check refuse it.
    let mistyped = format!("{}D.rig", &WALLET[..WALLET.len() - 1]);
    let h = Harness::new("login", &mistyped);
    let refused = h.login_failed.clone().expect("login refused");
    assert!(refused.contains("checksum"), "{refused}");
    assert!(matches!(
        h.engine.authorize(&mistyped),
        Err(AuthorizeError::MoneroAddress(_))
    ));
    assert!(matches!(
        h.engine
            .authorize("bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"),
        Err(AuthorizeError::MoneroAddress(_))
    ));
    assert!(matches!(
        h.engine.authorize(&format!("{WALLET}.rig+x")),
        Err(AuthorizeError::Identity(_))
    ));
    drop(h);

    // `+difficulty` asks for a higher share difficulty (never above the network's).
    let mut h = Harness::new("shares", &format!("{WALLET}.rig+3"));
    assert_eq!(h.jobs[0].target.difficulty(), 3);
    let work = h.devnet.work(&devnet_address(), [9; 8]).expect("work");
    let job = h
        .engine
        .rx_session_job(work.clone(), &format!("{WALLET}+1000"))
        .expect("job");
    assert_eq!(job.share_difficulty, NETWORK_DIFFICULTY);
    let job = h.engine.rx_session_job(work, WALLET).expect("job");
    assert_eq!(job.share_difficulty, SHARE_DIFFICULTY);

    // A claimed hash that is not the blob's.
    h.mine(false);
    assert_eq!(h.results, vec![false]);
    assert!(
        h.errors.last().is_some_and(|e| e.contains("not the hash")),
        "{:?}",
        h.errors
    );
    // A share storage could not make durable is not acknowledged.
    h.refuse_next = true;
    h.advance(Duration::from_secs(1));
    h.mine(true);
    assert_eq!(h.results, vec![false, false]);
    assert!(
        h.errors
            .last()
            .is_some_and(|e| e.contains("share not recorded")),
        "{:?}",
        h.errors
    );
    h.mine(true);
    assert_eq!(h.results.last(), Some(&true));
    let stats = h.engine.stats();
    assert_eq!((stats.accepted, stats.rejected), (1, 2));
    assert_eq!(h.engine.in_flight(), 0);

    // A share on a job the engine no longer has is stale, answered at once.
    let stale = h.engine.handle_rx_share(
        RxSubmission {
            job_id: "gone".into(),
            worker: WALLET.into(),
            nonce: 1,
            result: [0; 32],
            difficulty: 3,
        },
        None,
        h.clock(),
    );
    assert!(stale.is_none());
    h.exchange();
    assert_eq!(h.direct, vec![ShareVerdict::Stale]);
    assert_eq!(h.engine.stats().rejected, 3);

    // The common job (every connection without a job of its own would hash its blob) is
    // never credited, however good the hash: one nonce could come in once per connection.
    let common = h.common.clone().expect("the common job");
    let nonce = (0u32..)
        .find(|n| {
            let blob = common.blob_with_nonce(*n).expect("blob");
            common
                .target
                .is_met_by(&h.kernel.hash(&blob).expect("hash").hash)
        })
        .expect("a nonce");
    let blob = common.blob_with_nonce(nonce).expect("blob");
    let result = h.kernel.hash(&blob).expect("hash").hash;
    let shared = h.engine.handle_rx_share(
        RxSubmission {
            job_id: common.job_id.clone(),
            worker: WALLET.into(),
            nonce,
            result,
            difficulty: common.target.difficulty(),
        },
        None,
        h.clock(),
    );
    assert!(shared.is_none());
    h.exchange();
    assert!(
        matches!(h.direct.last(), Some(ShareVerdict::Invalid(m)) if m.contains("common job")),
        "{:?}",
        h.direct
    );
}

#[test]
fn vardiff_gives_a_fast_session_a_higher_difficulty_with_its_next_job() {
    let vardiff = VardiffConfig {
        target_interval: Duration::from_secs(1),
        retarget_interval: Duration::from_secs(4),
        min_difficulty: 1.0,
        max_difficulty: 1e12,
        tolerance: 0.3,
        max_step: 4.0,
    };
    let mut h = Harness::with_vardiff("vardiff", &format!("{WALLET}.rig"), Some(vardiff));
    assert_eq!(h.jobs[0].target.difficulty(), SHARE_DIFFICULTY);
    let start = h.now;
    // Twelve accepted shares in four seconds: three times the target rate.
    for _ in 0..12 {
        h.mine(true);
        h.advance(Duration::from_millis(300));
    }
    assert_eq!(h.results, vec![true; 12]);
    let due = h.engine.poll_timeout().expect("a retarget is due");
    assert!(
        due <= start + Duration::from_secs(4),
        "looked at by the end of the window"
    );
    h.advance(Duration::from_millis(500));
    h.engine.handle_timeout(h.clock());
    h.exchange();
    assert_eq!(h.refreshes, 1, "the new difficulty needs a new job");

    // What the service does on that ask: fresh work, whose tailored job carries it (three
    // times the difficulty, capped at the network's).
    h.follow_tip();
    h.exchange();
    let job = h.jobs.last().expect("a new job").clone();
    assert_eq!(job.target.difficulty(), NETWORK_DIFFICULTY);
    let share = h.mine(true);
    assert!(job.target.is_met_by(&share));
    assert_eq!(h.results.last(), Some(&true));
    // The share is recorded at the session's new difficulty.
    assert!(h.log.flush(Duration::from_secs(10)));
    let last: f64 = h
        .log
        .run(|store| Ok(store.shares(100)?.last().map(|s| s.difficulty)))
        .expect("read back")
        .expect("a share");
    assert_eq!(last, NETWORK_DIFFICULTY as f64);
}
