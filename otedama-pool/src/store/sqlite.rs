//! The embedded default store: one SQLite file in WAL mode, synchronous commits.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection};

use super::{
    run_transaction, AuditEntry, AuditStore, BanStore, BlockCredit, BlockRecord, BlockStatus,
    LedgerEntry, LedgerKind, LedgerStore, NewEntry, Payment, PaymentStatus, PaymentStore,
    PaymentTransaction, PendingShare, Rows, Session, ShareRecord, ShareStore, Store, StoreError,
};

/// Schema migrations, applied in order; the index of the last applied one is kept in
/// `PRAGMA user_version`.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE shares (
        id INTEGER PRIMARY KEY,
        time_ms INTEGER NOT NULL,
        address TEXT NOT NULL,
        worker TEXT NOT NULL,
        difficulty REAL NOT NULL,
        job_id TEXT NOT NULL,
        height INTEGER NOT NULL,
        pow_hash BLOB NOT NULL,
        is_block INTEGER NOT NULL
    );
    CREATE INDEX shares_time ON shares (time_ms);
    CREATE INDEX shares_address ON shares (address, time_ms);
    CREATE TABLE blocks (
        id INTEGER PRIMARY KEY,
        time_ms INTEGER NOT NULL,
        height INTEGER NOT NULL,
        hash TEXT NOT NULL UNIQUE,
        address TEXT NOT NULL,
        worker TEXT NOT NULL,
        reward INTEGER NOT NULL,
        status TEXT NOT NULL,
        detail TEXT
    );",
    // Pools serving several algorithms write to one database.
    "ALTER TABLE shares ADD COLUMN algorithm TEXT NOT NULL DEFAULT '';
    ALTER TABLE blocks ADD COLUMN algorithm TEXT NOT NULL DEFAULT '';",
    // Reward accounting: what PPS needs of each share, balances and the ledger behind them,
    // and payments.
    "ALTER TABLE shares ADD COLUMN network_difficulty REAL NOT NULL DEFAULT 0;
    ALTER TABLE shares ADD COLUMN block_value INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE shares ADD COLUMN tx_fees INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE shares ADD COLUMN paid INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX shares_coin_time ON shares (algorithm, time_ms);
    CREATE INDEX shares_unpaid ON shares (algorithm, id) WHERE paid = 0;
    ALTER TABLE blocks ADD COLUMN payee TEXT;
    ALTER TABLE blocks ADD COLUMN credited INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE ledger (
        id INTEGER PRIMARY KEY,
        time_ms INTEGER NOT NULL,
        coin TEXT NOT NULL,
        address TEXT NOT NULL,
        amount INTEGER NOT NULL,
        kind TEXT NOT NULL,
        block_hash TEXT,
        payment_id INTEGER,
        memo TEXT NOT NULL
    );
    CREATE INDEX ledger_address ON ledger (address, id);
    CREATE INDEX ledger_block ON ledger (block_hash);
    CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
        BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
    CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
        BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
    CREATE TABLE balances (
        coin TEXT NOT NULL,
        address TEXT NOT NULL,
        amount INTEGER NOT NULL,
        PRIMARY KEY (coin, address)
    );
    CREATE TABLE payments (
        id INTEGER PRIMARY KEY,
        coin TEXT NOT NULL,
        time_ms INTEGER NOT NULL,
        status TEXT NOT NULL,
        txid TEXT,
        tx_fee INTEGER,
        tx_hex TEXT,
        fee_account TEXT,
        detail TEXT
    );
    CREATE TABLE payment_outputs (
        payment_id INTEGER NOT NULL REFERENCES payments (id),
        address TEXT NOT NULL,
        amount INTEGER NOT NULL,
        PRIMARY KEY (payment_id, address)
    );
    CREATE TABLE payers (
        coin TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        expires_ms INTEGER NOT NULL
    );
    CREATE TABLE schemes (
        id INTEGER PRIMARY KEY,
        coin TEXT NOT NULL,
        scheme TEXT NOT NULL,
        since_ms INTEGER NOT NULL
    );",
    "CREATE TABLE bans (
        ip TEXT PRIMARY KEY,
        until_ms INTEGER NOT NULL,
        reason TEXT NOT NULL
    );",
    "CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        time_ms INTEGER NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;",
    "ALTER TABLE shares ADD COLUMN direct INTEGER NOT NULL DEFAULT 0;",
];

fn share_from_row(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<ShareRecord> {
    let hash: Vec<u8> = r.get(at + 6)?;
    let mut pow_hash = [0u8; 32];
    if hash.len() == 32 {
        pow_hash.copy_from_slice(&hash);
    }
    Ok(ShareRecord {
        time_ms: r.get(at)?,
        address: r.get(at + 1)?,
        worker: r.get(at + 2)?,
        difficulty: r.get(at + 3)?,
        job_id: r.get(at + 4)?,
        height: r.get::<_, i64>(at + 5)?.max(0) as u64,
        pow_hash,
        is_block: r.get(at + 7)?,
        algorithm: r.get(at + 8)?,
        network_difficulty: r.get(at + 9)?,
        block_value: r.get::<_, i64>(at + 10)?.max(0) as u64,
        tx_fees: r.get::<_, i64>(at + 11)?.max(0) as u64,
        direct: r.get(at + 12)?,
    })
}

/// The share columns [`share_from_row`] reads, in its order.
const SHARE_COLUMNS: &str = "time_ms, address, worker, difficulty, job_id, height, pow_hash, is_block, algorithm, network_difficulty, block_value, tx_fees, direct";

fn db(e: rusqlite::Error) -> StoreError {
    StoreError::database(e)
}

/// How long opening a database waits for other connections that hold it.
const OPEN_PATIENCE: Duration = Duration::from_secs(30);

/// How long a read or write of an open database waits for other connections.
const WRITE_PATIENCE: Duration = Duration::from_secs(10);

/// Runs `step` again while SQLite answers busy or locked, until `deadline`.
fn retry_busy<T>(
    deadline: Instant,
    mut step: impl FnMut() -> Result<T, rusqlite::Error>,
) -> Result<T, StoreError> {
    let mut pause = Duration::from_millis(1);
    loop {
        match step() {
            Ok(value) => return Ok(value),
            Err(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
                ) && Instant::now() + pause < deadline =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            Err(e) => return Err(db(e)),
        }
    }
}

/// The SQLite store.
pub struct SqliteStore {
    conn: Connection,
}

impl SqliteStore {
    /// Opens (creating and migrating as needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(db)?;
        conn.busy_timeout(OPEN_PATIENCE).map_err(db)?;
        // Several connections open one new file at once (each port of a pool and its
        // accounting thread). SQLite answers "busy" without waiting when two of them would
        // otherwise deadlock, upgrading a read lock to switch the journal or migrate, so
        // those steps are retried until the patience runs out.
        let deadline = Instant::now() + OPEN_PATIENCE;
        // WAL with synchronous=FULL: a commit that returned is on disk, so an acknowledged
        // share survives a kill or a power cut.
        retry_busy(deadline, || {
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0))
        })?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(db)?;
        let mut store = SqliteStore { conn };
        let found = retry_busy(deadline, || store.migrate())?;
        if found > MIGRATIONS.len() {
            return Err(StoreError::NewerSchema {
                found,
                known: MIGRATIONS.len(),
            });
        }
        store.conn.busy_timeout(WRITE_PATIENCE).map_err(db)?;
        Ok(store)
    }

    /// Brings the schema up to date and returns the version the file had, leaving a file
    /// newer than this otedama untouched.
    fn migrate(&mut self) -> Result<usize, rusqlite::Error> {
        // The version is read and the migrations applied under one write lock, so that
        // several pools opening the same file at once migrate it exactly once.
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let applied: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let applied = usize::try_from(applied).unwrap_or(0);
        if applied > MIGRATIONS.len() {
            return Ok(applied);
        }
        for sql in MIGRATIONS.iter().skip(applied) {
            tx.execute_batch(sql)?;
        }
        tx.pragma_update(None, "user_version", MIGRATIONS.len() as i64)?;
        tx.commit()?;
        Ok(applied)
    }
}

impl SqliteStore {
    /// Runs `sql` (cached) and reads each row with `read`.
    fn query<T>(
        &self,
        sql: &str,
        args: impl rusqlite::Params,
        read: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, StoreError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(db)?;
        let rows = stmt.query_map(args, read).map_err(db)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db)
    }

    /// Runs `sql` (cached); returns how many rows it changed.
    fn execute(&self, sql: &str, args: impl rusqlite::Params) -> Result<usize, StoreError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(db)?;
        stmt.execute(args).map_err(db)
    }

    fn select_blocks(
        &self,
        filter: &str,
        args: impl rusqlite::Params,
    ) -> Result<Vec<BlockRecord>, StoreError> {
        self.query(
            &format!(
                "SELECT time_ms, height, hash, address, worker, reward, status, detail, algorithm, payee
                 FROM blocks WHERE {filter} ORDER BY id"
            ),
            args,
            |r| {
                let status: String = r.get(6)?;
                Ok(BlockRecord {
                    time_ms: r.get(0)?,
                    height: r.get::<_, i64>(1)?.max(0) as u64,
                    hash: r.get(2)?,
                    address: r.get(3)?,
                    worker: r.get(4)?,
                    reward: r.get::<_, i64>(5)?.max(0) as u64,
                    status: BlockStatus::parse(&status).unwrap_or(BlockStatus::Submitted),
                    detail: r.get(7)?,
                    algorithm: r.get(8)?,
                    payee: r.get(9)?,
                })
            },
        )
    }

    fn select_shares(
        &self,
        filter: &str,
        args: impl rusqlite::Params,
    ) -> Result<Vec<ShareRecord>, StoreError> {
        self.query(
            &format!("SELECT {SHARE_COLUMNS} FROM shares {filter}"),
            args,
            |r| share_from_row(r, 0),
        )
    }

    fn select_ledger(
        &self,
        filter: &str,
        args: impl rusqlite::Params,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        self.query(
            &format!(
                "SELECT id, time_ms, coin, address, amount, kind, block_hash, payment_id, memo
                 FROM ledger WHERE {filter} ORDER BY id"
            ),
            args,
            |r| {
                let kind: String = r.get(5)?;
                Ok(LedgerEntry {
                    id: r.get(0)?,
                    time_ms: r.get(1)?,
                    coin: r.get(2)?,
                    address: r.get(3)?,
                    amount: r.get(4)?,
                    kind: LedgerKind::parse(&kind).unwrap_or(LedgerKind::Credit),
                    block_hash: r.get(6)?,
                    payment_id: r.get(7)?,
                    memo: r.get(8)?,
                })
            },
        )
    }

    fn select_payments(
        &self,
        filter: &str,
        args: impl rusqlite::Params,
    ) -> Result<Vec<Payment>, StoreError> {
        let mut payments = self.query(
            &format!(
                "SELECT id, coin, time_ms, status, txid, tx_fee, detail, tx_hex, fee_account
                 FROM payments WHERE {filter} ORDER BY id"
            ),
            args,
            |r| {
                let status: String = r.get(3)?;
                Ok(Payment {
                    id: r.get(0)?,
                    coin: r.get(1)?,
                    time_ms: r.get(2)?,
                    status: PaymentStatus::parse(&status).unwrap_or(PaymentStatus::Sending),
                    txid: r.get(4)?,
                    tx_fee: r.get::<_, Option<i64>>(5)?.map(|f| f.max(0) as u64),
                    detail: r.get(6)?,
                    tx_hex: r.get(7)?,
                    fee_account: r.get(8)?,
                    outputs: Vec::new(),
                })
            },
        )?;
        for p in &mut payments {
            p.outputs = self.query(
                "SELECT address, amount FROM payment_outputs WHERE payment_id = ?1 ORDER BY address",
                [p.id],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?.max(0) as u64)),
            )?;
        }
        Ok(payments)
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl ShareStore for SqliteStore {
    fn add_shares(&mut self, shares: &[ShareRecord]) -> Result<(), StoreError> {
        for s in shares {
            self.execute(
                "INSERT INTO shares (time_ms, address, worker, difficulty, job_id, height, pow_hash, is_block, algorithm, network_difficulty, block_value, tx_fees, direct)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                params![
                    s.time_ms,
                    s.address,
                    s.worker,
                    s.difficulty,
                    s.job_id,
                    to_i64(s.height),
                    &s.pow_hash[..],
                    s.is_block,
                    s.algorithm,
                    s.network_difficulty,
                    to_i64(s.block_value),
                    to_i64(s.tx_fees),
                    s.direct
                ],
            )?;
        }
        Ok(())
    }

    fn add_blocks(&mut self, blocks: &[BlockRecord]) -> Result<(), StoreError> {
        for b in blocks {
            self.execute(
                "INSERT INTO blocks (time_ms, height, hash, address, worker, reward, status, detail, algorithm, payee)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT (hash) DO NOTHING",
                params![
                    b.time_ms,
                    to_i64(b.height),
                    b.hash,
                    b.address,
                    b.worker,
                    to_i64(b.reward),
                    b.status.as_str(),
                    b.detail,
                    b.algorithm,
                    b.payee
                ],
            )?;
        }
        Ok(())
    }

    fn set_block_status(
        &mut self,
        hash: &str,
        status: BlockStatus,
        detail: Option<&str>,
    ) -> Result<(), StoreError> {
        self.execute(
            "UPDATE blocks SET status = ?2, detail = COALESCE(?3, detail) WHERE hash = ?1",
            params![hash, status.as_str(), detail],
        )?;
        Ok(())
    }

    fn block_credit(&mut self, hash: &str) -> Result<Option<(String, BlockCredit)>, StoreError> {
        let found = self.query(
            "SELECT algorithm, credited FROM blocks WHERE hash = ?1",
            [hash],
            |r| Ok((r.get(0)?, BlockCredit::from_code(r.get(1)?))),
        )?;
        Ok(found.into_iter().next())
    }

    fn set_block_credit(&mut self, hash: &str, credit: BlockCredit) -> Result<(), StoreError> {
        self.execute(
            "UPDATE blocks SET credited = ?2 WHERE hash = ?1",
            params![hash, credit.as_code()],
        )?;
        Ok(())
    }

    fn share_count(&mut self) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM shares", [], |r| r.get(0))
            .map_err(db)?;
        Ok(n.max(0) as u64)
    }

    fn blocks(&mut self) -> Result<Vec<BlockRecord>, StoreError> {
        self.select_blocks("1 = 1", params![])
    }

    fn watched_blocks(
        &mut self,
        coin: &str,
        recent_ms: i64,
    ) -> Result<Vec<BlockRecord>, StoreError> {
        self.select_blocks(
            "algorithm = ?1 AND (status IN ('submitted', 'accepted') OR time_ms > ?2)",
            params![coin, recent_ms],
        )
    }

    fn shares(&mut self, limit: u64) -> Result<Vec<ShareRecord>, StoreError> {
        self.select_shares("ORDER BY id LIMIT ?1", [to_i64(limit)])
    }

    fn shares_between(
        &mut self,
        coin: &str,
        after_ms: i64,
        until_ms: i64,
    ) -> Result<Vec<ShareRecord>, StoreError> {
        self.select_shares(
            "WHERE algorithm = ?1 AND direct = 0 AND time_ms > ?2 AND time_ms <= ?3 ORDER BY id",
            params![coin, after_ms, until_ms],
        )
    }

    fn last_shares(
        &mut self,
        coin: &str,
        after_ms: i64,
        until_ms: i64,
        limit: u64,
    ) -> Result<Vec<ShareRecord>, StoreError> {
        let mut shares = self.select_shares(
            "WHERE algorithm = ?1 AND direct = 0 AND time_ms > ?2 AND time_ms <= ?3 ORDER BY id DESC LIMIT ?4",
            params![coin, after_ms, until_ms, to_i64(limit)],
        )?;
        shares.reverse();
        Ok(shares)
    }

    fn unpaid_shares(
        &mut self,
        coin: &str,
        since_ms: i64,
        limit: u64,
    ) -> Result<Vec<PendingShare>, StoreError> {
        self.query(
            &format!(
                "SELECT id, {SHARE_COLUMNS} FROM shares
                 WHERE algorithm = ?1 AND paid = 0 AND direct = 0 AND time_ms >= ?3 ORDER BY id LIMIT ?2"
            ),
            params![coin, to_i64(limit), since_ms],
            |r| {
                Ok(PendingShare {
                    id: r.get(0)?,
                    share: share_from_row(r, 1)?,
                })
            },
        )
    }

    fn mark_shares_paid(&mut self, ids: &[i64]) -> Result<u64, StoreError> {
        let mut marked = 0;
        for id in ids {
            marked += self.execute(
                "UPDATE shares SET paid = 1 WHERE id = ?1 AND paid = 0",
                [id],
            )?;
        }
        Ok(marked as u64)
    }
}

impl LedgerStore for SqliteStore {
    fn append(
        &mut self,
        coin: &str,
        entries: &[NewEntry],
        block_hash: Option<&str>,
        payment_id: Option<i64>,
        time_ms: i64,
    ) -> Result<(), StoreError> {
        for e in entries {
            self.execute(
                "INSERT INTO ledger (time_ms, coin, address, amount, kind, block_hash, payment_id, memo)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    time_ms,
                    coin,
                    e.address,
                    e.amount,
                    e.kind.as_str(),
                    block_hash,
                    payment_id,
                    e.memo
                ],
            )?;
            self.execute(
                "INSERT INTO balances (coin, address, amount) VALUES (?1, ?2, ?3)
                 ON CONFLICT (coin, address) DO UPDATE SET amount = amount + excluded.amount",
                params![coin, e.address, e.amount],
            )?;
        }
        Ok(())
    }

    fn block_lines(&mut self, hash: &str) -> Result<Vec<LedgerEntry>, StoreError> {
        self.select_ledger("block_hash = ?1", [hash])
    }

    fn ledger(&mut self, address: &str) -> Result<Vec<LedgerEntry>, StoreError> {
        self.select_ledger("address = ?1", [address])
    }

    fn balance(&mut self, coin: &str, address: &str) -> Result<i64, StoreError> {
        let found = self.query(
            "SELECT amount FROM balances WHERE coin = ?1 AND address = ?2",
            params![coin, address],
            |r| r.get(0),
        )?;
        Ok(found.into_iter().next().unwrap_or(0))
    }

    fn balances(&mut self, coin: &str) -> Result<Vec<(String, i64)>, StoreError> {
        self.query(
            "SELECT address, amount FROM balances WHERE coin = ?1 AND amount != 0 ORDER BY address",
            [coin],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }

    fn ledger_totals(&mut self, coin: &str) -> Result<Vec<(LedgerKind, i64)>, StoreError> {
        let sums = self.query(
            "SELECT kind, SUM(amount) FROM ledger WHERE coin = ?1 GROUP BY kind ORDER BY kind",
            [coin],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)),
        )?;
        Ok(sums
            .into_iter()
            .filter_map(|(kind, sum)| LedgerKind::parse(&kind).map(|k| (k, sum)))
            .collect())
    }

    fn fee_accounts(&mut self, coin: &str) -> Result<Vec<String>, StoreError> {
        self.query(
            "SELECT DISTINCT address FROM ledger WHERE coin = ?1 AND kind = 'fee' ORDER BY address",
            [coin],
            |r| r.get(0),
        )
    }

    fn lock_schemes(&mut self, _coin: &str) -> Result<(), StoreError> {
        Ok(())
    }

    fn last_scheme(&mut self, coin: &str) -> Result<Option<(String, i64)>, StoreError> {
        let found = self.query(
            "SELECT scheme, since_ms FROM schemes WHERE coin = ?1 ORDER BY id DESC LIMIT 1",
            [coin],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(found.into_iter().next())
    }

    fn add_scheme(&mut self, coin: &str, scheme: &str, since_ms: i64) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO schemes (coin, scheme, since_ms) VALUES (?1, ?2, ?3)",
            params![coin, scheme, since_ms],
        )?;
        Ok(())
    }
}

impl AuditStore for SqliteStore {
    fn audit(&mut self, entry: &AuditEntry) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO audit (time_ms, actor, action, detail) VALUES (?1, ?2, ?3, ?4)",
            params![entry.time_ms, entry.actor, entry.action, entry.detail],
        )?;
        Ok(())
    }

    fn audit_log(&mut self, limit: u64) -> Result<Vec<AuditEntry>, StoreError> {
        self.query(
            "SELECT time_ms, actor, action, detail FROM audit ORDER BY id DESC LIMIT ?1",
            [to_i64(limit)],
            |r| {
                Ok(AuditEntry {
                    time_ms: r.get(0)?,
                    actor: r.get(1)?,
                    action: r.get(2)?,
                    detail: r.get(3)?,
                })
            },
        )
    }
}

impl BanStore for SqliteStore {
    fn add_ban(&mut self, ip: &str, until_ms: i64, reason: &str) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO bans (ip, until_ms, reason) VALUES (?1, ?2, ?3)
             ON CONFLICT (ip) DO UPDATE SET until_ms = excluded.until_ms, reason = excluded.reason",
            params![ip, until_ms, reason],
        )?;
        Ok(())
    }

    fn lift_ban(&mut self, ip: &str) -> Result<bool, StoreError> {
        Ok(self.execute("DELETE FROM bans WHERE ip = ?1", [ip])? > 0)
    }

    fn bans(&mut self, now_ms: i64) -> Result<Vec<(String, i64)>, StoreError> {
        self.query(
            "SELECT ip, until_ms FROM bans WHERE until_ms > ?1 ORDER BY ip",
            [now_ms],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }
}

impl PaymentStore for SqliteStore {
    fn lock_payments(&mut self, _coin: &str) -> Result<(), StoreError> {
        Ok(())
    }

    fn payment_count(&mut self, coin: &str, status: PaymentStatus) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .query_row(
                "SELECT COUNT(*) FROM payments WHERE coin = ?1 AND status = ?2",
                params![coin, status.as_str()],
                |r| r.get(0),
            )
            .map_err(db)?;
        Ok(n.max(0) as u64)
    }

    fn add_payment(
        &mut self,
        coin: &str,
        status: PaymentStatus,
        transaction: &PaymentTransaction,
        fee_account: Option<&str>,
        outputs: &[(String, u64)],
        time_ms: i64,
    ) -> Result<i64, StoreError> {
        self.execute(
            "INSERT INTO payments (coin, time_ms, status, txid, tx_fee, tx_hex, fee_account)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                coin,
                time_ms,
                status.as_str(),
                transaction.txid,
                to_i64(transaction.fee),
                transaction.hex,
                fee_account
            ],
        )?;
        let id = self.conn.last_insert_rowid();
        for (address, amount) in outputs {
            self.execute(
                "INSERT INTO payment_outputs (payment_id, address, amount) VALUES (?1, ?2, ?3)",
                params![id, address, to_i64(*amount)],
            )?;
        }
        Ok(id)
    }

    fn payment(&mut self, id: i64) -> Result<Option<Payment>, StoreError> {
        Ok(self.select_payments("id = ?1", [id])?.into_iter().next())
    }

    fn set_payment_status(
        &mut self,
        id: i64,
        status: PaymentStatus,
        detail: Option<&str>,
    ) -> Result<(), StoreError> {
        self.execute(
            "UPDATE payments SET status = ?2, detail = COALESCE(?3, detail) WHERE id = ?1",
            params![id, status.as_str(), detail],
        )?;
        Ok(())
    }

    fn payments(&mut self, coin: &str) -> Result<Vec<Payment>, StoreError> {
        self.select_payments("coin = ?1", [coin])
    }

    fn payer(&mut self, coin: &str) -> Result<Option<(String, i64)>, StoreError> {
        let found = self.query(
            "SELECT owner, expires_ms FROM payers WHERE coin = ?1",
            [coin],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(found.into_iter().next())
    }

    fn set_payer(&mut self, coin: &str, owner: &str, expires_ms: i64) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO payers (coin, owner, expires_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (coin) DO UPDATE SET owner = excluded.owner, expires_ms = excluded.expires_ms",
            params![coin, owner, expires_ms],
        )?;
        Ok(())
    }
}

impl Session for SqliteStore {
    fn begin(&mut self) -> Result<(), StoreError> {
        // Immediate: the write lock is taken (waiting up to the busy timeout) before the first
        // read, so a step that reads then writes never fails halfway on another connection.
        self.conn.execute_batch("BEGIN IMMEDIATE").map_err(db)
    }

    fn end(&mut self, commit: bool) -> Result<(), StoreError> {
        let sql = if commit { "COMMIT" } else { "ROLLBACK" };
        self.conn.execute_batch(sql).map_err(db)
    }
}

impl Store for SqliteStore {
    fn transaction(
        &mut self,
        step: &mut dyn FnMut(&mut dyn Rows) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        run_transaction(self, step)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::store::tests::exercise;

    #[test]
    fn shares_and_blocks_survive_reopening() {
        let dir = std::env::temp_dir().join(format!("otedama-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("shares.db");
        let _ = std::fs::remove_file(&path);
        exercise(&|| Box::new(SqliteStore::open(&path).expect("open")));
        let store = SqliteStore::open(&path).expect("open");
        let err = store
            .conn
            .execute("UPDATE audit SET actor = 'mallory'", [])
            .expect_err("append-only");
        assert!(err.to_string().contains("append-only"), "{err}");
        assert!(store.conn.execute("DELETE FROM audit", []).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn many_connections_open_a_new_file_at_once() {
        // Every port of a pool, and each one's accounting thread, opens the same file at
        // start; none of them may be turned away by another's migration or WAL switch.
        let dir = std::env::temp_dir().join(format!("otedama-race-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        for round in 0..20 {
            let path = dir.join(format!("race-{round}.db"));
            let _ = std::fs::remove_file(&path);
            let start = std::sync::Arc::new(std::sync::Barrier::new(8));
            let openers: Vec<_> = (0..8)
                .map(|_| {
                    let path = path.clone();
                    let start = start.clone();
                    std::thread::spawn(move || {
                        start.wait();
                        SqliteStore::open(&path).map(|_| ())
                    })
                })
                .collect();
            for opener in openers {
                opener.join().expect("opener").expect("open");
            }
            let store = SqliteStore::open(&path).expect("reopen");
            let mode: String = store
                .conn
                .query_row("PRAGMA journal_mode", [], |r| r.get(0))
                .expect("mode");
            assert_eq!(mode, "wal");
            let version: i64 = store
                .conn
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .expect("version");
            assert_eq!(version, MIGRATIONS.len() as i64);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A fresh database file in a directory of its own, removed by the caller.
    pub(crate) fn fresh(name: &str) -> (SqliteStore, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("otedama-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        (SqliteStore::open(&dir.join("pool.db")).expect("open"), dir)
    }

    #[test]
    fn rows_read_back_what_they_wrote_and_transactions_are_whole() {
        let (mut store, dir) = fresh("rows");
        crate::store::tests::exercise_rows(&mut store);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_money_rules_hold_over_sqlite_rows() {
        let (mut store, dir) = fresh("rules");
        let transcript = crate::store::tests::exercise_rules(&mut store);
        assert!(!transcript.is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn accounting_is_exact_and_the_ledger_append_only() {
        let dir = std::env::temp_dir().join(format!("otedama-ledger-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("ledger.db");
        let _ = std::fs::remove_file(&path);
        let mut store = SqliteStore::open(&path).expect("open");
        crate::store::tests::exercise_accounting(&mut store);
        let err = store
            .conn
            .execute("UPDATE ledger SET amount = amount + 1", [])
            .expect_err("append-only");
        assert!(err.to_string().contains("append-only"), "{err}");
        assert!(store.conn.execute("DELETE FROM ledger", []).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
