//! Coinbase transactions split around an extranonce slot, as Stratum v1 sends them.
//!
//! The scriptSig is laid out as
//!
//! ```text
//! <BIP34 height> <push opcode for the slot> <extranonce1 || extranonce2> [<pool tag push>]
//! ```
//!
//! so `coinb1` ends right before the extranonce slot and `coinb2` begins right after it.
//! `coinb1 || extranonce1 || extranonce2 || coinb2` is the legacy (non-witness)
//! serialization, whose sha256d is the txid.

use bitcoin::absolute::LockTime;
use bitcoin::blockdata::transaction::{OutPoint, Sequence, Transaction, TxIn, TxOut, Version};
use bitcoin::{Amount, ScriptBuf, Witness};

use crate::header::sha256d;
use crate::merkle::witness_commitment;

/// Smallest coinbase scriptSig accepted by consensus (`bad-cb-length`).
pub const COINBASE_SCRIPT_SIG_MIN: usize = 2;
/// Largest coinbase scriptSig accepted by consensus (`bad-cb-length`).
pub const COINBASE_SCRIPT_SIG_MAX: usize = 100;
/// Bitcoin's `MAX_MONEY` in satoshis.
pub const MAX_MONEY_SAT: u64 = 21_000_000 * 100_000_000;
/// The header of a BIP141 witness commitment script: `OP_RETURN`, a 36-byte push and the
/// tag `aa21a9ed`.
pub const WITNESS_COMMITMENT_HEADER: [u8; 6] = [0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed];
/// The coinbase witness reserved value this builder uses: 32 zero bytes.
pub const WITNESS_RESERVED_VALUE: [u8; 32] = [0u8; 32];

/// Why a coinbase could not be built or filled in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CoinbaseError {
    /// The scriptSig would be shorter than 2 bytes.
    #[error("coinbase scriptsig of {len} bytes is shorter than the minimum of 2")]
    ScriptSigTooShort {
        /// The scriptSig length.
        len: usize,
    },
    /// The scriptSig (height, extranonce slot and tag) would exceed 100 bytes.
    #[error(
        "coinbase scriptsig of {len} bytes exceeds the maximum of 100 (height, extranonce and tag)"
    )]
    ScriptSigTooLong {
        /// The scriptSig length.
        len: usize,
    },
    /// No output was added.
    #[error("coinbase has no outputs")]
    NoOutputs,
    /// An output value or the total exceeds `MAX_MONEY`.
    #[error("coinbase output value {value} sat exceeds max money")]
    ValueTooLarge {
        /// The offending value (one output, or the running total).
        value: u64,
    },
    /// The extranonce slot cannot be split with this much for extranonce1.
    #[error("an extranonce slot of {slot} bytes cannot give extranonce1 {extranonce1}")]
    SlotTooSmall {
        /// The slot's size.
        slot: usize,
        /// The extranonce1 size asked for.
        extranonce1: usize,
    },
    /// The extranonce1 given does not have the size the coinbase was built for.
    #[error("extranonce1 is {got} bytes, coinbase expects {expected}")]
    Extranonce1Size {
        /// Size the coinbase was built for.
        expected: usize,
        /// Size given.
        got: usize,
    },
    /// The extranonce2 given does not have the size the coinbase was built for.
    #[error("extranonce2 is {got} bytes, coinbase expects {expected}")]
    Extranonce2Size {
        /// Size the coinbase was built for.
        expected: usize,
        /// Size given.
        got: usize,
    },
}

/// The BIP34 height push exactly as Bitcoin Core's `CScript() << nHeight` writes it.
///
/// Core's `push_int64` writes `OP_0` for 0 and the single opcodes `OP_1`..`OP_16`
/// (`0x51`..`0x60`) for 1..=16; every other height is the minimal `CScriptNum` encoding
/// (little-endian, with a `0x00` byte appended when the top bit is set) behind a direct push
/// opcode. Core's BIP34 check compares the scriptSig prefix against this same encoding, so
/// small heights (regtest, signet, new chains) must use the opcode form.
pub fn bip34_height_push(height: u32) -> Vec<u8> {
    match height {
        0 => vec![0x00],
        1..=16 => vec![0x50 + height as u8],
        _ => {
            let mut num = Vec::with_capacity(5);
            let mut v = height;
            while v > 0 {
                num.push((v & 0xff) as u8);
                v >>= 8;
            }
            if num.last().is_some_and(|b| b & 0x80 != 0) {
                num.push(0x00);
            }
            let mut out = Vec::with_capacity(num.len() + 1);
            out.push(num.len() as u8);
            out.extend_from_slice(&num);
            out
        }
    }
}

/// The smallest push opcode(s) for `len` bytes of data (`len <= 255`).
fn push_prefix(len: usize) -> Vec<u8> {
    if len < 0x4c {
        vec![len as u8]
    } else {
        // OP_PUSHDATA1; lengths above 255 never fit a 100-byte scriptSig anyway.
        vec![0x4c, len.min(255) as u8]
    }
}

/// The BIP141 witness commitment output script for a witness merkle root, with the
/// 32-zero-byte reserved value.
pub fn witness_commitment_script(witness_root: &[u8; 32]) -> ScriptBuf {
    let commitment = witness_commitment(witness_root, &WITNESS_RESERVED_VALUE);
    let mut script = Vec::with_capacity(38);
    script.extend_from_slice(&WITNESS_COMMITMENT_HEADER);
    script.extend_from_slice(&commitment);
    ScriptBuf::from_bytes(script)
}

/// Builds a [`Coinbase`]; see the module documentation for the scriptSig layout.
#[derive(Debug, Clone)]
pub struct CoinbaseBuilder {
    height: u32,
    extranonce1_size: usize,
    extranonce2_size: usize,
    pool_tag: Vec<u8>,
    outputs: Vec<(ScriptBuf, u64)>,
    witness_root: Option<[u8; 32]>,
    version: i32,
    sequence: u32,
    lock_time: u32,
}

impl CoinbaseBuilder {
    /// A builder for the coinbase of the block at `height`, with extranonce sizes 4 + 8,
    /// transaction version 2, sequence `0xffffffff`, lock time 0, no tag, no outputs and no
    /// witness commitment.
    pub fn new(height: u32) -> CoinbaseBuilder {
        CoinbaseBuilder {
            height,
            extranonce1_size: 4,
            extranonce2_size: 8,
            pool_tag: Vec::new(),
            outputs: Vec::new(),
            witness_root: None,
            version: 2,
            sequence: u32::MAX,
            lock_time: 0,
        }
    }

    /// Sizes of the extranonce1 (per session) and extranonce2 (rolled by the miner) slots.
    pub fn extranonce_sizes(mut self, extranonce1: usize, extranonce2: usize) -> Self {
        self.extranonce1_size = extranonce1;
        self.extranonce2_size = extranonce2;
        self
    }

    /// A pool tag pushed after the extranonce slot (it ends up in `coinb2`).
    pub fn pool_tag(mut self, tag: impl Into<Vec<u8>>) -> Self {
        self.pool_tag = tag.into();
        self
    }

    /// Appends an output paying `value_sat` satoshis to `script_pubkey`.
    pub fn output(mut self, script_pubkey: ScriptBuf, value_sat: u64) -> Self {
        self.outputs.push((script_pubkey, value_sat));
        self
    }

    /// Makes the coinbase segwit: appends the witness commitment output (last, value 0) for
    /// this witness merkle root and gives the input the 32-zero-byte reserved value as its
    /// witness.
    pub fn witness_root(mut self, witness_root: [u8; 32]) -> Self {
        self.witness_root = Some(witness_root);
        self
    }

    /// Transaction version (default 2).
    pub fn version(mut self, version: i32) -> Self {
        self.version = version;
        self
    }

    /// Input sequence (default `0xffffffff`).
    pub fn sequence(mut self, sequence: u32) -> Self {
        self.sequence = sequence;
        self
    }

    /// Lock time (default 0).
    pub fn lock_time(mut self, lock_time: u32) -> Self {
        self.lock_time = lock_time;
        self
    }

    /// Checks the limits and splits the serialization around the extranonce slot.
    pub fn build(self) -> Result<Coinbase, CoinbaseError> {
        if self.outputs.is_empty() {
            return Err(CoinbaseError::NoOutputs);
        }
        let mut total: u64 = 0;
        for (_, value) in &self.outputs {
            if *value > MAX_MONEY_SAT {
                return Err(CoinbaseError::ValueTooLarge { value: *value });
            }
            total = total.saturating_add(*value);
            if total > MAX_MONEY_SAT {
                return Err(CoinbaseError::ValueTooLarge { value: total });
            }
        }

        let slot = self.extranonce1_size.saturating_add(self.extranonce2_size);
        let mut prefix = bip34_height_push(self.height);
        prefix.extend_from_slice(&push_prefix(slot));
        let mut suffix = Vec::new();
        if !self.pool_tag.is_empty() {
            suffix.extend_from_slice(&push_prefix(self.pool_tag.len()));
            suffix.extend_from_slice(&self.pool_tag);
        }
        let len = prefix
            .len()
            .saturating_add(slot)
            .saturating_add(suffix.len());
        if len < COINBASE_SCRIPT_SIG_MIN {
            return Err(CoinbaseError::ScriptSigTooShort { len });
        }
        if len > COINBASE_SCRIPT_SIG_MAX {
            return Err(CoinbaseError::ScriptSigTooLong { len });
        }

        let mut outputs: Vec<TxOut> = self
            .outputs
            .iter()
            .map(|(script, value)| TxOut {
                value: Amount::from_sat(*value),
                script_pubkey: script.clone(),
            })
            .collect();
        if let Some(root) = &self.witness_root {
            outputs.push(TxOut {
                value: Amount::ZERO,
                script_pubkey: witness_commitment_script(root),
            });
        }

        let mut coinbase = Coinbase {
            coinb1: Vec::new(),
            coinb2: Vec::new(),
            script_prefix: prefix,
            script_suffix: suffix,
            extranonce1_size: self.extranonce1_size,
            extranonce2_size: self.extranonce2_size,
            outputs,
            segwit: self.witness_root.is_some(),
            version: self.version,
            sequence: self.sequence,
            lock_time: self.lock_time,
        };
        // Serialize with a zero-filled slot and cut it out. Legacy layout: version (4),
        // input count (1), outpoint (36), script length (1, since the script is <= 100
        // bytes), then the script.
        let placeholder = vec![0u8; slot];
        let tx = coinbase.assemble(&placeholder, true);
        let bytes = bitcoin::consensus::encode::serialize(&tx);
        let start = 4 + 1 + 36 + 1 + coinbase.script_prefix.len();
        let end = start + slot;
        match (bytes.get(..start), bytes.get(end..)) {
            (Some(c1), Some(c2)) => {
                coinbase.coinb1 = c1.to_vec();
                coinbase.coinb2 = c2.to_vec();
            }
            // The serialization always extends past the slot; keep the builder total.
            _ => return Err(CoinbaseError::ScriptSigTooLong { len }),
        }
        Ok(coinbase)
    }
}

/// A coinbase transaction template split around its extranonce slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coinbase {
    coinb1: Vec<u8>,
    coinb2: Vec<u8>,
    script_prefix: Vec<u8>,
    script_suffix: Vec<u8>,
    extranonce1_size: usize,
    extranonce2_size: usize,
    outputs: Vec<TxOut>,
    segwit: bool,
    version: i32,
    sequence: u32,
    lock_time: u32,
}

impl Coinbase {
    /// The legacy serialization up to the extranonce slot (Stratum `coinb1`).
    pub fn coinb1(&self) -> &[u8] {
        &self.coinb1
    }

    /// The legacy serialization after the extranonce slot (Stratum `coinb2`).
    pub fn coinb2(&self) -> &[u8] {
        &self.coinb2
    }

    /// Size of the extranonce1 part of the slot.
    pub fn extranonce1_size(&self) -> usize {
        self.extranonce1_size
    }

    /// Size of the extranonce2 part of the slot.
    pub fn extranonce2_size(&self) -> usize {
        self.extranonce2_size
    }

    /// The same coinbase with its extranonce slot split at `extranonce1_size` (the bytes are
    /// unchanged: a slot built whole, as a sharechain's, read as Stratum's two parts).
    pub fn split_at(&self, extranonce1_size: usize) -> Result<Coinbase, CoinbaseError> {
        let slot = self.extranonce1_size + self.extranonce2_size;
        let extranonce2_size =
            slot.checked_sub(extranonce1_size)
                .ok_or(CoinbaseError::SlotTooSmall {
                    slot,
                    extranonce1: extranonce1_size,
                })?;
        Ok(Coinbase {
            extranonce1_size,
            extranonce2_size,
            ..self.clone()
        })
    }

    /// Whether the transaction carries a witness commitment (and a witness).
    pub fn is_segwit(&self) -> bool {
        self.segwit
    }

    fn check_sizes(&self, extranonce1: &[u8], extranonce2: &[u8]) -> Result<(), CoinbaseError> {
        if extranonce1.len() != self.extranonce1_size {
            return Err(CoinbaseError::Extranonce1Size {
                expected: self.extranonce1_size,
                got: extranonce1.len(),
            });
        }
        if extranonce2.len() != self.extranonce2_size {
            return Err(CoinbaseError::Extranonce2Size {
                expected: self.extranonce2_size,
                got: extranonce2.len(),
            });
        }
        Ok(())
    }

    fn assemble(&self, slot: &[u8], legacy: bool) -> Transaction {
        let mut script =
            Vec::with_capacity(self.script_prefix.len() + slot.len() + self.script_suffix.len());
        script.extend_from_slice(&self.script_prefix);
        script.extend_from_slice(slot);
        script.extend_from_slice(&self.script_suffix);
        let witness = if self.segwit && !legacy {
            Witness::from_slice(&[WITNESS_RESERVED_VALUE])
        } else {
            Witness::new()
        };
        Transaction {
            version: Version(self.version),
            lock_time: LockTime::from_consensus(self.lock_time),
            input: vec![TxIn {
                previous_output: OutPoint::null(),
                script_sig: ScriptBuf::from_bytes(script),
                sequence: Sequence(self.sequence),
                witness,
            }],
            output: self.outputs.clone(),
        }
    }

    /// `coinb1 || extranonce1 || extranonce2 || coinb2`: the legacy serialization.
    pub fn legacy_bytes(
        &self,
        extranonce1: &[u8],
        extranonce2: &[u8],
    ) -> Result<Vec<u8>, CoinbaseError> {
        self.check_sizes(extranonce1, extranonce2)?;
        let mut out = Vec::with_capacity(
            self.coinb1.len() + extranonce1.len() + extranonce2.len() + self.coinb2.len(),
        );
        out.extend_from_slice(&self.coinb1);
        out.extend_from_slice(extranonce1);
        out.extend_from_slice(extranonce2);
        out.extend_from_slice(&self.coinb2);
        Ok(out)
    }

    /// The txid (internal byte order) for these extranonces.
    pub fn txid(&self, extranonce1: &[u8], extranonce2: &[u8]) -> Result<[u8; 32], CoinbaseError> {
        Ok(sha256d(&self.legacy_bytes(extranonce1, extranonce2)?))
    }

    /// The full transaction for these extranonces, with the reserved-value witness when the
    /// coinbase is segwit.
    pub fn transaction(
        &self,
        extranonce1: &[u8],
        extranonce2: &[u8],
    ) -> Result<Transaction, CoinbaseError> {
        self.check_sizes(extranonce1, extranonce2)?;
        let mut slot = Vec::with_capacity(extranonce1.len() + extranonce2.len());
        slot.extend_from_slice(extranonce1);
        slot.extend_from_slice(extranonce2);
        Ok(self.assemble(&slot, false))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_resplit_slot_fills_in_to_the_same_transaction() {
        let whole = CoinbaseBuilder::new(5)
            .extranonce_sizes(8, 0)
            .output(ScriptBuf::new(), 1_000)
            .build()
            .unwrap();
        let split = whole.split_at(4).unwrap();
        assert_eq!((split.extranonce1_size(), split.extranonce2_size()), (4, 4));
        assert_eq!(split.coinb1(), whole.coinb1());
        assert_eq!(
            split.transaction(&[1, 2, 3, 4], &[5, 6, 7, 8]).unwrap(),
            whole.transaction(&[1, 2, 3, 4, 5, 6, 7, 8], &[]).unwrap()
        );
        assert_eq!(
            whole.split_at(9),
            Err(CoinbaseError::SlotTooSmall {
                slot: 8,
                extranonce1: 9
            })
        );
    }

    #[test]
    fn height_pushes_follow_core() {
        assert_eq!(bip34_height_push(0), vec![0x00]);
        assert_eq!(bip34_height_push(1), vec![0x51]);
        assert_eq!(bip34_height_push(16), vec![0x60]);
        assert_eq!(bip34_height_push(17), vec![0x01, 0x11]);
        assert_eq!(bip34_height_push(127), vec![0x01, 0x7f]);
        assert_eq!(bip34_height_push(128), vec![0x02, 0x80, 0x00]);
        assert_eq!(bip34_height_push(255), vec![0x02, 0xff, 0x00]);
        assert_eq!(bip34_height_push(256), vec![0x02, 0x00, 0x01]);
        // 227836 = 0x0379fc.
        assert_eq!(bip34_height_push(227_836), vec![0x03, 0xfc, 0x79, 0x03]);
        assert_eq!(bip34_height_push(840_000), vec![0x03, 0x40, 0xd1, 0x0c]);
        assert_eq!(
            bip34_height_push(u32::MAX),
            vec![0x05, 0xff, 0xff, 0xff, 0xff, 0x00]
        );
    }

    #[test]
    fn limits() {
        let spk = ScriptBuf::from_bytes(vec![0x51]);
        assert_eq!(
            CoinbaseBuilder::new(1).build(),
            Err(CoinbaseError::NoOutputs)
        );
        assert_eq!(
            CoinbaseBuilder::new(840_000)
                .output(spk.clone(), 1)
                .pool_tag(vec![b'x'; 90])
                .build(),
            Err(CoinbaseError::ScriptSigTooLong {
                len: 4 + 1 + 12 + 2 + 90
            })
        );
        assert_eq!(
            CoinbaseBuilder::new(1)
                .output(spk.clone(), MAX_MONEY_SAT + 1)
                .build(),
            Err(CoinbaseError::ValueTooLarge {
                value: MAX_MONEY_SAT + 1
            })
        );
        let cb = CoinbaseBuilder::new(1).output(spk, 50).build().unwrap();
        assert_eq!(
            cb.transaction(&[0; 3], &[0; 8]),
            Err(CoinbaseError::Extranonce1Size {
                expected: 4,
                got: 3
            })
        );
        assert_eq!(
            cb.txid(&[0; 4], &[0; 7]),
            Err(CoinbaseError::Extranonce2Size {
                expected: 8,
                got: 7
            })
        );
    }
}
