//! The share log: every accepted share and every found block, durable before a share is
//! acknowledged.
//!
//! [`Store`] is the storage behind a trait (SQLite now; PostgreSQL plugs in beside it).
//! [`ShareLog`] owns a store on a writer thread and batches: requests that arrive while a
//! commit is running go into the next transaction together, and each caller is answered only
//! after the transaction holding its share has committed.

mod sqlite;

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

pub(crate) use sqlite::SqliteStore;

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
}

impl BlockStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            BlockStatus::Submitted => "submitted",
            BlockStatus::Accepted => "accepted",
            BlockStatus::Rejected => "rejected",
        }
    }

    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "submitted" => Some(BlockStatus::Submitted),
            "accepted" => Some(BlockStatus::Accepted),
            "rejected" => Some(BlockStatus::Rejected),
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
        mut store: Box<dyn Store>,
    ) -> Result<(ShareLog, thread::JoinHandle<()>), StoreError> {
        let (tx, rx) = mpsc::channel::<Request>();
        let handle = thread::Builder::new()
            .name("share-log".into())
            .spawn(move || {
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
}
