//! PostgreSQL, for pools whose share log outgrows one file: the same tables as SQLite.

use postgres::types::ToSql;
use postgres::{Client, NoTls};

use super::{
    run_transaction, AuditEntry, AuditStore, BanStore, BlockCredit, BlockRecord, BlockStatus,
    LedgerEntry, LedgerKind, LedgerStore, NewEntry, Payment, PaymentStatus, PaymentStore,
    PaymentTransaction, PendingShare, Rows, Session, ShareRecord, ShareStore, Store, StoreError,
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
    "CREATE TABLE bans (
        ip TEXT PRIMARY KEY,
        until_ms BIGINT NOT NULL,
        reason TEXT NOT NULL
    );",
    "CREATE TABLE audit (
        id BIGSERIAL PRIMARY KEY,
        time_ms BIGINT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE FUNCTION otedama_audit_append_only() RETURNS trigger AS $$
        BEGIN RAISE EXCEPTION 'the audit log is append-only'; END;
    $$ LANGUAGE plpgsql;
    CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit
        FOR EACH ROW EXECUTE FUNCTION otedama_audit_append_only();",
    "ALTER TABLE shares ADD COLUMN direct BOOLEAN NOT NULL DEFAULT FALSE;",
];

/// The share columns [`share_from_row`] reads, in its order.
const SHARE_COLUMNS: &str = "time_ms, address, worker, difficulty, job_id, height, pow_hash, is_block, algorithm, network_difficulty, block_value, tx_fees, direct";

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
        direct: r.get(at + 12),
    }
}

/// Any number, so long as every otedama uses the same one: it serialises migrations.
const MIGRATION_LOCK: i64 = 0x006f_7465_6461_6d61;

/// The first key of the advisory lock that serialises the start of payments (the second is
/// the coin's hash).
const PAYMENT_LOCK: i32 = 0x6f74_6470;

/// The first key of the advisory lock that serialises scheme changes.
const SCHEME_LOCK: i32 = 0x6f74_6473;

fn db(e: postgres::Error) -> StoreError {
    StoreError::database(e)
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
            return Err(StoreError::NewerSchema {
                found: applied,
                known: MIGRATIONS.len(),
            });
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

/// A query's parameters.
type Args<'a> = &'a [&'a (dyn ToSql + Sync)];

impl PostgresStore {
    /// Runs `sql` and reads each row with `read`.
    fn query<T>(
        &mut self,
        sql: &str,
        args: Args<'_>,
        read: impl FnMut(&postgres::Row) -> T,
    ) -> Result<Vec<T>, StoreError> {
        Ok(self
            .client
            .query(sql, args)
            .map_err(db)?
            .iter()
            .map(read)
            .collect())
    }

    /// Runs `sql`; returns how many rows it changed.
    fn execute(&mut self, sql: &str, args: Args<'_>) -> Result<u64, StoreError> {
        self.client.execute(sql, args).map_err(db)
    }

    fn select_blocks(
        &mut self,
        filter: &str,
        args: Args<'_>,
    ) -> Result<Vec<BlockRecord>, StoreError> {
        self.query(
            &format!(
                "SELECT time_ms, height, hash, address, worker, reward, status, detail, algorithm, payee
                 FROM blocks WHERE {filter} ORDER BY id"
            ),
            args,
            |r| {
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
            },
        )
    }

    fn select_shares(
        &mut self,
        filter: &str,
        args: Args<'_>,
    ) -> Result<Vec<ShareRecord>, StoreError> {
        self.query(
            &format!("SELECT {SHARE_COLUMNS} FROM shares {filter}"),
            args,
            |r| share_from_row(r, 0),
        )
    }

    fn select_ledger(
        &mut self,
        filter: &str,
        args: Args<'_>,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        self.query(
            &format!(
                "SELECT id, time_ms, coin, address, amount, kind, block_hash, payment_id, memo
                 FROM ledger WHERE {filter} ORDER BY id"
            ),
            args,
            |r| {
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
            },
        )
    }

    /// The payments `filter` selects, oldest first; `lock` adds `FOR UPDATE`.
    fn select_payments(
        &mut self,
        filter: &str,
        lock: bool,
        args: Args<'_>,
    ) -> Result<Vec<Payment>, StoreError> {
        let mut payments = self.query(
            &format!(
                "SELECT id, coin, time_ms, status, txid, tx_fee, detail, tx_hex, fee_account
                 FROM payments WHERE {filter} ORDER BY id{}",
                if lock { " FOR UPDATE" } else { "" }
            ),
            args,
            |r| {
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
            },
        )?;
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

    /// Takes the transaction-scoped advisory lock (`kind`, `coin`).
    fn lock(&mut self, kind: i32, coin: &str) -> Result<(), StoreError> {
        self.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            &[&kind, &coin],
        )?;
        Ok(())
    }
}

impl ShareStore for PostgresStore {
    fn add_shares(&mut self, shares: &[ShareRecord]) -> Result<(), StoreError> {
        if shares.is_empty() {
            return Ok(());
        }
        let insert = self
            .client
            .prepare(
                "INSERT INTO shares (time_ms, address, worker, difficulty, job_id, height, pow_hash, is_block, algorithm, network_difficulty, block_value, tx_fees, direct)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            )
            .map_err(db)?;
        for s in shares {
            self.client
                .execute(
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
                        &s.direct,
                    ],
                )
                .map_err(db)?;
        }
        Ok(())
    }

    fn add_blocks(&mut self, blocks: &[BlockRecord]) -> Result<(), StoreError> {
        for b in blocks {
            self.execute(
                "INSERT INTO blocks (time_ms, height, hash, address, worker, reward, status, detail, algorithm, payee)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT (hash) DO NOTHING",
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
            "UPDATE blocks SET status = $2, detail = COALESCE($3, detail) WHERE hash = $1",
            &[&hash, &status.as_str(), &detail],
        )?;
        Ok(())
    }

    fn block_credit(&mut self, hash: &str) -> Result<Option<(String, BlockCredit)>, StoreError> {
        let found = self.query(
            "SELECT algorithm, credited FROM blocks WHERE hash = $1 FOR UPDATE",
            &[&hash],
            |r| {
                (
                    r.get(0),
                    BlockCredit::from_code(i64::from(r.get::<_, i16>(1))),
                )
            },
        )?;
        Ok(found.into_iter().next())
    }

    fn set_block_credit(&mut self, hash: &str, credit: BlockCredit) -> Result<(), StoreError> {
        self.execute(
            "UPDATE blocks SET credited = $2 WHERE hash = $1",
            &[&hash, &credit.as_code()],
        )?;
        Ok(())
    }

    fn share_count(&mut self) -> Result<u64, StoreError> {
        let n = self.query("SELECT COUNT(*) FROM shares", &[], |r| r.get::<_, i64>(0))?;
        Ok(u64::try_from(n.into_iter().sum::<i64>()).unwrap_or(0))
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
        self.select_shares("ORDER BY id LIMIT $1", &[&to_i64(limit)])
    }

    fn shares_between(
        &mut self,
        coin: &str,
        after_ms: i64,
        until_ms: i64,
    ) -> Result<Vec<ShareRecord>, StoreError> {
        self.select_shares(
            "WHERE algorithm = $1 AND NOT direct AND time_ms > $2 AND time_ms <= $3 ORDER BY id",
            &[&coin, &after_ms, &until_ms],
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
            "WHERE algorithm = $1 AND NOT direct AND time_ms > $2 AND time_ms <= $3 ORDER BY id DESC LIMIT $4",
            &[&coin, &after_ms, &until_ms, &to_i64(limit)],
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
                 WHERE algorithm = $1 AND NOT paid AND NOT direct AND time_ms >= $3 ORDER BY id LIMIT $2"
            ),
            &[&coin, &to_i64(limit), &since_ms],
            |r| PendingShare {
                id: r.get(0),
                share: share_from_row(r, 1),
            },
        )
    }

    fn mark_shares_paid(&mut self, ids: &[i64]) -> Result<u64, StoreError> {
        self.execute(
            "UPDATE shares SET paid = TRUE WHERE id = ANY($1) AND NOT paid",
            &[&ids],
        )
    }
}

impl LedgerStore for PostgresStore {
    fn append(
        &mut self,
        coin: &str,
        entries: &[NewEntry],
        block_hash: Option<&str>,
        payment_id: Option<i64>,
        time_ms: i64,
    ) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let line = self
            .client
            .prepare(
                "INSERT INTO ledger (time_ms, coin, address, amount, kind, block_hash, payment_id, memo)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .map_err(db)?;
        let balance = self
            .client
            .prepare(
                "INSERT INTO balances (coin, address, amount) VALUES ($1, $2, $3)
                 ON CONFLICT (coin, address) DO UPDATE SET amount = balances.amount + EXCLUDED.amount",
            )
            .map_err(db)?;
        for e in entries {
            let kind = e.kind.as_str();
            self.client
                .execute(
                    &line,
                    &[
                        &time_ms,
                        &coin,
                        &e.address,
                        &e.amount,
                        &kind,
                        &block_hash,
                        &payment_id,
                        &e.memo,
                    ],
                )
                .map_err(db)?;
            self.client
                .execute(&balance, &[&coin, &e.address, &e.amount])
                .map_err(db)?;
        }
        Ok(())
    }

    fn block_lines(&mut self, hash: &str) -> Result<Vec<LedgerEntry>, StoreError> {
        self.select_ledger("block_hash = $1", &[&hash])
    }

    fn ledger(&mut self, address: &str) -> Result<Vec<LedgerEntry>, StoreError> {
        self.select_ledger("address = $1", &[&address])
    }

    fn balance(&mut self, coin: &str, address: &str) -> Result<i64, StoreError> {
        let found = self.query(
            "SELECT amount FROM balances WHERE coin = $1 AND address = $2 FOR UPDATE",
            &[&coin, &address],
            |r| r.get::<_, i64>(0),
        )?;
        Ok(found.into_iter().next().unwrap_or(0))
    }

    fn balances(&mut self, coin: &str) -> Result<Vec<(String, i64)>, StoreError> {
        self.query(
            "SELECT address, amount FROM balances WHERE coin = $1 AND amount != 0 ORDER BY address",
            &[&coin],
            |r| (r.get(0), r.get(1)),
        )
    }

    fn ledger_totals(&mut self, coin: &str) -> Result<Vec<(LedgerKind, i64)>, StoreError> {
        let sums = self.query(
            "SELECT kind, SUM(amount)::BIGINT FROM ledger WHERE coin = $1 GROUP BY kind ORDER BY kind",
            &[&coin],
            |r| (r.get::<_, String>(0), r.get::<_, i64>(1)),
        )?;
        Ok(sums
            .into_iter()
            .filter_map(|(kind, sum)| LedgerKind::parse(&kind).map(|k| (k, sum)))
            .collect())
    }

    fn fee_accounts(&mut self, coin: &str) -> Result<Vec<String>, StoreError> {
        self.query(
            "SELECT DISTINCT address FROM ledger WHERE coin = $1 AND kind = 'fee' ORDER BY address",
            &[&coin],
            |r| r.get(0),
        )
    }

    fn lock_schemes(&mut self, coin: &str) -> Result<(), StoreError> {
        self.lock(SCHEME_LOCK, coin)
    }

    fn last_scheme(&mut self, coin: &str) -> Result<Option<(String, i64)>, StoreError> {
        let found = self.query(
            "SELECT scheme, since_ms FROM schemes WHERE coin = $1 ORDER BY id DESC LIMIT 1",
            &[&coin],
            |r| (r.get(0), r.get(1)),
        )?;
        Ok(found.into_iter().next())
    }

    fn add_scheme(&mut self, coin: &str, scheme: &str, since_ms: i64) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO schemes (coin, scheme, since_ms) VALUES ($1, $2, $3)",
            &[&coin, &scheme, &since_ms],
        )?;
        Ok(())
    }
}

impl AuditStore for PostgresStore {
    fn audit(&mut self, entry: &AuditEntry) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO audit (time_ms, actor, action, detail) VALUES ($1, $2, $3, $4)",
            &[&entry.time_ms, &entry.actor, &entry.action, &entry.detail],
        )?;
        Ok(())
    }

    fn audit_log(&mut self, limit: u64) -> Result<Vec<AuditEntry>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.query(
            "SELECT time_ms, actor, action, detail FROM audit ORDER BY id DESC LIMIT $1",
            &[&limit],
            |r| AuditEntry {
                time_ms: r.get(0),
                actor: r.get(1),
                action: r.get(2),
                detail: r.get(3),
            },
        )
    }
}

impl BanStore for PostgresStore {
    fn add_ban(&mut self, ip: &str, until_ms: i64, reason: &str) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO bans (ip, until_ms, reason) VALUES ($1, $2, $3)
             ON CONFLICT (ip) DO UPDATE SET until_ms = excluded.until_ms, reason = excluded.reason",
            &[&ip, &until_ms, &reason],
        )?;
        Ok(())
    }

    fn lift_ban(&mut self, ip: &str) -> Result<bool, StoreError> {
        Ok(self.execute("DELETE FROM bans WHERE ip = $1", &[&ip])? > 0)
    }

    fn bans(&mut self, now_ms: i64) -> Result<Vec<(String, i64)>, StoreError> {
        self.query(
            "SELECT ip, until_ms FROM bans WHERE until_ms > $1 ORDER BY ip",
            &[&now_ms],
            |r| (r.get(0), r.get(1)),
        )
    }
}

impl PaymentStore for PostgresStore {
    fn lock_payments(&mut self, coin: &str) -> Result<(), StoreError> {
        self.lock(PAYMENT_LOCK, coin)
    }

    fn payment_count(&mut self, coin: &str, status: PaymentStatus) -> Result<u64, StoreError> {
        let n = self.query(
            "SELECT COUNT(*) FROM payments WHERE coin = $1 AND status = $2",
            &[&coin, &status.as_str()],
            |r| r.get::<_, i64>(0),
        )?;
        Ok(u64::try_from(n.into_iter().sum::<i64>()).unwrap_or(0))
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
        let id: i64 = self
            .client
            .query_one(
                "INSERT INTO payments (coin, time_ms, status, txid, tx_fee, tx_hex, fee_account)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                &[
                    &coin,
                    &time_ms,
                    &status.as_str(),
                    &transaction.txid,
                    &to_i64(transaction.fee),
                    &transaction.hex,
                    &fee_account,
                ],
            )
            .map_err(db)?
            .get(0);
        for (address, amount) in outputs {
            self.execute(
                "INSERT INTO payment_outputs (payment_id, address, amount) VALUES ($1, $2, $3)",
                &[&id, address, &to_i64(*amount)],
            )?;
        }
        Ok(id)
    }

    fn payment(&mut self, id: i64) -> Result<Option<Payment>, StoreError> {
        Ok(self
            .select_payments("id = $1", true, &[&id])?
            .into_iter()
            .next())
    }

    fn set_payment_status(
        &mut self,
        id: i64,
        status: PaymentStatus,
        detail: Option<&str>,
    ) -> Result<(), StoreError> {
        self.execute(
            "UPDATE payments SET status = $2, detail = COALESCE($3, detail) WHERE id = $1",
            &[&id, &status.as_str(), &detail],
        )?;
        Ok(())
    }

    fn payments(&mut self, coin: &str) -> Result<Vec<Payment>, StoreError> {
        self.select_payments("coin = $1", false, &[&coin])
    }

    fn payer(&mut self, coin: &str) -> Result<Option<(String, i64)>, StoreError> {
        let found = self.query(
            "SELECT owner, expires_ms FROM payers WHERE coin = $1 FOR UPDATE",
            &[&coin],
            |r| (r.get(0), r.get(1)),
        )?;
        Ok(found.into_iter().next())
    }

    fn set_payer(&mut self, coin: &str, owner: &str, expires_ms: i64) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO payers (coin, owner, expires_ms) VALUES ($1, $2, $3)
             ON CONFLICT (coin) DO UPDATE SET owner = EXCLUDED.owner, expires_ms = EXCLUDED.expires_ms",
            &[&coin, &owner, &expires_ms],
        )?;
        Ok(())
    }
}

impl Session for PostgresStore {
    fn begin(&mut self) -> Result<(), StoreError> {
        self.client.batch_execute("BEGIN").map_err(db)
    }

    fn end(&mut self, commit: bool) -> Result<(), StoreError> {
        let sql = if commit { "COMMIT" } else { "ROLLBACK" };
        self.client.batch_execute(sql).map_err(db)
    }
}

impl Store for PostgresStore {
    fn transaction(
        &mut self,
        step: &mut dyn FnMut(&mut dyn Rows) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        run_transaction(self, step)
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
        crate::store::tests::exercise_audit(&mut store);
        let err = store
            .client
            .execute("UPDATE audit SET actor = 'mallory'", &[])
            .expect_err("append-only");
        assert!(format!("{err:?}").contains("append-only"), "{err:?}");
        assert!(store.client.execute("DELETE FROM audit", &[]).is_err());
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

    #[test]
    fn rows_and_rules_match_sqlite() {
        if !available() {
            return;
        }
        let server = Postgres::start();
        let mut rows = PostgresStore::open(&server.database("rows_test")).expect("connect");
        crate::store::tests::exercise_rows(&mut rows);
        let mut store = PostgresStore::open(&server.database("rules_test")).expect("connect");
        let transcript = crate::store::tests::exercise_rules(&mut store);
        #[cfg(feature = "sqlite")]
        {
            let (mut sqlite, dir) = crate::store::sqlite::tests::fresh("rules-pg");
            let expected = crate::store::tests::exercise_rules(&mut sqlite);
            let _ = std::fs::remove_dir_all(dir);
            assert_eq!(transcript, expected, "the same rows as SQLite");
        }
        assert!(!transcript.is_empty());
    }
}
