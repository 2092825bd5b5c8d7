//! The share log: every accepted share and every found block, durable before a share is
//! acknowledged.
//!
//! [`Store`] is the storage behind a trait (SQLite now; PostgreSQL plugs in beside it).
//! [`ShareLog`] owns a store on a writer thread and batches: requests that arrive while a
//! commit is running go into the next transaction together, and each caller is answered only
//! after the transaction holding its share has committed.

#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

/// `database` for messages, with any password in a URL hidden.
pub fn display_database(database: &str) -> String {
    match (database.split_once("://"), database.rfind('@')) {
        (Some((scheme, rest)), Some(at)) if is_postgres_url(database) => {
            let userinfo = &rest[..at - scheme.len() - 3];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{}", &database[at + 1..])
        }
        _ => database.to_owned(),
    }
}

/// Whether `database` names a PostgreSQL server rather than a SQLite file.
pub fn is_postgres_url(database: &str) -> bool {
    database.starts_with("postgres://") || database.starts_with("postgresql://")
}

/// Opens the database `pool.database` names (a `postgres://` URL, or a SQLite file path) on
/// the writer thread, and starts the share log over it. Blocks until the database is open.
#[cfg(all(feature = "sqlite", feature = "postgres"))]
pub fn open_share_log(database: &str) -> Result<(ShareLog, thread::JoinHandle<()>), StoreError> {
    let database = database.to_owned();
    ShareLog::start_with(move || open(&database))
}

/// Opens (creating and migrating as needed) the database `pool.database` names: a
/// `postgres://` URL, or a SQLite file path.
#[cfg(all(feature = "sqlite", feature = "postgres"))]
pub fn open(database: &str) -> Result<Box<dyn Store>, StoreError> {
    if is_postgres_url(database) {
        Ok(Box::new(PostgresStore::open(database)?))
    } else {
        Ok(Box::new(SqliteStore::open(std::path::Path::new(database))?))
    }
}

/// An accepted share, with what reward accounting needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ShareRecord {
    /// The algorithm (and so the coin) of the port it came in on.
    pub algorithm: String,
    /// Unix time in milliseconds.
    pub time_ms: i64,
    /// The payout address.
    pub address: String,
    /// The worker name after the address (may be empty).
    pub worker: String,
    /// The share difficulty credited.
    pub difficulty: f64,
    /// The job.
    pub job_id: String,
    /// Height of the block the job builds.
    pub height: u64,
    /// The proof-of-work hash, as the kernel wrote it.
    pub pow_hash: [u8; 32],
    /// Whether the share also solved a block.
    pub is_block: bool,
    /// The network difficulty of the job's block, in the same convention.
    pub network_difficulty: f64,
    /// The job's coinbase value (subsidy plus transaction fees), smallest unit.
    pub block_value: u64,
    /// The transaction fees within `block_value`.
    pub tx_fees: u64,
}

/// Where a found block stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockStatus {
    /// Sent to the node; no answer yet.
    Submitted,
    /// The node accepted it.
    Accepted,
    /// The node refused it.
    Rejected,
    /// Buried under enough blocks for its coinbase to be spendable.
    Confirmed,
    /// It left the main chain.
    Orphaned,
}

impl BlockStatus {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            BlockStatus::Submitted => "submitted",
            BlockStatus::Accepted => "accepted",
            BlockStatus::Rejected => "rejected",
            BlockStatus::Confirmed => "confirmed",
            BlockStatus::Orphaned => "orphaned",
        }
    }

    /// The value a stored name stands for.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "submitted" => Some(BlockStatus::Submitted),
            "accepted" => Some(BlockStatus::Accepted),
            "rejected" => Some(BlockStatus::Rejected),
            "confirmed" => Some(BlockStatus::Confirmed),
            "orphaned" => Some(BlockStatus::Orphaned),
            _ => None,
        }
    }
}

/// A found block.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockRecord {
    /// The algorithm of the port it came in on.
    pub algorithm: String,
    /// Unix time in milliseconds.
    pub time_ms: i64,
    /// Height.
    pub height: u64,
    /// Block hash, display order hex.
    pub hash: String,
    /// Who found it.
    pub address: String,
    /// Worker name.
    pub worker: String,
    /// Coinbase value in the coin's smallest unit.
    pub reward: u64,
    /// Status.
    pub status: BlockStatus,
    /// The node's answer, when it gave one.
    pub detail: Option<String>,
    /// The miner address its coinbase paid directly (SOLO), when not the pool's.
    pub payee: Option<String>,
}

/// What a ledger line records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerKind {
    /// A miner's part of a confirmed block.
    Credit,
    /// The pool's fee from a confirmed block (or, under PPS/FPPS, the whole block).
    Fee,
    /// The undoing of a credit or fee whose block was orphaned.
    Reversal,
    /// PPS/FPPS pay for accepted shares.
    Shares,
    /// Money sent to the address (negative).
    Payment,
    /// A SOLO block paid straight to the finder in its coinbase (negative, beside its credit).
    Coinbase,
}

impl LedgerKind {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            LedgerKind::Credit => "credit",
            LedgerKind::Fee => "fee",
            LedgerKind::Reversal => "reversal",
            LedgerKind::Shares => "shares",
            LedgerKind::Payment => "payment",
            LedgerKind::Coinbase => "coinbase",
        }
    }

    /// The value a stored name stands for.
    pub fn parse(s: &str) -> Option<Self> {
        [
            LedgerKind::Credit,
            LedgerKind::Fee,
            LedgerKind::Reversal,
            LedgerKind::Shares,
            LedgerKind::Payment,
            LedgerKind::Coinbase,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// A ledger line to write: the balance of `address` moves by `amount`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntry {
    /// Whose balance.
    pub address: String,
    /// Signed, in the coin's smallest unit.
    pub amount: i64,
    /// Why.
    pub kind: LedgerKind,
    /// A human explanation (the scheme and its inputs).
    pub memo: String,
}

/// A written ledger line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    /// Position in the ledger: lines are never changed or removed.
    pub id: i64,
    /// Unix time in milliseconds.
    pub time_ms: i64,
    /// The algorithm of the port whose coin it is.
    pub coin: String,
    /// Whose balance.
    pub address: String,
    /// Signed, in the coin's smallest unit.
    pub amount: i64,
    /// Why.
    pub kind: LedgerKind,
    /// The block it comes from, for block lines.
    pub block_hash: Option<String>,
    /// The payment it belongs to, for payment lines.
    pub payment_id: Option<i64>,
    /// A human explanation.
    pub memo: String,
}

/// A signed payment transaction, as recorded before it is broadcast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentTransaction {
    /// Its id.
    pub txid: String,
    /// The signed transaction, hex.
    pub hex: String,
    /// The network fee it pays, smallest unit.
    pub fee: u64,
}

/// Where a payment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentStatus {
    /// Signed and recorded, balances debited; the network may or may not have it yet.
    Sending,
    /// The network has it.
    Sent,
    /// Buried under `pool.maturity` blocks.
    Confirmed,
    /// It never will be mined; its amounts went back to the balances.
    Failed,
}

impl PaymentStatus {
    /// The value a stored name stands for.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "sending" => Some(PaymentStatus::Sending),
            "sent" => Some(PaymentStatus::Sent),
            "confirmed" => Some(PaymentStatus::Confirmed),
            "failed" => Some(PaymentStatus::Failed),
            _ => None,
        }
    }
}

/// One payment transaction, to one or many addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    /// Its number; the wallet transaction carries it in its comment.
    pub id: i64,
    /// The algorithm of the port whose coin it is.
    pub coin: String,
    /// When it was written, Unix milliseconds.
    pub time_ms: i64,
    /// Where it stands.
    pub status: PaymentStatus,
    /// The transaction's id, known before it is broadcast.
    pub txid: Option<String>,
    /// The network fee it pays.
    pub tx_fee: Option<u64>,
    /// The signed transaction, broadcast again if a crash leaves it unsent.
    pub tx_hex: Option<String>,
    /// The account its network fee was debited from, when the pool paid the fee.
    pub fee_account: Option<String>,
    /// Why it failed, or other notes.
    pub detail: Option<String>,
    /// Address and amount of every output, smallest unit.
    pub outputs: Vec<(String, u64)>,
}

/// An accepted share awaiting PPS/FPPS pay, with its position in the share log.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingShare {
    /// Its row id: shares are paid in id order, and the position of the last one paid is kept.
    pub id: i64,
    /// The share.
    pub share: ShareRecord,
}

/// Storage failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused.
    #[error("database: {0}")]
    Database(String),
    /// The writer thread is gone.
    #[error("the share log writer has stopped")]
    Stopped,
}

/// A database the pool records into.
pub trait Store: Send {
    /// Writes shares and blocks in one transaction; all or nothing.
    fn commit(&mut self, shares: &[ShareRecord], blocks: &[BlockRecord]) -> Result<(), StoreError>;
    /// Updates a block's status.
    fn set_block_status(
        &mut self,
        hash: &str,
        status: BlockStatus,
        detail: Option<&str>,
    ) -> Result<(), StoreError>;
    // The tests use it.
    #[cfg_attr(not(test), allow(dead_code))]
    /// How many shares are recorded.
    fn share_count(&mut self) -> Result<u64, StoreError>;
    /// Every recorded block, oldest first.
    fn blocks(&mut self) -> Result<Vec<BlockRecord>, StoreError>;
    /// The blocks of `coin` the block tracker still watches: those not yet settled
    /// (submitted, accepted), and those found after `recent_ms` (a reorganisation may still
    /// orphan a confirmed block, or bring back an orphaned one). Oldest first.
    fn watched_blocks(
        &mut self,
        coin: &str,
        recent_ms: i64,
    ) -> Result<Vec<BlockRecord>, StoreError>;
    // The tests use it.
    #[cfg_attr(not(test), allow(dead_code))]
    /// The first `limit` shares recorded, oldest first.
    fn shares(&mut self, limit: u64) -> Result<Vec<ShareRecord>, StoreError>;

    /// The shares of `coin` with `after_ms < time_ms <= until_ms`, oldest first: a PPLNS
    /// window or a PROP round.
    fn shares_between(
        &mut self,
        coin: &str,
        after_ms: i64,
        until_ms: i64,
    ) -> Result<Vec<ShareRecord>, StoreError>;
    /// The last `limit` shares of `coin` with `after_ms < time_ms <= until_ms`, oldest first:
    /// a PPLNS window counted in shares.
    fn last_shares(
        &mut self,
        coin: &str,
        after_ms: i64,
        until_ms: i64,
        limit: u64,
    ) -> Result<Vec<ShareRecord>, StoreError>;
    /// In one transaction: marks the block confirmed and, unless its credit stands already,
    /// writes `entries` to the ledger and the balances (a block reversed when it left the main
    /// chain is credited again when it comes back). Returns whether it credited.
    fn credit_block(
        &mut self,
        hash: &str,
        detail: &str,
        entries: &[NewEntry],
        time_ms: i64,
    ) -> Result<bool, StoreError>;
    /// In one transaction: marks the block orphaned and reverses every ledger line it wrote
    /// (once). Returns the reversal lines written.
    fn orphan_block(
        &mut self,
        hash: &str,
        detail: &str,
        time_ms: i64,
    ) -> Result<Vec<NewEntry>, StoreError>;
    /// Every non-zero balance of `coin`, by address.
    fn balances(&mut self, coin: &str) -> Result<Vec<(String, i64)>, StoreError>;
    /// The sum of every ledger line of `coin`, by kind.
    fn ledger_totals(&mut self, coin: &str) -> Result<Vec<(LedgerKind, i64)>, StoreError>;
    /// Every ledger line of `address` (all coins), oldest first.
    fn ledger(&mut self, address: &str) -> Result<Vec<LedgerEntry>, StoreError>;
    /// Takes or renews the right to pay `coin` from this database for `ttl_ms`: true when
    /// `owner` holds it (it is free, expired, or already `owner`'s). Two pools sharing a
    /// database do not pay the same coin at once.
    fn claim_payer(
        &mut self,
        coin: &str,
        owner: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<bool, StoreError>;
    /// In one transaction: records a signed, not yet broadcast payment (`sending`, with its
    /// txid and transaction) and debits every output's balance. Fails, writing nothing, when
    /// another payment of `coin` is still `sending` or an output is more than its address's
    /// balance. Returns the payment's id.
    /// With `fee_account`, the network fee is debited from that account (the pool's) in the
    /// same transaction.
    fn begin_payment(
        &mut self,
        coin: &str,
        outputs: &[(String, u64)],
        transaction: &PaymentTransaction,
        fee_account: Option<&str>,
        time_ms: i64,
    ) -> Result<i64, StoreError>;
    /// Marks a `sending` payment sent (the network has it). Returns false unless it was
    /// `sending`.
    fn finish_payment(&mut self, id: i64) -> Result<bool, StoreError>;
    /// Marks a `sent` payment confirmed (buried deep enough to stay). Returns false unless it
    /// was `sent`.
    fn confirm_payment(&mut self, id: i64) -> Result<bool, StoreError>;
    /// In one transaction: marks a `sending` or `sent` payment failed (it never will be
    /// mined) and returns its amounts, network fee included, to the balances. Returns false
    /// unless it was `sending` or `sent`.
    fn fail_payment(&mut self, id: i64, reason: &str, time_ms: i64) -> Result<bool, StoreError>;
    /// The addresses of `coin` that have been paid pool fees: the pool's own, never paid out.
    fn fee_accounts(&mut self, coin: &str) -> Result<Vec<String>, StoreError>;
    /// When `coin` started paying under `scheme`: the time of the first run with it since the
    /// last change, recorded now if it changed. Shares from before belong to the old scheme.
    fn scheme_since(&mut self, coin: &str, scheme: &str, now_ms: i64) -> Result<i64, StoreError>;
    /// Every payment of `coin`, oldest first.
    fn payments(&mut self, coin: &str) -> Result<Vec<Payment>, StoreError>;
    /// Up to `limit` shares of `coin` from `since_ms` on, not yet paid under PPS/FPPS, oldest
    /// first.
    fn unpaid_shares(
        &mut self,
        coin: &str,
        since_ms: i64,
        limit: u64,
    ) -> Result<Vec<PendingShare>, StoreError>;
    /// In one transaction: marks the shares `ids` paid and writes `entries`; fails, writing
    /// nothing, if any of them was paid already.
    fn credit_shares(
        &mut self,
        coin: &str,
        ids: &[i64],
        entries: &[NewEntry],
        time_ms: i64,
    ) -> Result<(), StoreError>;
}

/// Work run on the writer thread against its store.
type StoreJob = Box<dyn FnOnce(&mut dyn Store) + Send>;

enum Request {
    Share(ShareRecord, mpsc::Sender<Result<(), String>>),
    Block(BlockRecord, mpsc::Sender<Result<(), String>>),
    Status(String, BlockStatus, Option<String>),
    Flush(mpsc::Sender<()>),
    Run(StoreJob),
}

/// The writer thread and the handle to it. Clone the handle freely; the thread ends when the
/// last handle is dropped, after writing everything queued.
#[derive(Clone)]
pub struct ShareLog {
    tx: mpsc::Sender<Request>,
}

/// Most records in one transaction.
const MAX_BATCH: usize = 4096;

impl ShareLog {
    // The tests use it.
    #[cfg_attr(not(test), allow(dead_code))]
    /// Starts the writer thread over `store`.
    pub fn start(store: Box<dyn Store>) -> Result<(ShareLog, thread::JoinHandle<()>), StoreError> {
        ShareLog::start_with(move || Ok(store))
    }

    /// Starts the writer thread, which first opens its store with `open`: a database client
    /// that blocks on a runtime of its own (PostgreSQL's) then lives on a plain thread.
    pub fn start_with(
        open: impl FnOnce() -> Result<Box<dyn Store>, StoreError> + Send + 'static,
    ) -> Result<(ShareLog, thread::JoinHandle<()>), StoreError> {
        let (tx, rx) = mpsc::channel::<Request>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), StoreError>>();
        let handle = thread::Builder::new()
            .name("share-log".into())
            .spawn(move || {
                let mut store = match open() {
                    Ok(store) => {
                        let _ = ready_tx.send(Ok(()));
                        store
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                while let Ok(first) = rx.recv() {
                    let mut batch = vec![first];
                    // Whatever queued while the last commit ran rides along in this one.
                    while batch.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(r) => batch.push(r),
                            Err(_) => break,
                        }
                    }
                    write_batch(store.as_mut(), batch);
                }
            })
            .map_err(|e| StoreError::Database(format!("cannot start the writer thread: {e}")))?;
        ready_rx.recv().map_err(|_| StoreError::Stopped)??;
        Ok((ShareLog { tx }, handle))
    }

    /// Records a share; returns once it is committed.
    pub fn record_share(&self, share: ShareRecord) -> Result<(), StoreError> {
        let (done, wait) = mpsc::channel();
        self.tx
            .send(Request::Share(share, done))
            .map_err(|_| StoreError::Stopped)?;
        wait.recv()
            .map_err(|_| StoreError::Stopped)?
            .map_err(StoreError::Database)
    }

    // The tests use it.
    #[cfg_attr(not(test), allow(dead_code))]
    /// Records a share without waiting; the receiver yields the commit result.
    pub fn record_share_async(
        &self,
        share: ShareRecord,
    ) -> Result<mpsc::Receiver<Result<(), String>>, StoreError> {
        let (done, wait) = mpsc::channel();
        self.tx
            .send(Request::Share(share, done))
            .map_err(|_| StoreError::Stopped)?;
        Ok(wait)
    }

    /// Records a found block; returns once it is committed.
    pub fn record_block(&self, block: BlockRecord) -> Result<(), StoreError> {
        let (done, wait) = mpsc::channel();
        self.tx
            .send(Request::Block(block, done))
            .map_err(|_| StoreError::Stopped)?;
        wait.recv()
            .map_err(|_| StoreError::Stopped)?
            .map_err(StoreError::Database)
    }

    /// Queues a block status change.
    pub fn set_block_status(&self, hash: String, status: BlockStatus, detail: Option<String>) {
        let _ = self.tx.send(Request::Status(hash, status, detail));
    }

    /// Runs `job` on the writer thread, after what is queued before it, and returns its
    /// result: accounting shares the share log's connection and its order.
    pub fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut dyn Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (done, wait) = mpsc::channel();
        self.tx
            .send(Request::Run(Box::new(move |store| {
                let _ = done.send(job(store));
            })))
            .map_err(|_| StoreError::Stopped)?;
        wait.recv().map_err(|_| StoreError::Stopped)?
    }

    /// Waits until everything queued before this call is written.
    pub fn flush(&self, timeout: Duration) -> bool {
        let (done, wait) = mpsc::channel();
        if self.tx.send(Request::Flush(done)).is_err() {
            return true;
        }
        wait.recv_timeout(timeout).is_ok()
    }
}

fn write_batch(store: &mut dyn Store, batch: Vec<Request>) {
    let mut shares = Vec::new();
    let mut blocks = Vec::new();
    let mut waiters = Vec::new();
    let mut statuses = Vec::new();
    let mut flushes = Vec::new();
    let mut jobs = Vec::new();
    for r in batch {
        match r {
            Request::Share(s, w) => {
                shares.push(s);
                waiters.push(w);
            }
            Request::Block(b, w) => {
                blocks.push(b);
                waiters.push(w);
            }
            Request::Status(h, s, d) => statuses.push((h, s, d)),
            Request::Flush(w) => flushes.push(w),
            Request::Run(job) => jobs.push(job),
        }
    }
    let result = if shares.is_empty() && blocks.is_empty() {
        Ok(())
    } else {
        store.commit(&shares, &blocks).map_err(|e| e.to_string())
    };
    for w in waiters {
        let _ = w.send(result.clone());
    }
    for (hash, status, detail) in statuses {
        if let Err(e) = store.set_block_status(&hash, status, detail.as_deref()) {
            eprintln!("share log: cannot update block {hash}: {e}");
        }
    }
    for job in jobs {
        job(store);
    }
    for f in flushes {
        let _ = f.send(());
    }
}

/// The checks every store passes.
#[cfg(test)]
#[allow(dead_code)]
pub(crate) mod tests {
    use super::*;

    fn share(i: u32) -> ShareRecord {
        ShareRecord {
            algorithm: "scrypt".into(),
            time_ms: 1_700_000_000_000 + i64::from(i),
            address: "rltc1qexample".into(),
            worker: format!("rig{}", i % 3),
            difficulty: 0.5 + f64::from(i),
            job_id: format!("{i:x}"),
            height: 432,
            pow_hash: [i as u8; 32],
            is_block: i == 7,
            network_difficulty: 0.031,
            block_value: 5_000_000_000,
            tx_fees: 12_345,
        }
    }

    /// Writes through a share log, drops it, opens the store again and reads back.
    pub(crate) fn exercise(open: &dyn Fn() -> Box<dyn Store>) {
        {
            let (log, thread) = ShareLog::start(open()).expect("writer");
            let waits: Vec<_> = (0..50)
                .map(|i| log.record_share_async(share(i)).expect("queued"))
                .collect();
            for w in waits {
                w.recv().expect("answer").expect("committed");
            }
            let block = BlockRecord {
                algorithm: "scrypt".into(),
                time_ms: 1,
                height: 432,
                hash: "00ab".into(),
                address: "rltc1qexample".into(),
                worker: "rig1".into(),
                reward: 5_000_000_000,
                status: BlockStatus::Submitted,
                detail: None,
                payee: Some("rltc1qexample".into()),
            };
            log.record_block(block.clone()).expect("block");
            log.record_block(block)
                .expect("same block twice is not an error");
            log.set_block_status("00ab".into(), BlockStatus::Accepted, Some("ok".into()));
            assert!(log.flush(Duration::from_secs(5)));
            drop(log);
            thread.join().expect("writer ends");
        }
        let mut store = open();
        assert_eq!(store.share_count().expect("count"), 50);
        let shares = store.shares(100).expect("shares");
        assert_eq!(shares[7], share(7));
        let blocks = store.blocks().expect("blocks");
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].status, BlockStatus::Accepted);
        assert_eq!(blocks[0].detail.as_deref(), Some("ok"));
        assert_eq!(blocks[0].algorithm, "scrypt");
        assert_eq!(blocks[0].payee.as_deref(), Some("rltc1qexample"));
    }

    fn entry(address: &str, amount: i64, kind: LedgerKind) -> NewEntry {
        NewEntry {
            address: address.into(),
            amount,
            kind,
            memo: "test".into(),
        }
    }

    fn sum(store: &mut dyn Store, coin: &str) -> i64 {
        store
            .balances(coin)
            .expect("balances")
            .iter()
            .map(|(_, a)| a)
            .sum()
    }

    /// The money path on a fresh store: credits once, reversals once, payments debited once,
    /// PPS shares paid once, and a ledger nobody can rewrite.
    pub(crate) fn exercise_accounting(store: &mut dyn Store) {
        let block = |hash: &str, time_ms| BlockRecord {
            algorithm: "scrypt".into(),
            time_ms,
            height: 10,
            hash: hash.into(),
            address: "alice".into(),
            worker: String::new(),
            reward: 5_000_000_000,
            status: BlockStatus::Accepted,
            detail: None,
            payee: None,
        };
        let shares: Vec<ShareRecord> = (0..6).map(share).collect();
        store
            .commit(&shares, &[block("b1", 100), block("b2", 200)])
            .expect("commit");
        let window = store
            .shares_between("scrypt", shares[1].time_ms, shares[4].time_ms)
            .expect("window");
        assert_eq!(window, shares[2..=4].to_vec(), "after < time <= until");
        let last = store
            .last_shares("scrypt", shares[0].time_ms, shares[4].time_ms, 2)
            .expect("last two");
        assert_eq!(last, shares[3..=4].to_vec(), "the newest, oldest first");
        assert!(store
            .shares_between("sha256d", 0, i64::MAX)
            .expect("other coin")
            .is_empty());

        let credits = [
            entry("alice", 3_000_000_000, LedgerKind::Credit),
            entry("bob", 1_950_000_000, LedgerKind::Credit),
            entry("pool", 50_000_000, LedgerKind::Fee),
        ];
        assert!(store
            .credit_block("b1", "3 confirmations", &credits, 1)
            .expect("credit"));
        assert!(!store
            .credit_block("b1", "4 confirmations", &credits, 2)
            .expect("again"));
        assert!(store
            .credit_block("b2", "3 confirmations", &credits, 3)
            .expect("credit b2"));
        assert_eq!(sum(store, "scrypt"), 10_000_000_000);
        assert!(store.credit_block("nope", "", &credits, 3).is_err());
        let blocks = store.blocks().expect("blocks");
        assert_eq!(blocks[0].status, BlockStatus::Confirmed);
        assert_eq!(blocks[0].detail.as_deref(), Some("4 confirmations"));

        let reversed = store
            .orphan_block("b2", "left the main chain", 4)
            .expect("orphan");
        assert_eq!(reversed.len(), 3);
        assert_eq!(
            reversed.iter().map(|e| e.amount).sum::<i64>(),
            -5_000_000_000
        );
        assert!(store
            .orphan_block("b2", "again", 5)
            .expect("orphan again")
            .is_empty());
        assert_eq!(sum(store, "scrypt"), 5_000_000_000);
        assert_eq!(
            store.blocks().expect("blocks")[1].status,
            BlockStatus::Orphaned
        );
        let watched = |store: &mut dyn Store, recent| -> Vec<String> {
            store
                .watched_blocks("scrypt", recent)
                .expect("watched")
                .into_iter()
                .map(|b| b.hash)
                .collect()
        };
        assert_eq!(watched(store, 0), ["b1", "b2"]);
        assert_eq!(
            watched(store, 150),
            ["b2"],
            "settled and old: no longer watched"
        );
        assert!(store
            .watched_blocks("sha256d", 0)
            .expect("other coin")
            .is_empty());

        // Back in the main chain: credited again; orphaned again: only that credit reversed.
        let smaller = [
            entry("alice", 1_000, LedgerKind::Credit),
            entry("pool", 10, LedgerKind::Fee),
        ];
        assert!(store
            .credit_block("b2", "back", &smaller, 5)
            .expect("again"));
        assert_eq!(sum(store, "scrypt"), 5_000_001_010);
        let reversed = store.orphan_block("b2", "gone again", 5).expect("orphan");
        assert_eq!(
            reversed.iter().map(|e| e.amount).collect::<Vec<_>>(),
            [-1_000, -10]
        );
        assert_eq!(sum(store, "scrypt"), 5_000_000_000);

        assert!(store
            .claim_payer("scrypt", "pool-a", 100, 50)
            .expect("free"));
        assert!(store
            .claim_payer("scrypt", "pool-a", 120, 50)
            .expect("renewed"));
        assert!(!store
            .claim_payer("scrypt", "pool-b", 160, 50)
            .expect("held by a"));
        assert!(store
            .claim_payer("scrypt", "pool-b", 171, 50)
            .expect("a's lapsed"));
        assert!(!store
            .claim_payer("scrypt", "pool-a", 200, 50)
            .expect("held by b"));
        assert!(store
            .claim_payer("sha256d", "pool-a", 200, 50)
            .expect("per coin"));

        let signed = |txid: &str| PaymentTransaction {
            txid: txid.repeat(32),
            hex: "0200".into(),
            fee: 2_260,
        };
        let too_much = vec![("alice".to_owned(), 3_000_000_001)];
        assert!(
            store
                .begin_payment("scrypt", &too_much, &signed("ab"), None, 6)
                .is_err(),
            "more than owed"
        );
        let nobody = vec![("dave".to_owned(), 1)];
        assert!(
            store
                .begin_payment("scrypt", &nobody, &signed("ab"), None, 6)
                .is_err(),
            "owed nothing"
        );
        let outputs = vec![
            ("alice".to_owned(), 3_000_000_000),
            ("bob".to_owned(), 1_000),
        ];
        let id = store
            .begin_payment("scrypt", &outputs, &signed("ab"), None, 6)
            .expect("begin");
        assert_eq!(
            sum(store, "scrypt"),
            5_000_000_000 - 3_000_001_000,
            "debited with the txid recorded, before the broadcast"
        );
        let open = store.payments("scrypt").expect("payments");
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].status, PaymentStatus::Sending);
        assert_eq!(open[0].outputs, outputs);
        assert_eq!(open[0].txid.as_deref(), Some("ab".repeat(32).as_str()));
        assert_eq!(open[0].tx_hex.as_deref(), Some("0200"));
        assert_eq!(open[0].tx_fee, Some(2_260));
        let again = vec![("bob".to_owned(), 1_000)];
        assert!(
            store
                .begin_payment("scrypt", &again, &signed("cd"), None, 6)
                .is_err(),
            "one payment of a coin at a time"
        );
        assert!(store.finish_payment(id).expect("finish"));
        assert!(!store.finish_payment(id).expect("twice"));
        assert!(store.confirm_payment(id).expect("confirmed"));
        assert!(!store.confirm_payment(id).expect("once"));
        assert!(!store
            .fail_payment(id, "too late", 8)
            .expect("confirmed stays confirmed"));
        assert_eq!(
            store.payments("scrypt").expect("payments")[0].status,
            PaymentStatus::Confirmed
        );
        let balances = store.balances("scrypt").expect("balances");
        assert_eq!(
            balances,
            vec![
                ("bob".to_owned(), 1_949_999_000),
                ("pool".to_owned(), 50_000_000)
            ]
        );
        let failed = store
            .begin_payment("scrypt", &again, &signed("ef"), Some("pool"), 9)
            .expect("begin");
        assert_eq!(
            store.balances("scrypt").expect("balances"),
            vec![
                ("bob".to_owned(), 1_949_998_000),
                ("pool".to_owned(), 50_000_000 - 2_260)
            ],
            "the pool's account carries the network fee"
        );
        assert!(store.finish_payment(failed).expect("sent"));
        // A sent payment whose transaction was double-spent fails, fee and all.
        assert!(store
            .fail_payment(failed, "double-spent", 10)
            .expect("fail"));
        assert!(!store.fail_payment(failed, "again", 11).expect("once"));
        assert!(!store.finish_payment(failed).expect("failed stays failed"));
        assert_eq!(
            store.balances("scrypt").expect("balances"),
            balances,
            "returned"
        );
        let bob: Vec<i64> = store
            .ledger("bob")
            .expect("ledger")
            .iter()
            .filter(|l| l.kind == LedgerKind::Payment)
            .map(|l| l.amount)
            .collect();
        assert_eq!(bob, [-1_000, -1_000, 1_000]);

        let alice = store.ledger("alice").expect("ledger");
        let kinds: Vec<LedgerKind> = alice.iter().map(|l| l.kind).collect();
        assert_eq!(
            kinds,
            [
                LedgerKind::Credit,
                LedgerKind::Credit,
                LedgerKind::Reversal,
                LedgerKind::Credit,
                LedgerKind::Reversal,
                LedgerKind::Payment
            ]
        );
        assert_eq!(alice.iter().map(|l| l.amount).sum::<i64>(), 0);
        assert_eq!(alice[5].payment_id, Some(id));
        assert_eq!(alice[2].block_hash.as_deref(), Some("b2"));

        let unpaid = store.unpaid_shares("scrypt", 0, 4).expect("unpaid");
        assert_eq!(unpaid.len(), 4);
        assert_eq!(unpaid[0].share, shares[0]);
        let ids: Vec<i64> = unpaid.iter().map(|p| p.id).collect();
        let pps = [entry("carol", 7, LedgerKind::Shares)];
        store
            .credit_shares("scrypt", &ids, &pps, 11)
            .expect("pay shares");
        assert!(store.credit_shares("scrypt", &ids[..1], &pps, 12).is_err());
        assert_eq!(
            store.unpaid_shares("scrypt", 0, 100).expect("rest").len(),
            2
        );
        assert_eq!(store.ledger("carol").expect("carol").len(), 1);

        // A scheme change is remembered; returning to a scheme starts it afresh.
        assert_eq!(
            store.scheme_since("scrypt", "pplns", 100).expect("first"),
            100
        );
        assert_eq!(
            store.scheme_since("scrypt", "pplns", 200).expect("same"),
            100
        );
        assert_eq!(
            store.scheme_since("scrypt", "pps", 300).expect("changed"),
            300
        );
        assert_eq!(
            store.scheme_since("sha256d", "pps", 350).expect("per coin"),
            350
        );
        assert_eq!(store.scheme_since("scrypt", "pps", 400).expect("same"), 300);
        assert_eq!(
            store.scheme_since("scrypt", "pplns", 500).expect("back"),
            500
        );
        assert_eq!(store.fee_accounts("scrypt").expect("fees"), ["pool"]);

        // Every balance is the sum of its ledger lines.
        let totals = store.ledger_totals("scrypt").expect("totals");
        assert_eq!(
            totals.iter().map(|(_, v)| v).sum::<i64>(),
            sum(store, "scrypt")
        );
        let of = |kind| totals.iter().find(|(k, _)| *k == kind).map(|(_, v)| *v);
        assert_eq!(of(LedgerKind::Reversal), Some(-5_000_001_010));
        assert_eq!(of(LedgerKind::Payment), Some(-3_000_001_000));
    }

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(
            display_database("postgres://pool:secret@db.example:5432/otedama"),
            "postgres://pool:***@db.example:5432/otedama"
        );
        assert_eq!(display_database("otedama.db"), "otedama.db");
    }
}
