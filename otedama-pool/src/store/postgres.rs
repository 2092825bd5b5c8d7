//! PostgreSQL, for pools whose share log outgrows one file: the same tables as SQLite.

use postgres::{Client, NoTls};

use super::{
    BlockRecord, BlockStatus, LedgerEntry, LedgerKind, NewEntry, Payment, PaymentStatus,
    PaymentTransaction, PendingShare, ShareRecord, Store, StoreError,
};

/// Schema migrations, applied in order; the count applied is kept in `otedama_schema`.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE shares (
        id BIGSERIAL PRIMARY KEY,
        time_ms BIGINT NOT NULL,
        address TEXT NOT NULL,
        worker TEXT NOT NULL,
        difficulty DOUBLE PRECISION NOT NULL,
        job_id TEXT NOT NULL,
        height BIGINT NOT NULL,
        pow_hash BYTEA NOT NULL,
        is_block BOOLEAN NOT NULL
    );
    CREATE INDEX shares_time ON shares (time_ms);
    CREATE INDEX shares_address ON shares (address, time_ms);
    CREATE TABLE blocks (
        id BIGSERIAL PRIMARY KEY,
        time_ms BIGINT NOT NULL,
        height BIGINT NOT NULL,
        hash TEXT NOT NULL UNIQUE,
        address TEXT NOT NULL,
        worker TEXT NOT NULL,
        reward BIGINT NOT NULL,
        status TEXT NOT NULL,
        detail TEXT
    );",
    "ALTER TABLE shares ADD COLUMN algorithm TEXT NOT NULL DEFAULT '';
    ALTER TABLE blocks ADD COLUMN algorithm TEXT NOT NULL DEFAULT '';",
    "ALTER TABLE shares ADD COLUMN network_difficulty DOUBLE PRECISION NOT NULL DEFAULT 0;
    ALTER TABLE shares ADD COLUMN block_value BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE shares ADD COLUMN tx_fees BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE shares ADD COLUMN paid BOOLEAN NOT NULL DEFAULT FALSE;
    CREATE INDEX shares_coin_time ON shares (algorithm, time_ms);
    CREATE INDEX shares_unpaid ON shares (algorithm, id) WHERE NOT paid;
    ALTER TABLE blocks ADD COLUMN payee TEXT;
    ALTER TABLE blocks ADD COLUMN credited SMALLINT NOT NULL DEFAULT 0;
    CREATE TABLE ledger (
        id BIGSERIAL PRIMARY KEY,
        time_ms BIGINT NOT NULL,
        coin TEXT NOT NULL,
        address TEXT NOT NULL,
        amount BIGINT NOT NULL,
        kind TEXT NOT NULL,
        block_hash TEXT,
        payment_id BIGINT,
        memo TEXT NOT NULL
    );
    CREATE INDEX ledger_address ON ledger (address, id);
    CREATE INDEX ledger_block ON ledger (block_hash);
    CREATE FUNCTION otedama_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN RAISE EXCEPTION 'the ledger is append-only'; END $$;
    CREATE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON ledger
        FOR EACH ROW EXECUTE FUNCTION otedama_ledger_append_only();
    CREATE TABLE balances (
        coin TEXT NOT NULL,
        address TEXT NOT NULL,
        amount BIGINT NOT NULL,
        PRIMARY KEY (coin, address)
    );
    CREATE TABLE payments (
        id BIGSERIAL PRIMARY KEY,
        coin TEXT NOT NULL,
        time_ms BIGINT NOT NULL,
        status TEXT NOT NULL,
        txid TEXT,
        tx_fee BIGINT,
        tx_hex TEXT,
        fee_account TEXT,
        detail TEXT
    );
    CREATE TABLE payment_outputs (
        payment_id BIGINT NOT NULL REFERENCES payments (id),
        address TEXT NOT NULL,
        amount BIGINT NOT NULL,
        PRIMARY KEY (payment_id, address)
    );
    CREATE TABLE payers (
        coin TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        expires_ms BIGINT NOT NULL
    );
    CREATE TABLE schemes (
        id BIGSERIAL PRIMARY KEY,
        coin TEXT NOT NULL,
        scheme TEXT NOT NULL,
        since_ms BIGINT NOT NULL
    );",
];

/// The share columns [`share_from_row`] reads, in its order.
const SHARE_COLUMNS: &str = "time_ms, address, worker, difficulty, job_id, height, pow_hash, is_block, algorithm, network_difficulty, block_value, tx_fees";

fn share_from_row(r: &postgres::Row, at: usize) -> ShareRecord {
    let hash: Vec<u8> = r.get(at + 6);
    let mut pow_hash = [0u8; 32];
    if hash.len() == 32 {
        pow_hash.copy_from_slice(&hash);
    }
    ShareRecord {
        time_ms: r.get(at),
        address: r.get(at + 1),
        worker: r.get(at + 2),
        difficulty: r.get(at + 3),
        job_id: r.get(at + 4),
        height: u64::try_from(r.get::<_, i64>(at + 5)).unwrap_or(0),
        pow_hash,
        is_block: r.get(at + 7),
        algorithm: r.get(at + 8),
        network_difficulty: r.get(at + 9),
        block_value: u64::try_from(r.get::<_, i64>(at + 10)).unwrap_or(0),
        tx_fees: u64::try_from(r.get::<_, i64>(at + 11)).unwrap_or(0),
    }
}

/// Sets a block's status inside the caller's transaction, the row locked so that a second
/// pool on the database waits; returns its coin and how it stands credited (0 never, 1
/// credited, 2 reversed).
fn set_status(
    tx: &mut postgres::Transaction<'_>,
    hash: &str,
    status: BlockStatus,
    detail: &str,
) -> Result<(String, i16), StoreError> {
    let row = tx
        .query_opt(
            "SELECT algorithm, credited FROM blocks WHERE hash = $1 FOR UPDATE",
            &[&hash],
        )
        .map_err(db)?
        .ok_or_else(|| StoreError::Database(format!("no block {hash}")))?;
    tx.execute(
        "UPDATE blocks SET status = $2, detail = $3 WHERE hash = $1",
        &[&hash, &status.as_str(), &detail],
    )
    .map_err(db)?;
    Ok((row.get(0), row.get(1)))
}

/// Appends ledger lines and moves the balances with them, inside the caller's transaction.
fn append(
    tx: &mut postgres::Transaction<'_>,
    coin: &str,
    entries: &[NewEntry],
    block_hash: Option<&str>,
    payment_id: Option<i64>,
    time_ms: i64,
) -> Result<(), StoreError> {
    if entries.is_empty() {
        return Ok(());
    }
    let line = tx
        .prepare(
            "INSERT INTO ledger (time_ms, coin, address, amount, kind, block_hash, payment_id, memo)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .map_err(db)?;
    let balance = tx
        .prepare(
            "INSERT INTO balances (coin, address, amount) VALUES ($1, $2, $3)
             ON CONFLICT (coin, address) DO UPDATE SET amount = balances.amount + EXCLUDED.amount",
        )
        .map_err(db)?;
    for e in entries {
        tx.execute(
            &line,
            &[
                &time_ms,
                &coin,
                &e.address,
                &e.amount,
                &e.kind.as_str(),
                &block_hash,
                &payment_id,
                &e.memo,
            ],
        )
        .map_err(db)?;
        tx.execute(&balance, &[&coin, &e.address, &e.amount])
            .map_err(db)?;
    }
    Ok(())
}

/// Any number, so long as every otedama uses the same one: it serialises migrations.
const MIGRATION_LOCK: i64 = 0x006f_7465_6461_6d61;

/// The first key of the advisory lock that serialises the start of payments (the second is
/// the coin's hash).
const PAYMENT_LOCK: i32 = 0x6f74_6470;

/// The first key of the advisory lock that serialises scheme changes.
const SCHEME_LOCK: i32 = 0x6f74_6473;

fn db(e: postgres::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

/// The PostgreSQL store.
pub struct PostgresStore {
    client: Client,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`) and migrates.
    ///
    /// The client blocks on its own small runtime: call this from a plain thread, not from
    /// async code.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let client = Client::connect(url, NoTls).map_err(db)?;
        let mut store = PostgresStore { client };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let mut tx = self.client.transaction().map_err(db)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .map_err(db)?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS otedama_schema (version INTEGER NOT NULL)")
            .map_err(db)?;
        let applied: i32 = match tx
            .query_opt("SELECT version FROM otedama_schema", &[])
            .map_err(db)?
        {
            Some(row) => row.get(0),
            None => {
                tx.execute("INSERT INTO otedama_schema (version) VALUES (0)", &[])
                    .map_err(db)?;
                0
            }
        };
        let applied = usize::try_from(applied).unwrap_or(0);
        if applied > MIGRATIONS.len() {
            return Err(StoreError::Database(format!(
                "database schema version {applied} is newer than this otedama ({})",
                MIGRATIONS.len()
            )));
        }
        for sql in MIGRATIONS.iter().skip(applied) {
            tx.batch_execute(sql).map_err(db)?;
        }
        let version = i32::try_from(MIGRATIONS.len()).unwrap_or(i32::MAX);
        tx.execute("UPDATE otedama_schema SET version = $1", &[&version])
            .map_err(db)?;
        tx.commit().map_err(db)
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl PostgresStore {
    fn select_blocks(
        &mut self,
        filter: &str,
        args: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Vec<BlockRecord>, StoreError> {
        let rows = self
            .client
            .query(
                &format!(
                    "SELECT time_ms, height, hash, address, worker, reward, status, detail, algorithm, payee
                     FROM blocks WHERE {filter} ORDER BY id"
                ),
                args,
            )
            .map_err(db)?;
        Ok(rows
            .iter()
            .map(|r| {
                let status: String = r.get(6);
                BlockRecord {
                    time_ms: r.get(0),
                    height: u64::try_from(r.get::<_, i64>(1)).unwrap_or(0),
                    hash: r.get(2),
                    address: r.get(3),
                    worker: r.get(4),
                    reward: u64::try_from(r.get::<_, i64>(5)).unwrap_or(0),
                    status: BlockStatus::parse(&status).unwrap_or(BlockStatus::Submitted),
                    detail: r.get(7),
                    algorithm: r.get(8),
                    payee: r.get(9),
                }
            })
            .collect())
    }
}

impl Store for PostgresStore {
    fn commit(&mut self, shares: &[ShareRecord], blocks: &[BlockRecord]) -> Result<(), StoreError> {
        let mut tx = self.client.transaction().map_err(db)?;
        if !shares.is_empty() {
            let insert = tx
                .prepare(
                    "INSERT INTO shares (time_ms, address, worker, difficulty, job_id, height, pow_hash, is_block, algorithm, network_difficulty, block_value, tx_fees)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                )
                .map_err(db)?;
            for s in shares {
                tx.execute(
                    &insert,
                    &[
                        &s.time_ms,
                        &s.address,
                        &s.worker,
                        &s.difficulty,
                        &s.job_id,
                        &to_i64(s.height),
                        &&s.pow_hash[..],
                        &s.is_block,
                        &s.algorithm,
                        &s.network_difficulty,
                        &to_i64(s.block_value),
                        &to_i64(s.tx_fees),
                    ],
                )
                .map_err(db)?;
            }
        }
        if !blocks.is_empty() {
            let insert = tx
                .prepare(
                    "INSERT INTO blocks (time_ms, height, hash, address, worker, reward, status, detail, algorithm, payee)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                     ON CONFLICT (hash) DO NOTHING",
                )
                .map_err(db)?;
            for b in blocks {
                tx.execute(
                    &insert,
                    &[
                        &b.time_ms,
                        &to_i64(b.height),
                        &b.hash,
                        &b.address,
                        &b.worker,
                        &to_i64(b.reward),
                        &b.status.as_str(),
                        &b.detail,
                        &b.algorithm,
                        &b.payee,
                    ],
                )
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
        self.client
            .execute(
                "UPDATE blocks SET status = $2, detail = COALESCE($3, detail) WHERE hash = $1",
                &[&hash, &status.as_str(), &detail],
            )
            .map_err(db)?;
        Ok(())
    }

    fn share_count(&mut self) -> Result<u64, StoreError> {
        let row = self
            .client
            .query_one("SELECT COUNT(*) FROM shares", &[])
            .map_err(db)?;
        let n: i64 = row.get(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn blocks(&mut self) -> Result<Vec<BlockRecord>, StoreError> {
        self.select_blocks("TRUE", &[])
    }

    fn watched_blocks(
        &mut self,
        coin: &str,
        recent_ms: i64,
    ) -> Result<Vec<BlockRecord>, StoreError> {
        self.select_blocks(
            "algorithm = $1 AND (status IN ('submitted', 'accepted') OR time_ms > $2)",
            &[&coin, &recent_ms],
        )
    }

    fn shares(&mut self, limit: u64) -> Result<Vec<ShareRecord>, StoreError> {
        let rows = self
            .client
            .query(
                &format!("SELECT {SHARE_COLUMNS} FROM shares ORDER BY id LIMIT $1"),
                &[&to_i64(limit)],
            )
            .map_err(db)?;
        Ok(rows.iter().map(|r| share_from_row(r, 0)).collect())
    }

    fn shares_between(
        &mut self,
        coin: &str,
        after_ms: i64,
        until_ms: i64,
    ) -> Result<Vec<ShareRecord>, StoreError> {
        let rows = self
            .client
            .query(
                &format!(
                    "SELECT {SHARE_COLUMNS} FROM shares
                     WHERE algorithm = $1 AND time_ms > $2 AND time_ms <= $3 ORDER BY id"
                ),
                &[&coin, &after_ms, &until_ms],
            )
            .map_err(db)?;
        Ok(rows.iter().map(|r| share_from_row(r, 0)).collect())
    }

    fn last_shares(
        &mut self,
        coin: &str,
        after_ms: i64,
        until_ms: i64,
        limit: u64,
    ) -> Result<Vec<ShareRecord>, StoreError> {
        let rows = self
            .client
            .query(
                &format!(
                    "SELECT {SHARE_COLUMNS} FROM shares
                     WHERE algorithm = $1 AND time_ms > $2 AND time_ms <= $3
                     ORDER BY id DESC LIMIT $4"
                ),
                &[&coin, &after_ms, &until_ms, &to_i64(limit)],
            )
            .map_err(db)?;
        let mut shares: Vec<ShareRecord> = rows.iter().map(|r| share_from_row(r, 0)).collect();
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
        let mut tx = self.client.transaction().map_err(db)?;
        let (coin, credited) = set_status(&mut tx, hash, BlockStatus::Confirmed, detail)?;
        // 0: never credited; 2: credited, then reversed when it left the main chain.
        let fresh = credited != 1;
        if fresh {
            append(&mut tx, &coin, entries, Some(hash), None, time_ms)?;
            tx.execute("UPDATE blocks SET credited = 1 WHERE hash = $1", &[&hash])
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
        let mut tx = self.client.transaction().map_err(db)?;
        let (coin, credited) = set_status(&mut tx, hash, BlockStatus::Orphaned, detail)?;
        let mut reversal = Vec::new();
        if credited == 1 {
            let rows = tx
                .query(
                    "SELECT address, amount, kind FROM ledger
                     WHERE block_hash = $1 AND kind != 'reversal'
                           AND id > COALESCE((SELECT MAX(id) FROM ledger
                                              WHERE block_hash = $1 AND kind = 'reversal'), 0)
                         ORDER BY id",
                    &[&hash],
                )
                .map_err(db)?;
            for r in &rows {
                let (address, amount, kind): (String, i64, String) = (r.get(0), r.get(1), r.get(2));
                reversal.push(NewEntry {
                    address,
                    amount: -amount,
                    kind: LedgerKind::Reversal,
                    memo: format!("block {hash} orphaned: undoes its {kind} line"),
                });
            }
            append(&mut tx, &coin, &reversal, Some(hash), None, time_ms)?;
            tx.execute("UPDATE blocks SET credited = 2 WHERE hash = $1", &[&hash])
                .map_err(db)?;
        }
        tx.commit().map_err(db)?;
        Ok(reversal)
    }

    fn balances(&mut self, coin: &str) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = self
            .client
            .query(
                "SELECT address, amount FROM balances WHERE coin = $1 AND amount != 0 ORDER BY address",
                &[&coin],
            )
            .map_err(db)?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    fn ledger_totals(&mut self, coin: &str) -> Result<Vec<(LedgerKind, i64)>, StoreError> {
        let rows = self
            .client
            .query(
                "SELECT kind, SUM(amount)::BIGINT FROM ledger WHERE coin = $1 GROUP BY kind ORDER BY kind",
                &[&coin],
            )
            .map_err(db)?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let kind: String = r.get(0);
                LedgerKind::parse(&kind).map(|k| (k, r.get::<_, i64>(1)))
            })
            .collect())
    }

    fn ledger(&mut self, address: &str) -> Result<Vec<LedgerEntry>, StoreError> {
        let rows = self
            .client
            .query(
                "SELECT id, time_ms, coin, address, amount, kind, block_hash, payment_id, memo
                 FROM ledger WHERE address = $1 ORDER BY id",
                &[&address],
            )
            .map_err(db)?;
        Ok(rows
            .iter()
            .map(|r| {
                let kind: String = r.get(5);
                LedgerEntry {
                    id: r.get(0),
                    time_ms: r.get(1),
                    coin: r.get(2),
                    address: r.get(3),
                    amount: r.get(4),
                    kind: LedgerKind::parse(&kind).unwrap_or(LedgerKind::Credit),
                    block_hash: r.get(6),
                    payment_id: r.get(7),
                    memo: r.get(8),
                }
            })
            .collect())
    }

    fn claim_payer(
        &mut self,
        coin: &str,
        owner: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        // No row comes back when another owner holds an unexpired claim.
        let row = self
            .client
            .query_opt(
                "INSERT INTO payers (coin, owner, expires_ms) VALUES ($1, $2, $3)
                 ON CONFLICT (coin) DO UPDATE SET owner = EXCLUDED.owner, expires_ms = EXCLUDED.expires_ms
                 WHERE payers.owner = EXCLUDED.owner OR payers.expires_ms < $4
                 RETURNING owner",
                &[&coin, &owner, &now_ms.saturating_add(ttl_ms), &now_ms],
            )
            .map_err(db)?;
        Ok(row.is_some_and(|r| r.get::<_, String>(0) == owner))
    }

    fn begin_payment(
        &mut self,
        coin: &str,
        outputs: &[(String, u64)],
        transaction: &PaymentTransaction,
        fee_account: Option<&str>,
        time_ms: i64,
    ) -> Result<i64, StoreError> {
        let mut tx = self.client.transaction().map_err(db)?;
        // One payment of a coin begins at a time, across every pool on this database.
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            &[&PAYMENT_LOCK, &coin],
        )
        .map_err(db)?;
        let open: i64 = tx
            .query_one(
                "SELECT COUNT(*) FROM payments WHERE coin = $1 AND status = 'sending'",
                &[&coin],
            )
            .map_err(db)?
            .get(0);
        if open > 0 {
            return Err(StoreError::Database(format!(
                "a {coin} payment is still being sent"
            )));
        }
        for (address, amount) in outputs {
            let balance: i64 = tx
                .query_opt(
                    "SELECT amount FROM balances WHERE coin = $1 AND address = $2 FOR UPDATE",
                    &[&coin, address],
                )
                .map_err(db)?
                .map_or(0, |r| r.get(0));
            if u64::try_from(balance).map_or(true, |b| b < *amount) {
                return Err(StoreError::Database(format!(
                    "{address} is owed {balance}, not {amount}"
                )));
            }
        }
        let id: i64 = tx
            .query_one(
                "INSERT INTO payments (coin, time_ms, status, txid, tx_fee, tx_hex, fee_account)
                 VALUES ($1, $2, 'sending', $3, $4, $5, $6) RETURNING id",
                &[
                    &coin,
                    &time_ms,
                    &transaction.txid,
                    &to_i64(transaction.fee),
                    &transaction.hex,
                    &fee_account,
                ],
            )
            .map_err(db)?
            .get(0);
        let out = tx
            .prepare(
                "INSERT INTO payment_outputs (payment_id, address, amount) VALUES ($1, $2, $3)",
            )
            .map_err(db)?;
        let mut debits = Vec::with_capacity(outputs.len());
        for (address, amount) in outputs {
            let amount = i64::try_from(*amount)
                .map_err(|_| StoreError::Database(format!("amount {amount} too large")))?;
            tx.execute(&out, &[&id, address, &amount]).map_err(db)?;
            debits.push(NewEntry {
                address: address.clone(),
                amount: -amount,
                kind: LedgerKind::Payment,
                memo: format!("payment {id}, transaction {}", transaction.txid),
            });
        }
        if let Some(account) = fee_account.filter(|_| transaction.fee > 0) {
            debits.push(NewEntry {
                address: account.to_owned(),
                amount: -to_i64(transaction.fee),
                kind: LedgerKind::Payment,
                memo: format!(
                    "network fee of payment {id}, transaction {}",
                    transaction.txid
                ),
            });
        }
        append(&mut tx, coin, &debits, None, Some(id), time_ms)?;
        tx.commit().map_err(db)?;
        Ok(id)
    }

    fn finish_payment(&mut self, id: i64) -> Result<bool, StoreError> {
        let changed = self
            .client
            .execute(
                "UPDATE payments SET status = 'sent' WHERE id = $1 AND status = 'sending'",
                &[&id],
            )
            .map_err(db)?;
        Ok(changed == 1)
    }

    fn confirm_payment(&mut self, id: i64) -> Result<bool, StoreError> {
        let changed = self
            .client
            .execute(
                "UPDATE payments SET status = 'confirmed' WHERE id = $1 AND status = 'sent'",
                &[&id],
            )
            .map_err(db)?;
        Ok(changed == 1)
    }

    fn fail_payment(&mut self, id: i64, reason: &str, time_ms: i64) -> Result<bool, StoreError> {
        let mut tx = self.client.transaction().map_err(db)?;
        let row = tx
            .query_opt(
                "UPDATE payments SET status = 'failed', detail = $2
                 WHERE id = $1 AND status IN ('sending', 'sent') RETURNING coin, tx_fee, fee_account",
                &[&id, &reason],
            )
            .map_err(db)?;
        let Some(row) = row else {
            return Ok(false);
        };
        let (coin, fee, fee_account): (String, Option<i64>, Option<String>) =
            (row.get(0), row.get(1), row.get(2));
        let mut returned: Vec<NewEntry> = tx
            .query(
                "SELECT address, amount FROM payment_outputs WHERE payment_id = $1 ORDER BY address",
                &[&id],
            )
            .map_err(db)?
            .iter()
            .map(|r| NewEntry {
                address: r.get(0),
                amount: r.get(1),
                kind: LedgerKind::Payment,
                memo: format!("payment {id} failed ({reason}): returned"),
            })
            .collect();
        if let (Some(account), Some(fee)) = (fee_account, fee.filter(|f| *f > 0)) {
            returned.push(NewEntry {
                address: account,
                amount: fee,
                kind: LedgerKind::Payment,
                memo: format!("payment {id} failed ({reason}): network fee returned"),
            });
        }
        append(&mut tx, &coin, &returned, None, Some(id), time_ms)?;
        tx.commit().map_err(db)?;
        Ok(true)
    }

    fn fee_accounts(&mut self, coin: &str) -> Result<Vec<String>, StoreError> {
        let rows = self
            .client
            .query(
                "SELECT DISTINCT address FROM ledger WHERE coin = $1 AND kind = 'fee' ORDER BY address",
                &[&coin],
            )
            .map_err(db)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn scheme_since(&mut self, coin: &str, scheme: &str, now_ms: i64) -> Result<i64, StoreError> {
        let mut tx = self.client.transaction().map_err(db)?;
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            &[&SCHEME_LOCK, &coin],
        )
        .map_err(db)?;
        let last = tx
            .query_opt(
                "SELECT scheme, since_ms FROM schemes WHERE coin = $1 ORDER BY id DESC LIMIT 1",
                &[&coin],
            )
            .map_err(db)?;
        let since = match last {
            Some(r) if r.get::<_, String>(0) == scheme => r.get(1),
            _ => {
                tx.execute(
                    "INSERT INTO schemes (coin, scheme, since_ms) VALUES ($1, $2, $3)",
                    &[&coin, &scheme, &now_ms],
                )
                .map_err(db)?;
                now_ms
            }
        };
        tx.commit().map_err(db)?;
        Ok(since)
    }

    fn payments(&mut self, coin: &str) -> Result<Vec<Payment>, StoreError> {
        let rows = self
            .client
            .query(
                "SELECT id, coin, time_ms, status, txid, tx_fee, detail, tx_hex, fee_account FROM payments
                 WHERE coin = $1 ORDER BY id",
                &[&coin],
            )
            .map_err(db)?;
        let mut payments: Vec<Payment> = rows
            .iter()
            .map(|r| {
                let status: String = r.get(3);
                Payment {
                    id: r.get(0),
                    coin: r.get(1),
                    time_ms: r.get(2),
                    status: PaymentStatus::parse(&status).unwrap_or(PaymentStatus::Sending),
                    txid: r.get(4),
                    tx_fee: r
                        .get::<_, Option<i64>>(5)
                        .map(|f| u64::try_from(f).unwrap_or(0)),
                    detail: r.get(6),
                    tx_hex: r.get(7),
                    fee_account: r.get(8),
                    outputs: Vec::new(),
                }
            })
            .collect();
        let stmt = self
            .client
            .prepare("SELECT address, amount FROM payment_outputs WHERE payment_id = $1 ORDER BY address")
            .map_err(db)?;
        for p in &mut payments {
            p.outputs = self
                .client
                .query(&stmt, &[&p.id])
                .map_err(db)?
                .iter()
                .map(|r| (r.get(0), u64::try_from(r.get::<_, i64>(1)).unwrap_or(0)))
                .collect();
        }
        Ok(payments)
    }

    fn unpaid_shares(
        &mut self,
        coin: &str,
        since_ms: i64,
        limit: u64,
    ) -> Result<Vec<PendingShare>, StoreError> {
        let rows = self
            .client
            .query(
                &format!(
                    "SELECT id, {SHARE_COLUMNS} FROM shares
                     WHERE algorithm = $1 AND NOT paid AND time_ms >= $3 ORDER BY id LIMIT $2"
                ),
                &[&coin, &to_i64(limit), &since_ms],
            )
            .map_err(db)?;
        Ok(rows
            .iter()
            .map(|r| PendingShare {
                id: r.get(0),
                share: share_from_row(r, 1),
            })
            .collect())
    }

    fn credit_shares(
        &mut self,
        coin: &str,
        ids: &[i64],
        entries: &[NewEntry],
        time_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.client.transaction().map_err(db)?;
        let marked = tx
            .execute(
                "UPDATE shares SET paid = TRUE WHERE id = ANY($1) AND NOT paid",
                &[&ids],
            )
            .map_err(db)?;
        if marked != ids.len() as u64 {
            // Another pool paid some of them first: pay nothing twice (the rollback undoes
            // the marks).
            return Err(StoreError::Database(format!(
                "{} of {} shares were already paid",
                ids.len() as u64 - marked,
                ids.len()
            )));
        }
        append(&mut tx, coin, entries, None, None, time_ms)?;
        tx.commit().map_err(db)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres_support::{available, Postgres};
    use crate::store::tests::exercise;

    #[test]
    fn shares_and_blocks_survive_reconnecting() {
        if !available() {
            return;
        }
        let server = Postgres::start();
        let url = server.database("store_test");
        exercise(&|| Box::new(PostgresStore::open(&url).expect("connect")));
        let mut store = PostgresStore::open(&server.database("ledger_test")).expect("connect");
        crate::store::tests::exercise_accounting(&mut store);
        let err = store
            .client
            .execute("UPDATE ledger SET amount = amount + 1", &[])
            .expect_err("append-only");
        assert!(format!("{err:?}").contains("append-only"), "{err:?}");
        assert!(store.client.execute("DELETE FROM ledger", &[]).is_err());
        // Two pools migrating one database at once agree on the schema.
        let url2 = server.database("store_race");
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let url = url2.clone();
                std::thread::spawn(move || PostgresStore::open(&url).map(|_| ()))
            })
            .collect();
        for h in handles {
            h.join().expect("thread").expect("migrated");
        }
    }
}
