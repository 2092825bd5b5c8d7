//! The embedded default store: one SQLite file in WAL mode, synchronous commits.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OptionalExtension};

use super::{
    BlockRecord, BlockStatus, LedgerEntry, LedgerKind, NewEntry, Payment, PaymentStatus,
    PaymentTransaction, PendingShare, ShareRecord, Store, StoreError,
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
];

/// Appends ledger lines and moves the balances with them, inside the caller's transaction.
fn append(
    tx: &rusqlite::Transaction<'_>,
    coin: &str,
    entries: &[NewEntry],
    block_hash: Option<&str>,
    payment_id: Option<i64>,
    time_ms: i64,
) -> Result<(), StoreError> {
    let mut line = tx
        .prepare_cached(
            "INSERT INTO ledger (time_ms, coin, address, amount, kind, block_hash, payment_id, memo)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .map_err(db)?;
    let mut balance = tx
        .prepare_cached(
            "INSERT INTO balances (coin, address, amount) VALUES (?1, ?2, ?3)
             ON CONFLICT (coin, address) DO UPDATE SET amount = amount + excluded.amount",
        )
        .map_err(db)?;
    for e in entries {
        line.execute(params![
            time_ms,
            coin,
            e.address,
            e.amount,
            e.kind.as_str(),
            block_hash,
            payment_id,
            e.memo
        ])
        .map_err(db)?;
        balance
            .execute(params![coin, e.address, e.amount])
            .map_err(db)?;
    }
    Ok(())
}

/// Sets a block's status inside the caller's transaction; returns its coin and how it stands
/// credited (0 never, 1 credited, 2 reversed).
fn set_status(
    tx: &rusqlite::Transaction<'_>,
    hash: &str,
    status: BlockStatus,
    detail: &str,
) -> Result<(String, i64), StoreError> {
    let found: Option<(String, i64)> = tx
        .query_row(
            "SELECT algorithm, credited FROM blocks WHERE hash = ?1",
            [hash],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(db)?;
    let found = found.ok_or_else(|| StoreError::Database(format!("no block {hash}")))?;
    tx.execute(
        "UPDATE blocks SET status = ?2, detail = ?3 WHERE hash = ?1",
        params![hash, status.as_str(), detail],
    )
    .map_err(db)?;
    Ok(found)
}

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
    })
}

/// The share columns [`share_from_row`] reads, in its order.
const SHARE_COLUMNS: &str = "time_ms, address, worker, difficulty, job_id, height, pow_hash, is_block, algorithm, network_difficulty, block_value, tx_fees";

fn db(e: rusqlite::Error) -> StoreError {
    StoreError::Database(e.to_string())
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
            return Err(StoreError::Database(format!(
                "database schema version {found} is newer than this otedama ({})",
                MIGRATIONS.len()
            )));
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
    fn select_blocks(
        &mut self,
        filter: &str,
        args: impl rusqlite::Params,
    ) -> Result<Vec<BlockRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT time_ms, height, hash, address, worker, reward, status, detail, algorithm, payee
                 FROM blocks WHERE {filter} ORDER BY id"
            ))
            .map_err(db)?;
        let rows = stmt
            .query_map(args, |r| {
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
            })
            .map_err(db)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db)
    }
}

impl Store for SqliteStore {
    fn commit(&mut self, shares: &[ShareRecord], blocks: &[BlockRecord]) -> Result<(), StoreError> {
        let tx = self.conn.transaction().map_err(db)?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO shares (time_ms, address, worker, difficulty, job_id, height, pow_hash, is_block, algorithm, network_difficulty, block_value, tx_fees)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                )
                .map_err(db)?;
            for s in shares {
                insert
                    .execute(params![
                        s.time_ms,
                        s.address,
                        s.worker,
                        s.difficulty,
                        s.job_id,
                        s.height as i64,
                        &s.pow_hash[..],
                        s.is_block,
                        s.algorithm,
                        s.network_difficulty,
                        s.block_value as i64,
                        s.tx_fees as i64
                    ])
                    .map_err(db)?;
            }
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO blocks (time_ms, height, hash, address, worker, reward, status, detail, algorithm, payee)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                     ON CONFLICT (hash) DO NOTHING",
                )
                .map_err(db)?;
            for b in blocks {
                insert
                    .execute(params![
                        b.time_ms,
                        b.height as i64,
                        b.hash,
                        b.address,
                        b.worker,
                        b.reward as i64,
                        b.status.as_str(),
                        b.detail,
                        b.algorithm,
                        b.payee
                    ])
                    .map_err(db)?;
            }
        }
        tx.commit().map_err(db)
    }

    fn set_block_status(
        &mut self,
        hash: &str,
        status: BlockStatus,
        detail: Option<&str>,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE blocks SET status = ?2, detail = COALESCE(?3, detail) WHERE hash = ?1",
                params![hash, status.as_str(), detail],
            )
            .map_err(db)?;
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
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {SHARE_COLUMNS} FROM shares ORDER BY id LIMIT ?1"
            ))
            .map_err(db)?;
        let rows = stmt
            .query_map([limit.min(i64::MAX as u64) as i64], |r| {
                share_from_row(r, 0)
            })
            .map_err(db)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db)
    }

    fn shares_between(
        &mut self,
        coin: &str,
        after_ms: i64,
        until_ms: i64,
    ) -> Result<Vec<ShareRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {SHARE_COLUMNS} FROM shares
                 WHERE algorithm = ?1 AND time_ms > ?2 AND time_ms <= ?3 ORDER BY id"
            ))
            .map_err(db)?;
        let rows = stmt
            .query_map(params![coin, after_ms, until_ms], |r| share_from_row(r, 0))
            .map_err(db)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db)
    }

    fn last_shares(
        &mut self,
        coin: &str,
        after_ms: i64,
        until_ms: i64,
        limit: u64,
    ) -> Result<Vec<ShareRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {SHARE_COLUMNS} FROM shares
                 WHERE algorithm = ?1 AND time_ms > ?2 AND time_ms <= ?3 ORDER BY id DESC LIMIT ?4"
            ))
            .map_err(db)?;
        let rows = stmt
            .query_map(
                params![coin, after_ms, until_ms, limit.min(i64::MAX as u64) as i64],
                |r| share_from_row(r, 0),
            )
            .map_err(db)?;
        let mut shares = rows.collect::<Result<Vec<_>, _>>().map_err(db)?;
        shares.reverse();
        Ok(shares)
    }

    fn credit_block(
        &mut self,
        hash: &str,
        detail: &str,
        entries: &[NewEntry],
        time_ms: i64,
    ) -> Result<bool, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(db)?;
        let (coin, credited) = set_status(&tx, hash, BlockStatus::Confirmed, detail)?;
        // 0: never credited; 2: credited, then reversed when it left the main chain.
        let fresh = credited != 1;
        if fresh {
            append(&tx, &coin, entries, Some(hash), None, time_ms)?;
            tx.execute("UPDATE blocks SET credited = 1 WHERE hash = ?1", [hash])
                .map_err(db)?;
        }
        tx.commit().map_err(db)?;
        Ok(fresh)
    }

    fn orphan_block(
        &mut self,
        hash: &str,
        detail: &str,
        time_ms: i64,
    ) -> Result<Vec<NewEntry>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(db)?;
        let (coin, credited) = set_status(&tx, hash, BlockStatus::Orphaned, detail)?;
        let mut reversal = Vec::new();
        if credited == 1 {
            {
                let mut stmt = tx
                    .prepare(
                        "SELECT address, amount, kind FROM ledger
                         WHERE block_hash = ?1 AND kind != 'reversal'
                           AND id > COALESCE((SELECT MAX(id) FROM ledger
                                              WHERE block_hash = ?1 AND kind = 'reversal'), 0)
                         ORDER BY id",
                    )
                    .map_err(db)?;
                let rows = stmt
                    .query_map([hash], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, String>(2)?,
                        ))
                    })
                    .map_err(db)?;
                for row in rows {
                    let (address, amount, kind) = row.map_err(db)?;
                    reversal.push(NewEntry {
                        address,
                        amount: -amount,
                        kind: LedgerKind::Reversal,
                        memo: format!("block {hash} orphaned: undoes its {kind} line"),
                    });
                }
            }
            append(&tx, &coin, &reversal, Some(hash), None, time_ms)?;
            tx.execute("UPDATE blocks SET credited = 2 WHERE hash = ?1", [hash])
                .map_err(db)?;
        }
        tx.commit().map_err(db)?;
        Ok(reversal)
    }

    fn balances(&mut self, coin: &str) -> Result<Vec<(String, i64)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT address, amount FROM balances WHERE coin = ?1 AND amount != 0 ORDER BY address",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map([coin], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(db)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db)
    }

    fn ledger_totals(&mut self, coin: &str) -> Result<Vec<(LedgerKind, i64)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT kind, SUM(amount) FROM ledger WHERE coin = ?1 GROUP BY kind ORDER BY kind",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map([coin], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })
            .map_err(db)?;
        let mut out = Vec::new();
        for row in rows {
            let (kind, sum) = row.map_err(db)?;
            if let Some(kind) = LedgerKind::parse(&kind) {
                out.push((kind, sum));
            }
        }
        Ok(out)
    }

    fn ledger(&mut self, address: &str) -> Result<Vec<LedgerEntry>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, time_ms, coin, address, amount, kind, block_hash, payment_id, memo
                 FROM ledger WHERE address = ?1 ORDER BY id",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map([address], |r| {
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
            })
            .map_err(db)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db)
    }

    fn claim_payer(
        &mut self,
        coin: &str,
        owner: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(db)?;
        tx.execute(
            "INSERT INTO payers (coin, owner, expires_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (coin) DO UPDATE SET owner = excluded.owner, expires_ms = excluded.expires_ms
             WHERE payers.owner = excluded.owner OR payers.expires_ms < ?4",
            params![coin, owner, now_ms.saturating_add(ttl_ms), now_ms],
        )
        .map_err(db)?;
        let holder: String = tx
            .query_row("SELECT owner FROM payers WHERE coin = ?1", [coin], |r| {
                r.get(0)
            })
            .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(holder == owner)
    }

    fn begin_payment(
        &mut self,
        coin: &str,
        outputs: &[(String, u64)],
        transaction: &PaymentTransaction,
        fee_account: Option<&str>,
        time_ms: i64,
    ) -> Result<i64, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(db)?;
        let open: i64 = tx
            .query_row(
                "SELECT COUNT(*) FROM payments WHERE coin = ?1 AND status = 'sending'",
                [coin],
                |r| r.get(0),
            )
            .map_err(db)?;
        if open > 0 {
            return Err(StoreError::Database(format!(
                "a {coin} payment is still being sent"
            )));
        }
        for (address, amount) in outputs {
            let balance: i64 = tx
                .query_row(
                    "SELECT amount FROM balances WHERE coin = ?1 AND address = ?2",
                    params![coin, address],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db)?
                .unwrap_or(0);
            if u64::try_from(balance).map_or(true, |b| b < *amount) {
                return Err(StoreError::Database(format!(
                    "{address} is owed {balance}, not {amount}"
                )));
            }
        }
        tx.execute(
            "INSERT INTO payments (coin, time_ms, status, txid, tx_fee, tx_hex, fee_account)
             VALUES (?1, ?2, 'sending', ?3, ?4, ?5, ?6)",
            params![
                coin,
                time_ms,
                transaction.txid,
                i64::try_from(transaction.fee).unwrap_or(i64::MAX),
                transaction.hex,
                fee_account
            ],
        )
        .map_err(db)?;
        let id = tx.last_insert_rowid();
        let mut debits = Vec::with_capacity(outputs.len());
        {
            let mut out = tx
                .prepare_cached(
                    "INSERT INTO payment_outputs (payment_id, address, amount) VALUES (?1, ?2, ?3)",
                )
                .map_err(db)?;
            for (address, amount) in outputs {
                let amount = i64::try_from(*amount)
                    .map_err(|_| StoreError::Database(format!("amount {amount} too large")))?;
                out.execute(params![id, address, amount]).map_err(db)?;
                debits.push(NewEntry {
                    address: address.clone(),
                    amount: -amount,
                    kind: LedgerKind::Payment,
                    memo: format!("payment {id}, transaction {}", transaction.txid),
                });
            }
        }
        if let Some(account) = fee_account.filter(|_| transaction.fee > 0) {
            debits.push(NewEntry {
                address: account.to_owned(),
                amount: -i64::try_from(transaction.fee).unwrap_or(i64::MAX),
                kind: LedgerKind::Payment,
                memo: format!(
                    "network fee of payment {id}, transaction {}",
                    transaction.txid
                ),
            });
        }
        append(&tx, coin, &debits, None, Some(id), time_ms)?;
        tx.commit().map_err(db)?;
        Ok(id)
    }

    fn finish_payment(&mut self, id: i64) -> Result<bool, StoreError> {
        let changed = self
            .conn
            .execute(
                "UPDATE payments SET status = 'sent' WHERE id = ?1 AND status = 'sending'",
                [id],
            )
            .map_err(db)?;
        Ok(changed == 1)
    }

    fn confirm_payment(&mut self, id: i64) -> Result<bool, StoreError> {
        let changed = self
            .conn
            .execute(
                "UPDATE payments SET status = 'confirmed' WHERE id = ?1 AND status = 'sent'",
                [id],
            )
            .map_err(db)?;
        Ok(changed == 1)
    }

    fn fail_payment(&mut self, id: i64, reason: &str, time_ms: i64) -> Result<bool, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(db)?;
        let changed = tx
            .execute(
                "UPDATE payments SET status = 'failed', detail = ?2
                 WHERE id = ?1 AND status IN ('sending', 'sent')",
                params![id, reason],
            )
            .map_err(db)?;
        if changed == 0 {
            return Ok(false);
        }
        let (coin, fee, fee_account): (String, Option<i64>, Option<String>) = tx
            .query_row(
                "SELECT coin, tx_fee, fee_account FROM payments WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(db)?;
        let mut returned = {
            let mut stmt = tx
                .prepare(
                    "SELECT address, amount FROM payment_outputs WHERE payment_id = ?1 ORDER BY address",
                )
                .map_err(db)?;
            let rows = stmt
                .query_map([id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                .map_err(db)?;
            rows.map(|row| {
                row.map(|(address, amount)| NewEntry {
                    address,
                    amount,
                    kind: LedgerKind::Payment,
                    memo: format!("payment {id} failed ({reason}): returned"),
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(db)?
        };
        if let (Some(account), Some(fee)) = (fee_account, fee.filter(|f| *f > 0)) {
            returned.push(NewEntry {
                address: account,
                amount: fee,
                kind: LedgerKind::Payment,
                memo: format!("payment {id} failed ({reason}): network fee returned"),
            });
        }
        append(&tx, &coin, &returned, None, Some(id), time_ms)?;
        tx.commit().map_err(db)?;
        Ok(true)
    }

    fn fee_accounts(&mut self, coin: &str) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT DISTINCT address FROM ledger WHERE coin = ?1 AND kind = 'fee' ORDER BY address",
            )
            .map_err(db)?;
        let rows = stmt.query_map([coin], |r| r.get(0)).map_err(db)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db)
    }

    fn scheme_since(&mut self, coin: &str, scheme: &str, now_ms: i64) -> Result<i64, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(db)?;
        let last: Option<(String, i64)> = tx
            .query_row(
                "SELECT scheme, since_ms FROM schemes WHERE coin = ?1 ORDER BY id DESC LIMIT 1",
                [coin],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(db)?;
        let since = match last {
            Some((s, since)) if s == scheme => since,
            _ => {
                tx.execute(
                    "INSERT INTO schemes (coin, scheme, since_ms) VALUES (?1, ?2, ?3)",
                    params![coin, scheme, now_ms],
                )
                .map_err(db)?;
                now_ms
            }
        };
        tx.commit().map_err(db)?;
        Ok(since)
    }

    fn payments(&mut self, coin: &str) -> Result<Vec<Payment>, StoreError> {
        let mut payments = {
            let mut stmt = self
                .conn
                .prepare(
                    "SELECT id, coin, time_ms, status, txid, tx_fee, detail, tx_hex, fee_account FROM payments
                     WHERE coin = ?1 ORDER BY id",
                )
                .map_err(db)?;
            let rows = stmt
                .query_map([coin], |r| {
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
                })
                .map_err(db)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(db)?
        };
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT address, amount FROM payment_outputs WHERE payment_id = ?1 ORDER BY address",
            )
            .map_err(db)?;
        for p in &mut payments {
            let rows = stmt
                .query_map([p.id], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?.max(0) as u64))
                })
                .map_err(db)?;
            p.outputs = rows.collect::<Result<Vec<_>, _>>().map_err(db)?;
        }
        Ok(payments)
    }

    fn unpaid_shares(
        &mut self,
        coin: &str,
        since_ms: i64,
        limit: u64,
    ) -> Result<Vec<PendingShare>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT id, {SHARE_COLUMNS} FROM shares
                 WHERE algorithm = ?1 AND paid = 0 AND time_ms >= ?3 ORDER BY id LIMIT ?2"
            ))
            .map_err(db)?;
        let rows = stmt
            .query_map(
                params![coin, limit.min(i64::MAX as u64) as i64, since_ms],
                |r| {
                    Ok(PendingShare {
                        id: r.get(0)?,
                        share: share_from_row(r, 1)?,
                    })
                },
            )
            .map_err(db)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db)
    }

    fn credit_shares(
        &mut self,
        coin: &str,
        ids: &[i64],
        entries: &[NewEntry],
        time_ms: i64,
    ) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(db)?;
        {
            let mut mark = tx
                .prepare_cached("UPDATE shares SET paid = 1 WHERE id = ?1 AND paid = 0")
                .map_err(db)?;
            for id in ids {
                if mark.execute([id]).map_err(db)? == 0 {
                    // Another process paid it first: pay nothing twice.
                    return Err(StoreError::Database(format!("share {id} is already paid")));
                }
            }
        }
        append(&tx, coin, entries, None, None, time_ms)?;
        tx.commit().map_err(db)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::exercise;

    #[test]
    fn shares_and_blocks_survive_reopening() {
        let dir = std::env::temp_dir().join(format!("otedama-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("shares.db");
        let _ = std::fs::remove_file(&path);
        exercise(&|| Box::new(SqliteStore::open(&path).expect("open")));
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
