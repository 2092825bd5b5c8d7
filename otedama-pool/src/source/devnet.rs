//! The embedded devnet: an in-process chain with an easy, adjustable target, so a pool works
//! on a fresh machine with no node. Blocks go through the same template, validation and
//! submission path as a real node's, and the devnet checks them as a node would.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use otedama_core::bitcoin::consensus::deserialize;
use otedama_core::bitcoin::Block;
use otedama_core::{encode_hex, reverse_hash, sha256d, BlockTemplate, CompactTarget, Target};
use otedama_hash::PowAlgorithm;

use super::{BlockRejection, BlockSubmitter, ChainView, SourceError, SubmitError, TemplateSource};

/// 50 coins, in the smallest unit, for every devnet block.
pub const DEVNET_REWARD: u64 = 50 * 100_000_000;

#[derive(Debug)]
struct Chain {
    tip: [u8; 32],
    height: u64,
    last_time: u32,
    accepted: Vec<[u8; 32]>,
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
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn height(&self) -> u64 {
        self.lock().height
    }

    /// Hashes of the accepted blocks, internal order.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn accepted(&self) -> Vec<[u8; 32]> {
        self.lock().accepted.clone()
    }

    fn check(&self, chain: &Chain, bytes: &[u8]) -> Result<[u8; 32], String> {
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
        Ok(hash)
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
        // The devnet never reorganises: a block it accepted stays on its chain.
        let chain = self.lock();
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
        let hash = self
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
        drop(chain);
        self.shared.changed.notify_all();
        Ok(())
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
