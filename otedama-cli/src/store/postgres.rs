//! PostgreSQL, for pools whose share log outgrows one file: the same tables as SQLite.

use postgres::{Client, NoTls};

use super::{BlockRecord, BlockStatus, ShareRecord, Store, StoreError};

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
];

/// Any number, so long as every otedama uses the same one: it serialises migrations.
const MIGRATION_LOCK: i64 = 0x006f_7465_6461_6d61;

fn db(e: postgres::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

/// The PostgreSQL store.
pub(crate) struct PostgresStore {
    client: Client,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`) and migrates.
    ///
    /// The client blocks on its own small runtime: call this from a plain thread, not from
    /// async code.
    pub(crate) fn open(url: &str) -> Result<Self, StoreError> {
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

impl Store for PostgresStore {
    fn commit(&mut self, shares: &[ShareRecord], blocks: &[BlockRecord]) -> Result<(), StoreError> {
        let mut tx = self.client.transaction().map_err(db)?;
        if !shares.is_empty() {
            let insert = tx
                .prepare(
                    "INSERT INTO shares (time_ms, address, worker, difficulty, job_id, height, pow_hash, is_block, algorithm)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
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
                    ],
                )
                .map_err(db)?;
            }
        }
        if !blocks.is_empty() {
            let insert = tx
                .prepare(
                    "INSERT INTO blocks (time_ms, height, hash, address, worker, reward, status, detail, algorithm)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
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
        let rows = self
            .client
            .query(
                "SELECT time_ms, height, hash, address, worker, reward, status, detail, algorithm
                 FROM blocks ORDER BY id",
                &[],
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
                }
            })
            .collect())
    }

    fn shares(&mut self, limit: u64) -> Result<Vec<ShareRecord>, StoreError> {
        let rows = self
            .client
            .query(
                "SELECT time_ms, address, worker, difficulty, job_id, height, pow_hash, is_block, algorithm
                 FROM shares ORDER BY id LIMIT $1",
                &[&to_i64(limit)],
            )
            .map_err(db)?;
        Ok(rows
            .iter()
            .map(|r| {
                let hash: Vec<u8> = r.get(6);
                let mut pow_hash = [0u8; 32];
                if hash.len() == 32 {
                    pow_hash.copy_from_slice(&hash);
                }
                ShareRecord {
                    time_ms: r.get(0),
                    address: r.get(1),
                    worker: r.get(2),
                    difficulty: r.get(3),
                    job_id: r.get(4),
                    height: u64::try_from(r.get::<_, i64>(5)).unwrap_or(0),
                    pow_hash,
                    is_block: r.get(7),
                    algorithm: r.get(8),
                }
            })
            .collect())
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
