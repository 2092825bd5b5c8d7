//! The embedded default store: one SQLite file in WAL mode, synchronous commits.

use std::path::Path;

use rusqlite::{params, Connection};

use super::{BlockRecord, BlockStatus, ShareRecord, Store, StoreError};

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
];

fn db(e: rusqlite::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

/// The SQLite store.
pub(crate) struct SqliteStore {
    conn: Connection,
}

impl SqliteStore {
    /// Opens (creating and migrating as needed) the database at `path`.
    pub(crate) fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(db)?;
        // WAL with synchronous=FULL: a commit that returned is on disk, so an acknowledged
        // share survives a kill or a power cut.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(db)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(db)?;
        let mut store = SqliteStore { conn };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        // The version is read and the migrations applied under one write lock, so that
        // several pools opening the same file at once migrate it exactly once.
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(db)?;
        let applied: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(db)?;
        let applied = usize::try_from(applied).unwrap_or(0);
        if applied > MIGRATIONS.len() {
            return Err(StoreError::Database(format!(
                "database schema version {applied} is newer than this otedama ({})",
                MIGRATIONS.len()
            )));
        }
        for sql in MIGRATIONS.iter().skip(applied) {
            tx.execute_batch(sql).map_err(db)?;
        }
        tx.pragma_update(None, "user_version", MIGRATIONS.len() as i64)
            .map_err(db)?;
        tx.commit().map_err(db)
    }
}

impl Store for SqliteStore {
    fn commit(&mut self, shares: &[ShareRecord], blocks: &[BlockRecord]) -> Result<(), StoreError> {
        let tx = self.conn.transaction().map_err(db)?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO shares (time_ms, address, worker, difficulty, job_id, height, pow_hash, is_block, algorithm)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
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
                        s.algorithm
                    ])
                    .map_err(db)?;
            }
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO blocks (time_ms, height, hash, address, worker, reward, status, detail, algorithm)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
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
                        b.algorithm
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
        let mut stmt = self
            .conn
            .prepare(
                "SELECT time_ms, height, hash, address, worker, reward, status, detail, algorithm
                 FROM blocks ORDER BY id",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map([], |r| {
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
                })
            })
            .map_err(db)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db)
    }

    fn shares(&mut self, limit: u64) -> Result<Vec<ShareRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT time_ms, address, worker, difficulty, job_id, height, pow_hash, is_block, algorithm
                 FROM shares ORDER BY id LIMIT ?1",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map([limit.min(i64::MAX as u64) as i64], |r| {
                let hash: Vec<u8> = r.get(6)?;
                let mut pow_hash = [0u8; 32];
                if hash.len() == 32 {
                    pow_hash.copy_from_slice(&hash);
                }
                Ok(ShareRecord {
                    time_ms: r.get(0)?,
                    address: r.get(1)?,
                    worker: r.get(2)?,
                    difficulty: r.get(3)?,
                    job_id: r.get(4)?,
                    height: r.get::<_, i64>(5)?.max(0) as u64,
                    pow_hash,
                    is_block: r.get(7)?,
                    algorithm: r.get(8)?,
                })
            })
            .map_err(db)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db)
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
}
