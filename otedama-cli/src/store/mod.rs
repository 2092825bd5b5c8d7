//! The share log: every accepted share and every found block, durable before a share is
//! acknowledged.
//!
//! [`Store`] is the storage behind a trait (SQLite now; PostgreSQL plugs in beside it).
//! [`ShareLog`] owns a store on a writer thread and batches: requests that arrive while a
//! commit is running go into the next transaction together, and each caller is answered only
//! after the transaction holding its share has committed.

mod postgres;
mod sqlite;

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

pub(crate) use postgres::PostgresStore;
pub(crate) use sqlite::SqliteStore;

/// `database` for messages, with any password in a URL hidden.
pub(crate) fn display_database(database: &str) -> String {
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
pub(crate) fn is_postgres_url(database: &str) -> bool {
    database.starts_with("postgres://") || database.starts_with("postgresql://")
}

/// Opens the database `pool.database` names (a `postgres://` URL, or a SQLite file path) on
/// the writer thread, and starts the share log over it. Blocks until the database is open.
pub(crate) fn open_share_log(
    database: &str,
) -> Result<(ShareLog, thread::JoinHandle<()>), StoreError> {
    let database = database.to_owned();
    ShareLog::start_with(move || -> Result<Box<dyn Store>, StoreError> {
        if is_postgres_url(&database) {
            Ok(Box::new(PostgresStore::open(&database)?))
        } else {
            Ok(Box::new(SqliteStore::open(std::path::Path::new(
                &database,
            ))?))
        }
    })
}

/// An accepted share, with what reward accounting needs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ShareRecord {
    /// The algorithm (and so the coin) of the port it came in on.
    pub(crate) algorithm: String,
    /// Unix time in milliseconds.
    pub(crate) time_ms: i64,
    /// The payout address.
    pub(crate) address: String,
    /// The worker name after the address (may be empty).
    pub(crate) worker: String,
    /// The share difficulty credited.
    pub(crate) difficulty: f64,
    /// The job.
    pub(crate) job_id: String,
    /// Height of the block the job builds.
    pub(crate) height: u64,
    /// The proof-of-work hash, as the kernel wrote it.
    pub(crate) pow_hash: [u8; 32],
    /// Whether the share also solved a block.
    pub(crate) is_block: bool,
}

/// Where a found block stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BlockStatus {
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
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            BlockStatus::Submitted => "submitted",
            BlockStatus::Accepted => "accepted",
            BlockStatus::Rejected => "rejected",
            BlockStatus::Confirmed => "confirmed",
            BlockStatus::Orphaned => "orphaned",
        }
    }

    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn parse(s: &str) -> Option<Self> {
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
pub(crate) struct BlockRecord {
    /// The algorithm of the port it came in on.
    pub(crate) algorithm: String,
    /// Unix time in milliseconds.
    pub(crate) time_ms: i64,
    /// Height.
    pub(crate) height: u64,
    /// Block hash, display order hex.
    pub(crate) hash: String,
    /// Who found it.
    pub(crate) address: String,
    /// Worker name.
    pub(crate) worker: String,
    /// Coinbase value in the coin's smallest unit.
    pub(crate) reward: u64,
    /// Status.
    pub(crate) status: BlockStatus,
    /// The node's answer, when it gave one.
    pub(crate) detail: Option<String>,
}

/// Storage failures.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// The database refused.
    #[error("database: {0}")]
    Database(String),
    /// The writer thread is gone.
    #[error("the share log writer has stopped")]
    Stopped,
}

/// A database the pool records into.
// The read side serves the tests now and the ledger command of the rewards work next.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) trait Store: Send {
    /// Writes shares and blocks in one transaction; all or nothing.
    fn commit(&mut self, shares: &[ShareRecord], blocks: &[BlockRecord]) -> Result<(), StoreError>;
    /// Updates a block's status.
    fn set_block_status(
        &mut self,
        hash: &str,
        status: BlockStatus,
        detail: Option<&str>,
    ) -> Result<(), StoreError>;
    /// How many shares are recorded.
    fn share_count(&mut self) -> Result<u64, StoreError>;
    /// Every recorded block, oldest first.
    fn blocks(&mut self) -> Result<Vec<BlockRecord>, StoreError>;
    /// Shares recorded for a job and nonce-free key (time, address) — for audits and tests.
    fn shares(&mut self, limit: u64) -> Result<Vec<ShareRecord>, StoreError>;
}

#[cfg_attr(not(test), allow(dead_code))]
enum Request {
    Share(ShareRecord, mpsc::Sender<Result<(), String>>),
    Block(BlockRecord, mpsc::Sender<Result<(), String>>),
    Status(String, BlockStatus, Option<String>),
    Flush(mpsc::Sender<()>),
    Blocks(mpsc::Sender<Result<Vec<BlockRecord>, String>>),
}

/// The writer thread and the handle to it. Clone the handle freely; the thread ends when the
/// last handle is dropped, after writing everything queued.
#[derive(Clone)]
pub(crate) struct ShareLog {
    tx: mpsc::Sender<Request>,
}

/// Most records in one transaction.
const MAX_BATCH: usize = 4096;

#[cfg_attr(not(test), allow(dead_code))]
impl ShareLog {
    /// Starts the writer thread over `store`.
    pub(crate) fn start(
        store: Box<dyn Store>,
    ) -> Result<(ShareLog, thread::JoinHandle<()>), StoreError> {
        ShareLog::start_with(move || Ok(store))
    }

    /// Starts the writer thread, which first opens its store with `open`: a database client
    /// that blocks on a runtime of its own (PostgreSQL's) then lives on a plain thread.
    pub(crate) fn start_with(
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
    pub(crate) fn record_share(&self, share: ShareRecord) -> Result<(), StoreError> {
        let (done, wait) = mpsc::channel();
        self.tx
            .send(Request::Share(share, done))
            .map_err(|_| StoreError::Stopped)?;
        wait.recv()
            .map_err(|_| StoreError::Stopped)?
            .map_err(StoreError::Database)
    }

    /// Records a share without waiting; the receiver yields the commit result.
    pub(crate) fn record_share_async(
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
    pub(crate) fn record_block(&self, block: BlockRecord) -> Result<(), StoreError> {
        let (done, wait) = mpsc::channel();
        self.tx
            .send(Request::Block(block, done))
            .map_err(|_| StoreError::Stopped)?;
        wait.recv()
            .map_err(|_| StoreError::Stopped)?
            .map_err(StoreError::Database)
    }

    /// Queues a block status change.
    pub(crate) fn set_block_status(
        &self,
        hash: String,
        status: BlockStatus,
        detail: Option<String>,
    ) {
        let _ = self.tx.send(Request::Status(hash, status, detail));
    }

    /// Every recorded block, read on the writer thread after what is queued before it.
    pub(crate) fn blocks(&self, timeout: Duration) -> Result<Vec<BlockRecord>, StoreError> {
        let (done, wait) = mpsc::channel();
        self.tx
            .send(Request::Blocks(done))
            .map_err(|_| StoreError::Stopped)?;
        wait.recv_timeout(timeout)
            .map_err(|_| StoreError::Stopped)?
            .map_err(StoreError::Database)
    }

    /// Waits until everything queued before this call is written.
    pub(crate) fn flush(&self, timeout: Duration) -> bool {
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
    let mut reads = Vec::new();
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
            Request::Blocks(w) => reads.push(w),
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
    for f in flushes {
        let _ = f.send(());
    }
    for r in reads {
        let _ = r.send(store.blocks().map_err(|e| e.to_string()));
    }
}

/// The checks every store passes.
#[cfg(test)]
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
