//! The embedded devnet: an in-process chain with an easy, adjustable target, so a pool works
//! on a fresh machine with no node. Blocks go through the same template, validation and
//! submission path as a real node's, and the devnet checks them as a node would.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use otedama_core::bitcoin::consensus::deserialize;
use otedama_core::bitcoin::consensus::encode::{deserialize_hex, serialize_hex};
use otedama_core::bitcoin::{
    absolute, transaction, Amount, Block, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut,
    Txid, Witness,
};
use otedama_core::AddressParams;
use otedama_core::{encode_hex, reverse_hash, sha256d, BlockTemplate, CompactTarget, Target};
use otedama_hash::PowAlgorithm;

use super::{BlockRejection, BlockSubmitter, ChainView, SourceError, SubmitError, TemplateSource};
use crate::wallet::{
    Broadcast, PreparedPayment, SendError, Wallet, WalletError, WalletTransaction,
};

/// 50 coins, in the smallest unit, for every devnet block.
pub const DEVNET_REWARD: u64 = 50 * 100_000_000;

#[derive(Debug)]
struct Chain {
    tip: [u8; 32],
    height: u64,
    last_time: u32,
    accepted: Vec<[u8; 32]>,
    /// Every accepted block's coinbase, by height: what the devnet wallet can spend.
    coinbases: Vec<(u64, Transaction)>,
    /// Transactions the devnet wallet broadcast, with the height of the tip then: each counts
    /// as mined in the next block.
    broadcast: HashMap<Txid, (u64, Transaction)>,
    /// Outputs spent by broadcast transactions.
    spent: HashSet<OutPoint>,
    /// Blocks taken off the chain by [`Devnet::orphan_tip`].
    orphaned: Vec<[u8; 32]>,
}

struct Shared {
    chain: Mutex<Chain>,
    changed: Condvar,
    bits: CompactTarget,
    target: Target,
    kernel: Box<dyn PowAlgorithm>,
}

/// A handle to the devnet; clones share the chain.
#[derive(Clone)]
pub struct Devnet {
    shared: Arc<Shared>,
}

fn now_secs() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
}

impl Devnet {
    /// A fresh chain whose blocks must meet `target` under `kernel`'s proof of work.
    pub fn new(kernel: Box<dyn PowAlgorithm>, target: Target) -> Self {
        let bits = target.to_compact();
        // The stored target is what the compact form decodes to, as a node would use it.
        let target = bits.decode().unwrap_or(target);
        let genesis = sha256d(b"otedama devnet genesis");
        Devnet {
            shared: Arc::new(Shared {
                chain: Mutex::new(Chain {
                    tip: genesis,
                    height: 0,
                    last_time: now_secs().saturating_sub(1),
                    accepted: Vec::new(),
                    coinbases: Vec::new(),
                    broadcast: HashMap::new(),
                    spent: HashSet::new(),
                    orphaned: Vec::new(),
                }),
                changed: Condvar::new(),
                bits,
                target,
                kernel,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Chain> {
        self.shared.chain.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current height.
    pub fn height(&self) -> u64 {
        self.lock().height
    }

    /// A reorganisation one block deep: the tip leaves the main chain (its coinbase with it)
    /// and its parent becomes the tip again. Returns the orphaned block's hash, or `None` at
    /// genesis. What a node does on `invalidateblock`.
    pub fn orphan_tip(&self) -> Option<[u8; 32]> {
        let mut chain = self.lock();
        let tip = chain.accepted.pop()?;
        chain.coinbases.pop();
        chain.height -= 1;
        chain.tip = chain
            .accepted
            .last()
            .copied()
            .unwrap_or_else(|| sha256d(b"otedama devnet genesis"));
        chain.orphaned.push(tip);
        drop(chain);
        self.shared.changed.notify_all();
        Some(tip)
    }

    /// The coinbase of the accepted block with this hash (internal order), with its height.
    pub fn coinbase(&self, hash: &[u8; 32]) -> Option<(u64, Transaction)> {
        let chain = self.lock();
        let i = chain.accepted.iter().position(|h| h == hash)?;
        chain.coinbases.get(i).cloned()
    }

    /// Hashes of the accepted blocks, internal order.
    pub fn accepted(&self) -> Vec<[u8; 32]> {
        self.lock().accepted.clone()
    }

    fn check(&self, chain: &Chain, bytes: &[u8]) -> Result<([u8; 32], Transaction), String> {
        let block: Block = deserialize(bytes).map_err(|e| format!("bad-block-encoding: {e}"))?;
        let header = otedama_core::BlockHeader::from(block.header);
        let header_bytes = header.to_bytes();
        let hash = sha256d(&header_bytes);
        if header.prev_blockhash != chain.tip {
            return Err(if chain.accepted.contains(&hash) {
                "duplicate"
            } else {
                "bad-prevblk"
            }
            .into());
        }
        if header.bits != self.shared.bits {
            return Err("bad-diffbits".into());
        }
        let pow = self
            .shared
            .kernel
            .hash(&header_bytes)
            .map_err(|e| format!("pow: {e}"))?;
        if !self.shared.target.is_met_by(&pow.hash) {
            return Err("high-hash".into());
        }
        if header.time <= chain.last_time.saturating_sub(7200) {
            return Err("time-too-old".into());
        }
        if !block.check_merkle_root() {
            return Err("bad-txnmrklroot".into());
        }
        let coinbase = block.txdata.first().ok_or("bad-cb-missing")?;
        if !coinbase.is_coinbase() || block.txdata.iter().skip(1).any(|t| t.is_coinbase()) {
            return Err("bad-cb-missing".into());
        }
        // Bitcoin Core's BIP34 rule: the scriptSig starts with exactly `CScript() << height`.
        let expected = u32::try_from(chain.height + 1)
            .map(otedama_core::bip34_height_push)
            .map_err(|_| "bad-cb-height")?;
        let script_sig = coinbase
            .input
            .first()
            .map(|i| i.script_sig.as_bytes())
            .unwrap_or_default();
        if !script_sig.starts_with(&expected) {
            return Err("bad-cb-height".into());
        }
        let paid: u64 = coinbase.output.iter().map(|o| o.value.to_sat()).sum();
        if paid > DEVNET_REWARD {
            return Err("bad-cb-amount".into());
        }
        Ok((hash, coinbase.clone()))
    }
}

impl TemplateSource for Devnet {
    fn template(&mut self) -> Result<BlockTemplate, SourceError> {
        let chain = self.lock();
        let curtime = now_secs().max(chain.last_time + 1);
        Ok(BlockTemplate {
            height: chain.height + 1,
            version: 0x2000_0000,
            prev_hash: chain.tip,
            bits: self.shared.bits,
            curtime,
            mintime: chain.last_time + 1,
            coinbase_value: DEVNET_REWARD,
            transactions: Vec::new(),
            witness_commitment: None,
            mweb: None,
            id: encode_hex(&chain.tip),
        })
    }

    fn wait_for_change(
        &mut self,
        current_id: &str,
        timeout: Duration,
    ) -> Result<Option<BlockTemplate>, SourceError> {
        let chain = self.lock();
        let (chain, _) = self
            .shared
            .changed
            .wait_timeout_while(chain, timeout, |c| encode_hex(&c.tip) == current_id)
            .unwrap_or_else(|p| p.into_inner());
        let changed = encode_hex(&chain.tip) != current_id;
        drop(chain);
        if changed {
            self.template().map(Some)
        } else {
            Ok(None)
        }
    }
}

impl ChainView for Devnet {
    fn block_confirmations(&mut self, hash: &[u8; 32]) -> Result<Option<i64>, SourceError> {
        // A block taken off the chain by `orphan_tip` is known and orphaned (-1).
        let chain = self.lock();
        if chain.orphaned.contains(hash) {
            return Ok(Some(-1));
        }
        Ok(chain
            .accepted
            .iter()
            .position(|h| h == hash)
            .map(|i| chain.accepted.len() as i64 - i as i64))
    }
}

impl BlockSubmitter for Devnet {
    fn submit_block(&mut self, block: &[u8]) -> Result<(), SubmitError> {
        let mut chain = self.lock();
        let (hash, coinbase) = self
            .check(&chain, block)
            .map_err(|r| SubmitError::Rejected(BlockRejection::from_reason(&r)))?;
        let time = block
            .get(68..72)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u32::from_le_bytes);
        chain.tip = hash;
        chain.height += 1;
        chain.last_time = chain.last_time.max(time);
        chain.accepted.push(hash);
        let height = chain.height;
        chain.coinbases.push((height, coinbase));
        drop(chain);
        self.shared.changed.notify_all();
        Ok(())
    }
}

/// The network fee of every devnet payment, smallest unit.
pub const DEVNET_TX_FEE: u64 = 1_000;

/// The devnet's wallet: it holds the coinbase outputs that pay its address, so a pool on the
/// devnet pays its miners as it would through a node's wallet.
///
/// Devnet simplifications, all deliberate: transactions are not signed (the devnet checks no
/// scripts), a broadcast transaction counts as mined in the next block (the devnet's blocks
/// carry only their coinbase), every payment pays [`DEVNET_TX_FEE`], and coinbase outputs are
/// spendable after `maturity` confirmations.
#[derive(Debug)]
pub struct DevnetWallet {
    devnet: Devnet,
    chain: AddressParams,
    script: ScriptBuf,
    maturity: u64,
    locked: HashSet<OutPoint>,
}

impl DevnetWallet {
    /// The wallet of `address` on `devnet`, whose coins are spendable at `maturity`
    /// confirmations.
    pub fn new(
        devnet: Devnet,
        chain: AddressParams,
        address: &str,
        maturity: u64,
    ) -> Result<DevnetWallet, otedama_core::AddressError> {
        Ok(DevnetWallet {
            script: chain.script_pubkey(address)?,
            devnet,
            chain,
            maturity: maturity.max(1),
            locked: HashSet::new(),
        })
    }

    /// The outputs the wallet may spend now, largest first.
    fn coins(&self, chain: &Chain) -> Vec<(OutPoint, u64)> {
        let mut coins = Vec::new();
        let mut add = |tx: &Transaction| {
            let txid = tx.compute_txid();
            for (vout, out) in tx.output.iter().enumerate() {
                let point = OutPoint::new(txid, u32::try_from(vout).unwrap_or(u32::MAX));
                if out.script_pubkey == self.script
                    && !chain.spent.contains(&point)
                    && !self.locked.contains(&point)
                {
                    coins.push((point, out.value.to_sat()));
                }
            }
        };
        for (height, coinbase) in &chain.coinbases {
            if chain.height + 1 - height >= self.maturity {
                add(coinbase);
            }
        }
        for (sent_at, tx) in chain.broadcast.values() {
            if chain.height > *sent_at {
                add(tx);
            }
        }
        coins.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        coins
    }
}

fn parse_transaction(hex: &str) -> Result<Transaction, WalletError> {
    deserialize_hex(hex).map_err(|e| WalletError::BadTransaction(std::sync::Arc::new(e)))
}

impl Wallet for DevnetWallet {
    fn prepare_payment(
        &mut self,
        outputs: &[(String, u64)],
        fee_from_outputs: bool,
    ) -> Result<PreparedPayment, SendError> {
        let mut paid = Vec::with_capacity(outputs.len() + 1);
        for (address, amount) in outputs {
            let script =
                self.chain
                    .script_pubkey(address)
                    .map_err(|source| SendError::BadAddress {
                        address: address.clone(),
                        source,
                    })?;
            paid.push(TxOut {
                value: Amount::from_sat(*amount),
                script_pubkey: script,
            });
        }
        let total = outputs
            .iter()
            .try_fold(0u64, |sum, (_, a)| sum.checked_add(*a))
            .ok_or(SendError::Overflow)?;
        if fee_from_outputs {
            // As a node's subtractfeefromamount: the fee split evenly, the remainder from the
            // first output.
            let n = paid.len().max(1) as u64;
            for (i, (out, (address, amount))) in paid.iter_mut().zip(outputs).enumerate() {
                let share = DEVNET_TX_FEE / n + if i == 0 { DEVNET_TX_FEE % n } else { 0 };
                let value = out.value.to_sat().checked_sub(share).filter(|v| *v > 0);
                out.value = Amount::from_sat(value.ok_or_else(|| SendError::TooSmall {
                    address: address.clone(),
                    amount: *amount,
                })?);
            }
        }
        let needed = if fee_from_outputs {
            total
        } else {
            total.saturating_add(DEVNET_TX_FEE)
        };
        let chain = self.devnet.lock();
        let mut inputs = Vec::new();
        let mut gathered = 0u64;
        for (point, value) in self.coins(&chain) {
            if gathered >= needed {
                break;
            }
            inputs.push(point);
            gathered += value;
        }
        drop(chain);
        if gathered < needed {
            return Err(SendError::InsufficientFunds {
                needed,
                available: gathered,
            });
        }
        if gathered > needed {
            paid.push(TxOut {
                value: Amount::from_sat(gathered - needed),
                script_pubkey: self.script.clone(),
            });
        }
        let tx = Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: inputs
                .iter()
                .map(|point| TxIn {
                    previous_output: *point,
                    script_sig: ScriptBuf::new(),
                    sequence: Sequence::MAX,
                    witness: Witness::new(),
                })
                .collect(),
            output: paid,
        };
        self.locked.extend(inputs);
        Ok(PreparedPayment {
            txid: tx.compute_txid().to_string(),
            hex: serialize_hex(&tx),
            fee: DEVNET_TX_FEE,
        })
    }

    fn broadcast(&mut self, hex: &str) -> Result<Broadcast, WalletError> {
        let tx = parse_transaction(hex)?;
        let txid = tx.compute_txid();
        let mut chain = self.devnet.lock();
        if chain.broadcast.contains_key(&txid) {
            return Ok(Broadcast::Sent);
        }
        if tx
            .input
            .iter()
            .any(|i| chain.spent.contains(&i.previous_output))
        {
            return Ok(Broadcast::Refused(
                "bad-txns-inputs-missingorspent (-25)".into(),
            ));
        }
        for input in &tx.input {
            chain.spent.insert(input.previous_output);
            self.locked.remove(&input.previous_output);
        }
        let height = chain.height;
        chain.broadcast.insert(txid, (height, tx));
        Ok(Broadcast::Sent)
    }

    fn release(&mut self, hex: &str) -> Result<(), WalletError> {
        for input in parse_transaction(hex)?.input {
            self.locked.remove(&input.previous_output);
        }
        Ok(())
    }

    fn wallet_transaction(&mut self, txid: &str) -> Result<Option<WalletTransaction>, WalletError> {
        let Ok(txid) = txid.parse::<Txid>() else {
            return Ok(None);
        };
        let chain = self.devnet.lock();
        Ok(chain
            .broadcast
            .get(&txid)
            .map(|(sent_at, _)| WalletTransaction {
                // Broadcast above a tip a reorganisation took back: not mined (yet).
                confirmations: chain
                    .height
                    .checked_sub(*sent_at)
                    .and_then(|c| i64::try_from(c).ok())
                    .unwrap_or(0),
                conflicts: Vec::new(),
            }))
    }

    fn pays_any(&mut self, txid: &str, addresses: &[&str]) -> Result<bool, WalletError> {
        let Ok(txid) = txid.parse::<Txid>() else {
            return Ok(false);
        };
        let scripts: Vec<ScriptBuf> = addresses
            .iter()
            .filter_map(|a| self.chain.script_pubkey(a).ok())
            .collect();
        let chain = self.devnet.lock();
        Ok(chain.broadcast.get(&txid).is_some_and(|(_, tx)| {
            tx.output
                .iter()
                .any(|out| scripts.contains(&out.script_pubkey))
        }))
    }

    fn is_valid_address(&mut self, address: &str) -> Result<bool, WalletError> {
        Ok(self.chain.script_pubkey(address).is_ok())
    }

    fn spendable(&mut self) -> Result<u64, WalletError> {
        let chain = self.devnet.lock();
        Ok(self.coins(&chain).iter().map(|(_, v)| v).sum())
    }
}

impl Devnet {
    /// The outputs of a transaction the devnet wallet broadcast, as `(script, amount)`.
    pub fn broadcast_outputs(&self, txid: &str) -> Option<Vec<(ScriptBuf, u64)>> {
        let txid = txid.parse::<Txid>().ok()?;
        let chain = self.lock();
        chain.broadcast.get(&txid).map(|(_, tx)| {
            tx.output
                .iter()
                .map(|o| (o.script_pubkey.clone(), o.value.to_sat()))
                .collect()
        })
    }
}

impl std::fmt::Debug for Devnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let chain = self.lock();
        write!(
            f,
            "Devnet(height {}, tip {})",
            chain.height,
            encode_hex(&reverse_hash(&chain.tip))
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use otedama_core::{CoinbaseBuilder, Difficulty, DifficultyConvention};
    use otedama_hash::{ScanJob, Sha256d};

    /// Mines the devnet's template with the real kernel and submits the block.
    fn mine_one(devnet: &mut Devnet) -> Result<(), SubmitError> {
        let t = devnet.template().expect("template");
        let coinbase = CoinbaseBuilder::new(t.height as u32)
            .extranonce_sizes(4, 4)
            .output(otedama_core::bitcoin::ScriptBuf::new(), t.coinbase_value)
            .build()
            .expect("coinbase");
        let (en1, en2) = ([1u8; 4], [2u8; 4]);
        let txid = coinbase.txid(&en1, &en2).expect("txid");
        let mut header = otedama_core::BlockHeader {
            version: t.version,
            prev_blockhash: t.prev_hash,
            merkle_root: t.merkle_branch().root(&txid),
            time: t.curtime,
            bits: t.bits,
            nonce: 0,
        };
        let target = t.target().expect("target");
        let mut worker = Sha256d::new().worker().expect("worker");
        let mut found = Vec::new();
        let job = ScanJob::header80(header.to_bytes());
        let mut start = 0u64;
        while found.is_empty() {
            worker
                .scan(&job, start..start + 65_536, &target, &mut found)
                .expect("scan");
            start += 65_536;
        }
        header.nonce = found[0].nonce as u32;
        let tx = coinbase.legacy_bytes(&en1, &en2).expect("coinbase bytes");
        devnet.submit_block(&t.assemble_block(&header, &tx))
    }

    fn devnet() -> Devnet {
        let target =
            DifficultyConvention::Bitcoin.target_for(Difficulty::new(1.0 / 4096.0).expect("d"));
        Devnet::new(Box::new(Sha256d::new()), target)
    }

    #[test]
    fn mined_blocks_extend_the_chain() {
        let mut d = devnet();
        let first = d.template().expect("template");
        mine_one(&mut d).expect("block 1");
        mine_one(&mut d).expect("block 2");
        assert_eq!(d.height(), 2);
        assert_eq!(d.accepted().len(), 2);
        let changed = d
            .wait_for_change(&first.id, Duration::from_millis(1))
            .expect("wait")
            .expect("the tip moved");
        assert_eq!(changed.height, 3);
        let current = d.template().expect("template");
        assert!(d
            .wait_for_change(&current.id, Duration::from_millis(10))
            .expect("wait")
            .is_none());
    }

    #[test]
    fn bad_blocks_are_rejected_with_node_reasons() {
        let mut d = devnet();
        let t = d.template().expect("template");
        let reject = |d: &mut Devnet, bytes: &[u8]| match d.submit_block(bytes) {
            Err(SubmitError::Rejected(r)) => r.to_string(),
            other => panic!("expected a rejection, got {other:?}"),
        };
        assert!(reject(&mut d, b"garbage").starts_with("bad-block-encoding"));
        // A header with nonce 0 almost surely misses the target, or its coinbase is wrong.
        let coinbase = CoinbaseBuilder::new(t.height as u32)
            .output(
                otedama_core::bitcoin::ScriptBuf::new(),
                t.coinbase_value + 1,
            )
            .build()
            .expect("coinbase");
        let en = vec![0u8; coinbase.extranonce1_size()];
        let en2 = vec![0u8; coinbase.extranonce2_size()];
        let header = otedama_core::BlockHeader {
            version: t.version,
            prev_blockhash: [9; 32],
            merkle_root: [0; 32],
            time: t.curtime,
            bits: t.bits,
            nonce: 0,
        };
        let tx = coinbase.legacy_bytes(&en, &en2).expect("bytes");
        assert_eq!(
            reject(&mut d, &t.assemble_block(&header, &tx)),
            "bad-prevblk"
        );
        assert_eq!(d.height(), 0);
    }
}
