//! The share log: every accepted share and every found block, durable before a share is
//! acknowledged.
//!
//! Storage is split by concern into small traits that only read and write rows:
//! [`ShareStore`] (shares, blocks), [`LedgerStore`] (ledger lines, balances, schemes) and
//! [`PaymentStore`] (payments, payer claims). [`Store`] joins them for one database and adds
//! the transaction boundary; SQLite and PostgreSQL implement it. The money rules over the rows
//! (credit once, reversals, payment checks and debits) are written once, in
//! [`accounting`](crate::accounting), for every backend.
//!
//! [`ShareLog`] owns a store on a writer thread and batches: requests that arrive while a
//! commit is running go into the next transaction together, and each caller is answered only
//! after the transaction holding its share has committed.

#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

use std::sync::mpsc;
use std::sync::Arc;
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
    /// Whether the share's coinbase paid its miner directly (its own sharechain share, or a
    /// SOLO job), so the pool's ledger owes nothing for it: reward schemes skip it.
    pub direct: bool,
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
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Sending => "sending",
            PaymentStatus::Sent => "sent",
            PaymentStatus::Confirmed => "confirmed",
            PaymentStatus::Failed => "failed",
        }
    }

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

/// Storage failures. Cheap to clone: one failed commit answers every share in its batch.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database refused or could not be reached.
    #[error("database error")]
    Database(#[source] Arc<dyn std::error::Error + Send + Sync>),
    /// The database was written by a newer otedama, whose tables this one does not know.
    #[error("database schema version {found} is newer than this otedama ({known})")]
    NewerSchema {
        /// The schema version found.
        found: usize,
        /// The newest version this build knows.
        known: usize,
    },
    /// A money rule refused the step; nothing was written.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The writer thread could not be started.
    #[error("cannot start the share log writer")]
    Thread(#[source] Arc<std::io::Error>),
    /// The writer thread is gone.
    #[error("the share log writer has stopped")]
    Stopped,
}

impl StoreError {
    /// A [`StoreError::Database`] around a driver's error.
    pub fn database(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
        StoreError::Database(Arc::new(e))
    }
}

/// A money rule that refused a storage step.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// A payment of the coin is still being sent: a second one could pay twice.
    #[error("a {coin} payment is still being sent")]
    PaymentInFlight {
        /// The coin.
        coin: String,
    },
    /// An output asks for more than the address's balance.
    #[error("{address} is owed {balance}, not {amount}")]
    OverBalance {
        /// The address.
        address: String,
        /// Its balance, smallest unit.
        balance: i64,
        /// The output's amount, smallest unit.
        amount: u64,
    },
    /// Some of the shares to pay were paid already.
    #[error("{already} of {wanted} shares were already paid")]
    SharesPaid {
        /// How many were paid already.
        already: u64,
        /// How many were to be paid.
        wanted: u64,
    },
    /// No block with this hash is recorded.
    #[error("no block {hash}")]
    UnknownBlock {
        /// The block's hash.
        hash: String,
    },
    /// An amount too large for the ledger's signed amounts.
    #[error("amount {amount} too large")]
    AmountTooLarge {
        /// The amount, smallest unit.
        amount: u64,
    },
    /// The reward could not be split among the miners.
    #[error("the reward split failed")]
    RewardSplit(#[source] otedama_rewards::RewardError),
    /// A test or embedder's own rule refused the step.
    #[error("{0}")]
    Other(&'static str),
}

/// How a block stands credited: the ledger lines its confirmation wrote, and their undoing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockCredit {
    /// Never credited.
    Never,
    /// Credited, and the credit stands.
    Credited,
    /// Credited, then reversed when it left the main chain.
    Reversed,
}

impl BlockCredit {
    /// The number stored in the database.
    pub fn as_code(self) -> i16 {
        match self {
            BlockCredit::Never => 0,
            BlockCredit::Credited => 1,
            BlockCredit::Reversed => 2,
        }
    }

    /// The value a stored number stands for (an unknown one counts as never credited).
    pub fn from_code(code: i64) -> Self {
        match code {
            1 => BlockCredit::Credited,
            2 => BlockCredit::Reversed,
            _ => BlockCredit::Never,
        }
    }
}

/// The share log's rows: shares, found blocks and their status. Reads and writes rows only;
/// the rules over them are in [`accounting`](crate::accounting).
pub trait ShareStore {
    /// Inserts `shares`.
    fn add_shares(&mut self, shares: &[ShareRecord]) -> Result<(), StoreError>;
    /// Inserts `blocks`, leaving a block already recorded (by hash) as it is.
    fn add_blocks(&mut self, blocks: &[BlockRecord]) -> Result<(), StoreError>;
    /// Sets a block's status, and its detail when `detail` is given.
    fn set_block_status(
        &mut self,
        hash: &str,
        status: BlockStatus,
        detail: Option<&str>,
    ) -> Result<(), StoreError>;
    /// The coin of block `hash` and how it stands credited; `None` when no such block is
    /// recorded. PostgreSQL locks the row until the transaction ends.
    fn block_credit(&mut self, hash: &str) -> Result<Option<(String, BlockCredit)>, StoreError>;
    /// Records how block `hash` stands credited.
    fn set_block_credit(&mut self, hash: &str, credit: BlockCredit) -> Result<(), StoreError>;
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
    /// The first `limit` shares recorded, oldest first.
    fn shares(&mut self, limit: u64) -> Result<Vec<ShareRecord>, StoreError>;
    /// The shares of `coin` with `after_ms < time_ms <= until_ms` that the ledger owes (not
    /// [`ShareRecord::direct`]), oldest first: a PPLNS window or a PROP round.
    fn shares_between(
        &mut self,
        coin: &str,
        after_ms: i64,
        until_ms: i64,
    ) -> Result<Vec<ShareRecord>, StoreError>;
    /// The last `limit` shares of `coin` with `after_ms < time_ms <= until_ms` that the
    /// ledger owes (not [`ShareRecord::direct`]), oldest first: a PPLNS window counted in
    /// shares.
    fn last_shares(
        &mut self,
        coin: &str,
        after_ms: i64,
        until_ms: i64,
        limit: u64,
    ) -> Result<Vec<ShareRecord>, StoreError>;
    /// Up to `limit` shares of `coin` from `since_ms` on, not yet paid under PPS/FPPS and not
    /// [`ShareRecord::direct`], oldest first.
    fn unpaid_shares(
        &mut self,
        coin: &str,
        since_ms: i64,
        limit: u64,
    ) -> Result<Vec<PendingShare>, StoreError>;
    /// Marks the unpaid shares among `ids` paid; returns how many it marked.
    fn mark_shares_paid(&mut self, ids: &[i64]) -> Result<u64, StoreError>;
}

/// The ledger's rows: append-only lines, the balances they add up to, and the reward scheme
/// each coin followed when. Reads and writes rows only.
pub trait LedgerStore {
    /// Appends ledger lines of `coin` and moves each address's balance by its line.
    fn append(
        &mut self,
        coin: &str,
        entries: &[NewEntry],
        block_hash: Option<&str>,
        payment_id: Option<i64>,
        time_ms: i64,
    ) -> Result<(), StoreError>;
    /// Every ledger line of block `hash`, oldest first.
    fn block_lines(&mut self, hash: &str) -> Result<Vec<LedgerEntry>, StoreError>;
    /// Every ledger line of `address` (all coins), oldest first.
    fn ledger(&mut self, address: &str) -> Result<Vec<LedgerEntry>, StoreError>;
    /// The balance of `address` in `coin` (0 when it has none). PostgreSQL locks the row
    /// until the transaction ends.
    fn balance(&mut self, coin: &str, address: &str) -> Result<i64, StoreError>;
    /// Every non-zero balance of `coin`, by address.
    fn balances(&mut self, coin: &str) -> Result<Vec<(String, i64)>, StoreError>;
    /// The sum of every ledger line of `coin`, by kind.
    fn ledger_totals(&mut self, coin: &str) -> Result<Vec<(LedgerKind, i64)>, StoreError>;
    /// The addresses of `coin` that have been paid pool fees: the pool's own, never paid out.
    fn fee_accounts(&mut self, coin: &str) -> Result<Vec<String>, StoreError>;
    /// Makes any other transaction that calls this for `coin` wait until this one ends (a
    /// write transaction holds SQLite whole already).
    fn lock_schemes(&mut self, coin: &str) -> Result<(), StoreError>;
    /// The scheme `coin` last recorded, and since when.
    fn last_scheme(&mut self, coin: &str) -> Result<Option<(String, i64)>, StoreError>;
    /// Records that `coin` pays under `scheme` from `since_ms` on.
    fn add_scheme(&mut self, coin: &str, scheme: &str, since_ms: i64) -> Result<(), StoreError>;
}

/// The payments' rows: payments, their outputs and status, and the claims on paying a coin.
/// Reads and writes rows only.
pub trait PaymentStore {
    /// Makes any other transaction that calls this for `coin` wait until this one ends (a
    /// write transaction holds SQLite whole already).
    fn lock_payments(&mut self, coin: &str) -> Result<(), StoreError>;
    /// How many payments of `coin` stand at `status`.
    fn payment_count(&mut self, coin: &str, status: PaymentStatus) -> Result<u64, StoreError>;
    /// Inserts a payment at `status`, with its signed transaction and its outputs; returns
    /// its id.
    fn add_payment(
        &mut self,
        coin: &str,
        status: PaymentStatus,
        transaction: &PaymentTransaction,
        fee_account: Option<&str>,
        outputs: &[(String, u64)],
        time_ms: i64,
    ) -> Result<i64, StoreError>;
    /// Payment `id`, outputs included. PostgreSQL locks its row until the transaction ends.
    fn payment(&mut self, id: i64) -> Result<Option<Payment>, StoreError>;
    /// Sets a payment's status, and its detail when `detail` is given.
    fn set_payment_status(
        &mut self,
        id: i64,
        status: PaymentStatus,
        detail: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Every payment of `coin`, oldest first.
    fn payments(&mut self, coin: &str) -> Result<Vec<Payment>, StoreError>;
    /// Who holds the claim on paying `coin`, and until when (Unix milliseconds).
    fn payer(&mut self, coin: &str) -> Result<Option<(String, i64)>, StoreError>;
    /// Gives the claim on paying `coin` to `owner` until `expires_ms`.
    fn set_payer(&mut self, coin: &str, owner: &str, expires_ms: i64) -> Result<(), StoreError>;
}

/// The addresses the Stratum servers banned, kept so that a restart does not lift them.
pub trait BanStore {
    /// Records a ban of `ip` ending at `until_ms` (Unix milliseconds), replacing any earlier
    /// one of the same address.
    fn add_ban(&mut self, ip: &str, until_ms: i64, reason: &str) -> Result<(), StoreError>;
    /// Removes the ban of `ip`; `false` when there was none.
    fn lift_ban(&mut self, ip: &str) -> Result<bool, StoreError>;
    /// The bans that end after `now_ms`, with their ends.
    fn bans(&mut self, now_ms: i64) -> Result<Vec<(String, i64)>, StoreError>;
}

/// One entry of the audit log: who changed what, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// When, Unix milliseconds.
    pub time_ms: i64,
    /// Who: an operator's name or token id, or the part of the pool that acted (`stratum`
    /// for a ban its sessions decided).
    pub actor: String,
    /// What kind of change (`ban`, `unban`, `payment-settled`, ...).
    pub action: String,
    /// What exactly.
    pub detail: String,
}

/// The audit log of operator actions and the pool's own decisions about miners: append-only
/// (the backends refuse to change or delete an entry).
pub trait AuditStore {
    /// Appends `entry`.
    fn audit(&mut self, entry: &AuditEntry) -> Result<(), StoreError>;
    /// The last `limit` entries, newest first.
    fn audit_log(&mut self, limit: u64) -> Result<Vec<AuditEntry>, StoreError>;
}

/// The row stores of one database, as a transaction sees them.
pub trait Rows: ShareStore + LedgerStore + PaymentStore + BanStore + AuditStore {}

impl<T: ShareStore + LedgerStore + PaymentStore + BanStore + AuditStore + ?Sized> Rows for T {}

/// A database the pool records into: the three row stores, and transactions over them.
///
/// Outside a transaction each row read or write stands alone. The steps that must be all or
/// nothing (a batch of shares, and every accounting step: see
/// [`accounting`](crate::accounting)) run through [`transaction`](Store::transaction), and
/// are written once, over [`Rows`], for every backend.
pub trait Store: Rows + Send {
    /// Runs `step` in one database transaction: committed when it returns `Ok`, rolled back
    /// when it returns an error or panics.
    fn transaction(
        &mut self,
        step: &mut dyn FnMut(&mut dyn Rows) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;
}

impl dyn Store + '_ {
    /// Runs `step` in one database transaction and returns what it returns: all or nothing.
    pub fn atomically<T>(
        &mut self,
        step: impl FnOnce(&mut dyn Rows) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut step = Some(step);
        let mut out = None;
        self.transaction(&mut |rows| {
            let step = step.take().ok_or(StoreError::Refused(Refusal::Other(
                "a transaction step ran twice",
            )))?;
            out = Some(step(rows)?);
            Ok(())
        })?;
        out.ok_or(StoreError::Refused(Refusal::Other(
            "a transaction step never ran",
        )))
    }

    /// Writes shares and blocks in one transaction; all or nothing.
    pub fn commit(
        &mut self,
        shares: &[ShareRecord],
        blocks: &[BlockRecord],
    ) -> Result<(), StoreError> {
        self.atomically(|rows| {
            rows.add_shares(shares)?;
            rows.add_blocks(blocks)
        })
    }
}

/// What a backend does to begin and end a transaction on its connection.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
trait Session: Rows {
    /// Begins a write transaction.
    fn begin(&mut self) -> Result<(), StoreError>;
    /// Commits (`commit`) or rolls back the transaction begun.
    fn end(&mut self, commit: bool) -> Result<(), StoreError>;
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
/// [`Store::transaction`] for every backend: `step` between [`Session::begin`] and
/// [`Session::end`], rolled back on an error or a panic.
fn run_transaction<S: Session>(
    session: &mut S,
    step: &mut dyn FnMut(&mut dyn Rows) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    session.begin()?;
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| step(&mut *session)));
    match outcome {
        Ok(Ok(())) => session.end(true).inspect_err(|_| {
            let _ = session.end(false);
        }),
        Ok(Err(e)) => {
            let _ = session.end(false);
            Err(e)
        }
        Err(panic) => {
            let _ = session.end(false);
            std::panic::resume_unwind(panic)
        }
    }
}

/// Work run on the writer thread against its store.
type StoreJob = Box<dyn FnOnce(&mut dyn Store) + Send>;

enum Request {
    Share(ShareRecord, mpsc::Sender<Result<(), StoreError>>),
    Block(BlockRecord, mpsc::Sender<Result<(), StoreError>>),
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
            .map_err(|e| StoreError::Thread(Arc::new(e)))?;
        ready_rx.recv().map_err(|_| StoreError::Stopped)??;
        Ok((ShareLog { tx }, handle))
    }

    /// Records a share; returns once it is committed.
    pub fn record_share(&self, share: ShareRecord) -> Result<(), StoreError> {
        let (done, wait) = mpsc::channel();
        self.tx
            .send(Request::Share(share, done))
            .map_err(|_| StoreError::Stopped)?;
        wait.recv().map_err(|_| StoreError::Stopped)?
    }

    // The tests use it.
    /// Records a share without waiting; the receiver yields the commit result.
    pub fn record_share_async(
        &self,
        share: ShareRecord,
    ) -> Result<mpsc::Receiver<Result<(), StoreError>>, StoreError> {
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
        wait.recv().map_err(|_| StoreError::Stopped)?
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
        store.commit(&shares, &blocks)
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
            direct: i >= 10 && i % 5 == 4,
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
        assert_eq!(shares[14], share(14), "a direct share reads back as one");
        // Shares a coinbase paid directly are no reward scheme's to pay.
        let owed = |list: Vec<ShareRecord>| list.iter().all(|s| !s.direct) && list.len() == 42;
        let (from, to) = (1_700_000_000_000 - 1, 1_700_000_000_000 + 100);
        assert!(owed(
            store.shares_between("scrypt", from, to).expect("between")
        ));
        assert!(owed(
            store.last_shares("scrypt", from, to, 100).expect("last")
        ));
        let unpaid = store.unpaid_shares("scrypt", 0, 100).expect("unpaid");
        assert!(owed(unpaid.into_iter().map(|p| p.share).collect()));
        let blocks = store.blocks().expect("blocks");
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].status, BlockStatus::Accepted);
        assert_eq!(blocks[0].detail.as_deref(), Some("ok"));
        assert_eq!(blocks[0].algorithm, "scrypt");
        assert_eq!(blocks[0].payee.as_deref(), Some("rltc1qexample"));

        // Bans: one per address (a later one replaces it), ended ones not read back.
        store
            .add_ban("192.0.2.1", 5_000, "bad shares")
            .expect("ban");
        store
            .add_ban("2001:db8::1", 9_000, "bad lines")
            .expect("ban");
        store.add_ban("192.0.2.1", 7_000, "again").expect("ban");
        assert_eq!(
            store.bans(6_000).expect("bans"),
            vec![
                ("192.0.2.1".to_owned(), 7_000),
                ("2001:db8::1".to_owned(), 9_000)
            ]
        );
        assert_eq!(
            store.bans(8_000).expect("bans"),
            vec![("2001:db8::1".to_owned(), 9_000)]
        );
        assert!(store.lift_ban("2001:db8::1").expect("lift"));
        assert!(!store.lift_ban("2001:db8::1").expect("lift"));
        assert!(store.bans(8_000).expect("bans").is_empty());

        exercise_audit(store.as_mut());
    }

    /// The audit log: newest first, written with the step it records or not at all.
    pub(crate) fn exercise_audit(store: &mut dyn Store) {
        for (i, action) in ["ban", "unban", "payment-settled"].into_iter().enumerate() {
            store
                .audit(&AuditEntry {
                    time_ms: 1_000 + i as i64,
                    actor: "alice".into(),
                    action: action.into(),
                    detail: format!("entry {i}"),
                })
                .expect("audit");
        }
        let log = store.audit_log(2).expect("log");
        assert_eq!(
            log.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
            ["payment-settled", "unban"]
        );
        assert_eq!(log[0].time_ms, 1_002);
        assert_eq!(log[0].actor, "alice");
        let tampered = store.atomically(|rows| {
            rows.audit(&AuditEntry {
                time_ms: 9,
                actor: "x".into(),
                action: "x".into(),
                detail: "x".into(),
            })?;
            Err::<(), _>(StoreError::Refused(Refusal::Other("rolled back")))
        });
        assert!(tampered.is_err());
        assert_eq!(
            store.audit_log(10).expect("log").len(),
            3,
            "rolled back with its step"
        );
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

    fn record(hash: &str, time_ms: i64) -> BlockRecord {
        BlockRecord {
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
        }
    }

    fn signed(txid: &str, fee: u64) -> PaymentTransaction {
        PaymentTransaction {
            txid: txid.repeat(32),
            hex: "0200".into(),
            fee,
        }
    }

    /// Row access on a fresh store, rule-free: what each row method reads back after the
    /// others write, and transactions that commit whole or not at all (on an error or a
    /// panic). Both backends pass the same assertions.
    pub(crate) fn exercise_rows(store: &mut dyn Store) {
        store
            .commit(&[share(1), share(2)], &[record("r1", 100)])
            .expect("commit");
        let mut again = record("r1", 100);
        again.address = "mallory".into();
        store.add_blocks(&[again]).expect("a known hash");
        assert_eq!(store.blocks().expect("blocks"), [record("r1", 100)]);
        assert_eq!(
            store.block_credit("r1").expect("credit"),
            Some(("scrypt".to_owned(), BlockCredit::Never))
        );
        assert_eq!(store.block_credit("none").expect("unknown"), None);
        store
            .set_block_credit("r1", BlockCredit::Reversed)
            .expect("set");
        assert_eq!(
            store.block_credit("r1").expect("credit"),
            Some(("scrypt".to_owned(), BlockCredit::Reversed))
        );
        store
            .set_block_status("r1", BlockStatus::Confirmed, Some("deep"))
            .expect("status");
        store
            .set_block_status("r1", BlockStatus::Orphaned, None)
            .expect("status, detail kept");
        let blocks = store.blocks().expect("blocks");
        assert_eq!(blocks[0].status, BlockStatus::Orphaned);
        assert_eq!(blocks[0].detail.as_deref(), Some("deep"));

        store
            .append(
                "scrypt",
                &[
                    entry("alice", 5, LedgerKind::Credit),
                    entry("alice", -2, LedgerKind::Payment),
                ],
                Some("r1"),
                None,
                7,
            )
            .expect("append");
        store
            .append(
                "sha256d",
                &[entry("alice", 9, LedgerKind::Fee)],
                None,
                Some(4),
                8,
            )
            .expect("append");
        assert_eq!(store.balance("scrypt", "alice").expect("balance"), 3);
        assert_eq!(store.balance("scrypt", "nobody").expect("none"), 0);
        assert_eq!(store.balance("sha256d", "alice").expect("per coin"), 9);
        let lines = store.block_lines("r1").expect("lines");
        assert_eq!(
            lines
                .iter()
                .map(|l| (l.amount, l.kind, l.time_ms, l.coin.as_str()))
                .collect::<Vec<_>>(),
            [
                (5, LedgerKind::Credit, 7, "scrypt"),
                (-2, LedgerKind::Payment, 7, "scrypt")
            ]
        );
        assert!(lines[0].id < lines[1].id);
        assert_eq!(
            store.ledger("alice").expect("ledger")[2].payment_id,
            Some(4)
        );
        assert_eq!(store.fee_accounts("sha256d").expect("fees"), ["alice"]);
        assert!(store.fee_accounts("scrypt").expect("none").is_empty());

        let ids: Vec<i64> = store
            .unpaid_shares("scrypt", 0, 10)
            .expect("unpaid")
            .iter()
            .map(|p| p.id)
            .collect();
        assert_eq!(ids.len(), 2);
        assert_eq!(store.mark_shares_paid(&ids).expect("marked"), 2);
        assert_eq!(store.mark_shares_paid(&ids).expect("once"), 0);
        assert!(store
            .unpaid_shares("scrypt", 0, 10)
            .expect("none")
            .is_empty());

        store
            .lock_payments("scrypt")
            .expect("lock outside a transaction");
        assert_eq!(
            store
                .payment_count("scrypt", PaymentStatus::Sending)
                .expect("count"),
            0
        );
        let outputs = [("bob".to_owned(), 2), ("alice".to_owned(), 1)];
        let id = store
            .add_payment(
                "scrypt",
                PaymentStatus::Sending,
                &signed("ab", 300),
                Some("pool"),
                &outputs,
                9,
            )
            .expect("payment");
        let payment = store.payment(id).expect("read").expect("there");
        assert_eq!(
            payment,
            Payment {
                id,
                coin: "scrypt".into(),
                time_ms: 9,
                status: PaymentStatus::Sending,
                txid: Some("ab".repeat(32)),
                tx_fee: Some(300),
                tx_hex: Some("0200".into()),
                fee_account: Some("pool".into()),
                detail: None,
                outputs: vec![("alice".into(), 1), ("bob".into(), 2)],
            }
        );
        assert_eq!(store.payments("scrypt").expect("payments"), [payment]);
        assert!(store.payments("sha256d").expect("other coin").is_empty());
        assert_eq!(store.payment(id + 1000).expect("read"), None);
        assert_eq!(
            store
                .payment_count("scrypt", PaymentStatus::Sending)
                .expect("count"),
            1
        );
        store
            .set_payment_status(id, PaymentStatus::Failed, Some("why"))
            .expect("status");
        store
            .set_payment_status(id, PaymentStatus::Confirmed, None)
            .expect("status, detail kept");
        let payment = store.payment(id).expect("read").expect("there");
        assert_eq!(payment.status, PaymentStatus::Confirmed);
        assert_eq!(payment.detail.as_deref(), Some("why"));

        assert_eq!(store.payer("scrypt").expect("payer"), None);
        store.set_payer("scrypt", "a", 10).expect("claim");
        store.set_payer("scrypt", "b", 20).expect("taken over");
        assert_eq!(
            store.payer("scrypt").expect("payer"),
            Some(("b".to_owned(), 20))
        );
        assert_eq!(store.payer("sha256d").expect("per coin"), None);

        store
            .lock_schemes("scrypt")
            .expect("lock outside a transaction");
        assert_eq!(store.last_scheme("scrypt").expect("scheme"), None);
        store.add_scheme("scrypt", "pplns", 1).expect("scheme");
        store.add_scheme("scrypt", "pps", 2).expect("scheme");
        assert_eq!(
            store.last_scheme("scrypt").expect("scheme"),
            Some(("pps".to_owned(), 2))
        );

        // A transaction is all or nothing: an error or a panic inside undoes every write.
        let before = (
            store.share_count().expect("count"),
            store.balances("scrypt").expect("balances"),
        );
        let refused = store.atomically(|rows| {
            rows.add_shares(&[share(3)])?;
            rows.append(
                "scrypt",
                &[entry("bob", 1, LedgerKind::Credit)],
                None,
                None,
                9,
            )?;
            Err::<(), _>(StoreError::Refused(Refusal::Other("stop")))
        });
        assert!(matches!(refused, Err(StoreError::Refused(_))));
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            store.atomically(|rows| -> Result<(), StoreError> {
                rows.add_shares(&[share(4)])?;
                panic!("a step panics halfway");
            })
        }));
        assert!(panicked.is_err());
        assert_eq!(
            (
                store.share_count().expect("count"),
                store.balances("scrypt").expect("balances"),
            ),
            before,
            "rolled back"
        );
        let kept = store
            .atomically(|rows| {
                rows.add_shares(&[share(5)])?;
                rows.append(
                    "scrypt",
                    &[entry("bob", 1, LedgerKind::Credit)],
                    None,
                    None,
                    9,
                )?;
                Ok(42)
            })
            .expect("committed");
        assert_eq!(kept, 42);
        assert_eq!(store.share_count().expect("count"), before.0 + 1);
        assert_eq!(store.balance("scrypt", "bob").expect("bob"), 1);
    }

    /// The money rules on a fresh store, on top of [`exercise_accounting`]: a block orphaned
    /// before its credit, credits and reversals in every order, refusals that write nothing,
    /// and the payer claim's expiry. Returns a transcript of every row the rules wrote (ids
    /// aside), which is the same on every backend.
    pub(crate) fn exercise_rules(store: &mut dyn Store) -> Vec<String> {
        let shares: Vec<ShareRecord> = (0..4).map(share).collect();
        store
            .commit(&shares, &[record("r1", 100), record("r2", 200)])
            .expect("commit");
        let totals = |store: &mut dyn Store| store.ledger_totals("scrypt").expect("totals");

        // Orphaned before it was credited: nothing to reverse; credited when it comes back.
        assert!(store
            .orphan_block("r1", "not seen", 1)
            .expect("orphan")
            .is_empty());
        assert_eq!(
            store.block_credit("r1").expect("credit"),
            Some(("scrypt".to_owned(), BlockCredit::Never))
        );
        let first = [
            entry("alice", 100, LedgerKind::Credit),
            entry("pool", 1, LedgerKind::Fee),
        ];
        assert!(store.credit_block("r1", "back", &first, 2).expect("credit"));
        assert!(!store.credit_block("r1", "deeper", &first, 3).expect("once"));
        assert_eq!(
            store.block_credit("r1").expect("credit"),
            Some(("scrypt".to_owned(), BlockCredit::Credited))
        );
        let reversed = store.orphan_block("r1", "gone", 4).expect("orphan");
        assert_eq!(
            reversed.iter().map(|e| e.amount).collect::<Vec<_>>(),
            [-100, -1]
        );
        assert!(reversed.iter().all(|e| e.kind == LedgerKind::Reversal));
        assert_eq!(
            reversed[0].memo,
            "block r1 orphaned: undoes its credit line"
        );
        assert!(store
            .orphan_block("r1", "again", 5)
            .expect("once")
            .is_empty());
        assert_eq!(
            store.block_credit("r1").expect("credit"),
            Some(("scrypt".to_owned(), BlockCredit::Reversed))
        );
        let second = [entry("alice", 50, LedgerKind::Credit)];
        assert!(store
            .credit_block("r1", "back again", &second, 6)
            .expect("re-credit"));
        assert_eq!(
            store
                .orphan_block("r1", "gone again", 7)
                .expect("orphan")
                .iter()
                .map(|e| e.amount)
                .collect::<Vec<_>>(),
            [-50],
            "only the lines since the last reversal"
        );
        assert_eq!(store.balance("scrypt", "alice").expect("alice"), 0);

        // An unknown block is refused, and nothing is written.
        let before = totals(store);
        assert!(matches!(
            store.credit_block("nope", "", &first, 8),
            Err(StoreError::Refused(_))
        ));
        assert!(matches!(
            store.orphan_block("nope", "", 8),
            Err(StoreError::Refused(_))
        ));
        assert_eq!(totals(store), before);

        // A payment over one balance is refused whole; within them, it debits each once.
        let owed = [
            entry("bob", 10, LedgerKind::Credit),
            entry("carol", 5, LedgerKind::Credit),
            entry("pool", 7, LedgerKind::Fee),
        ];
        assert!(store.credit_block("r2", "deep", &owed, 9).expect("credit"));
        let balances = store.balances("scrypt").expect("balances");
        let too_much = [("bob".to_owned(), 10), ("carol".to_owned(), 6)];
        assert!(matches!(
            store.begin_payment("scrypt", &too_much, &signed("ab", 0), Some("pool"), 10),
            Err(StoreError::Refused(_))
        ));
        assert!(store.payments("scrypt").expect("payments").is_empty());
        assert_eq!(store.balances("scrypt").expect("balances"), balances);
        let due = [("bob".to_owned(), 10), ("carol".to_owned(), 5)];
        let id = store
            .begin_payment("scrypt", &due, &signed("ab", 0), Some("pool"), 11)
            .expect("begin");
        assert!(
            store
                .ledger("pool")
                .expect("pool")
                .iter()
                .all(|l| l.kind != LedgerKind::Payment),
            "no network fee, no fee line"
        );
        assert!(matches!(
            store.begin_payment("scrypt", &due, &signed("cd", 0), None, 12),
            Err(StoreError::Refused(_))
        ));
        assert!(!store.confirm_payment(id).expect("not sent yet"));
        assert!(store.fail_payment(id, "refused", 13).expect("fail"));
        assert_eq!(store.balances("scrypt").expect("balances"), balances);
        let failed = store.payment(id).expect("read").expect("there");
        assert_eq!(failed.status, PaymentStatus::Failed);
        assert_eq!(failed.detail.as_deref(), Some("refused"));
        assert!(!store.fail_payment(id, "again", 14).expect("once"));
        assert!(!store.finish_payment(id).expect("failed stays failed"));
        assert!(!store.finish_payment(id + 1000).expect("unknown"));
        assert!(!store
            .fail_payment(id + 1000, "unknown", 14)
            .expect("unknown"));
        let sent = store
            .begin_payment("scrypt", &due[..1], &signed("ef", 3), Some("pool"), 15)
            .expect("begin");
        assert!(store.finish_payment(sent).expect("sent"));
        assert!(store.confirm_payment(sent).expect("confirmed"));
        assert_eq!(store.balance("scrypt", "pool").expect("pool"), 4);

        // Shares are paid once: a batch holding one paid share is refused whole.
        let all: Vec<i64> = store
            .unpaid_shares("scrypt", 0, 10)
            .expect("unpaid")
            .iter()
            .map(|p| p.id)
            .collect();
        assert_eq!(all.len(), 4);
        let ids = &all[..3];
        let pay = [entry("dave", 3, LedgerKind::Shares)];
        store
            .credit_shares("scrypt", &ids[1..2], &pay, 16)
            .expect("pay one");
        assert!(matches!(
            store.credit_shares("scrypt", ids, &pay, 17),
            Err(StoreError::Refused(_))
        ));
        let unpaid: Vec<i64> = store
            .unpaid_shares("scrypt", 0, 10)
            .expect("unpaid")
            .iter()
            .map(|p| p.id)
            .collect();
        assert_eq!(
            unpaid,
            [all[0], all[2], all[3]],
            "the refused batch's marks undone"
        );
        assert_eq!(store.ledger("dave").expect("dave").len(), 1);

        // A claim holds through its expiry and lapses just after.
        assert!(store.claim_payer("scrypt", "a", 100, 50).expect("free"));
        assert!(!store
            .claim_payer("scrypt", "b", 150, 50)
            .expect("at expiry"));
        assert!(store.claim_payer("scrypt", "b", 151, 50).expect("lapsed"));
        assert!(store.claim_payer("scrypt", "b", 160, 50).expect("renewed"));
        assert_eq!(
            store.payer("scrypt").expect("payer"),
            Some(("b".to_owned(), 210))
        );

        let mut transcript = Vec::new();
        for address in ["alice", "bob", "carol", "dave", "pool"] {
            for l in store.ledger(address).expect("ledger") {
                transcript.push(format!(
                    "{} {} {} {} {:?} {:?} {:?} {}",
                    l.time_ms,
                    l.coin,
                    l.address,
                    l.amount,
                    l.kind,
                    l.block_hash,
                    l.payment_id,
                    l.memo
                ));
            }
        }
        transcript.push(format!("{:?}", store.balances("scrypt").expect("balances")));
        transcript.push(format!("{:?}", totals(store)));
        transcript.push(format!("{:?}", store.payments("scrypt").expect("payments")));
        transcript.push(format!("{:?}", store.blocks().expect("blocks")));
        transcript
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
