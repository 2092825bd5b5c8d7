//! The sharechain on disk (feature `sqlite`): every share a node accepts, so a restarted node
//! starts from its own chain and fetches only what it missed.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use crate::chain::Sharechain;
use crate::error::ShareError;
use crate::node::ShareSink;
use crate::params::ConsensusId;
use crate::share::{Layout, Share, ShareId};

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite refused.
    #[error("share store: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// Shares in an SQLite file, one table for every chain the file has seen (rows carry the
/// consensus id, so two chains in one file never mix).
#[derive(Debug)]
pub struct ShareStore {
    conn: Connection,
    chain: ConsensusId,
    failures: u64,
}

impl ShareStore {
    /// Opens (or creates) the store at `path` for the chain `chain`.
    pub fn open(path: &Path, chain: &ConsensusId) -> Result<ShareStore, StoreError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS p2p_shares (
                chain BLOB NOT NULL,
                id BLOB NOT NULL,
                height INTEGER NOT NULL,
                bytes BLOB NOT NULL,
                PRIMARY KEY (chain, id)
            );
            CREATE INDEX IF NOT EXISTS p2p_shares_height ON p2p_shares (chain, height);",
        )?;
        Ok(ShareStore {
            conn,
            chain: *chain,
            failures: 0,
        })
    }

    /// Stores one share.
    pub fn put(&self, share: &Share) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT OR IGNORE INTO p2p_shares (chain, id, height, bytes) VALUES (?1, ?2, ?3, ?4)",
            params![
                &self.chain.0[..],
                &share.id().0[..],
                i64::try_from(share.info.height).unwrap_or(i64::MAX),
                share.to_bytes()
            ],
        )?;
        Ok(())
    }

    /// Deletes the shares below `height`.
    pub fn delete_below(&self, height: u64) -> Result<usize, StoreError> {
        Ok(self.conn.execute(
            "DELETE FROM p2p_shares WHERE chain = ?1 AND height < ?2",
            params![&self.chain.0[..], i64::try_from(height).unwrap_or(i64::MAX)],
        )?)
    }

    /// How many shares are stored for this chain.
    pub fn count(&self) -> Result<u64, StoreError> {
        let n: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM p2p_shares WHERE chain = ?1",
            params![&self.chain.0[..]],
            |r| r.get(0),
        )?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Whether a share is stored.
    pub fn contains(&self, id: &ShareId) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM p2p_shares WHERE chain = ?1 AND id = ?2",
                params![&self.chain.0[..], &id.0[..]],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Rebuilds `chain` (empty) from the store, lowest first, checking every share again.
    /// Shares that no longer fit (undecodable, or above a gap) are skipped and reported in the
    /// second number.
    pub fn load_into(
        &self,
        chain: &mut Sharechain,
        now: u64,
    ) -> Result<(usize, usize), StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT bytes FROM p2p_shares WHERE chain = ?1 ORDER BY height, id")?;
        let rows = stmt.query_map(params![&self.chain.0[..]], |r| r.get::<_, Vec<u8>>(0))?;
        let (mut loaded, mut skipped) = (0usize, 0usize);
        let layout = Layout::of(chain.params().algorithm);
        for bytes in rows {
            let Ok(share) = Share::from_bytes_in(&bytes?, layout) else {
                skipped += 1;
                continue;
            };
            let result = if chain.is_empty() && share.info.parent != ShareId::NONE {
                chain.add_base(share, now)
            } else {
                chain.add(share, now)
            };
            match result {
                Ok(_) | Err(ShareError::Duplicate { .. }) => loaded += 1,
                Err(_) => skipped += 1,
            }
        }
        Ok((loaded, skipped))
    }

    /// Store writes that failed since the last call (the sink cannot return errors).
    pub fn take_failures(&mut self) -> u64 {
        std::mem::take(&mut self.failures)
    }
}

impl ShareSink for ShareStore {
    fn save(&mut self, share: &Share) {
        if self.put(share).is_err() {
            self.failures += 1;
        }
    }

    fn prune(&mut self, below_height: u64) {
        if self.delete_below(below_height).is_err() {
            self.failures += 1;
        }
    }
}
