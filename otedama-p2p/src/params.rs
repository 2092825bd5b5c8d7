//! The parameters of one sharechain, and the consensus id they hash to.

use otedama_core::{CompactTarget, Target};
use otedama_hash::Algorithm;
use sha2::{Digest, Sha256};

use crate::error::ParamsError;

/// Every rule of one sharechain. Nodes whose parameters differ in any field derive different
/// [`ConsensusId`]s, and their shares never mix: the id is folded into every share commitment
/// and proven (never sent) in the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainParams {
    /// The chain's name ("main", "nano", or a private federation's own).
    pub name: String,
    /// The coin ("bitcoin", "litecoin", "devnet").
    pub coin: String,
    /// The proof-of-work algorithm of both the main chain and the shares.
    pub algorithm: Algorithm,
    /// The main chain's network ("main", "test", "regtest", "devnet").
    pub network: String,
    /// The share interval the difficulty aims at, in seconds.
    pub share_interval_secs: u64,
    /// ASERT half-life in seconds: after one half-life of shares arriving twice as slowly as
    /// aimed, the share target doubles.
    pub half_life_secs: u64,
    /// The easiest share target (the minimum share difficulty), as compact bits. The genesis
    /// share starts here.
    pub max_target: CompactTarget,
    /// The PPLNS window's work, in hundredths of the main chain's block work (200: twice the
    /// block work).
    pub window_work_percent: u32,
    /// The PPLNS window's cap in main-chain shares.
    pub window_max_shares: u32,
    /// How many heights back an uncle may sit from the share that includes it.
    pub uncle_depth: u32,
    /// How many uncles one share may include.
    pub max_uncles: u32,
    /// The part of an uncle's weight that goes to its nephew instead, in percent.
    pub uncle_penalty_percent: u32,
    /// How far a share's timestamp may run ahead of the receiving node's clock, in seconds.
    pub future_limit_secs: u64,
    /// The most payout outputs one coinbase carries.
    pub max_outputs: u32,
    /// The smallest payout output, in the coin's smallest unit.
    pub min_output: u64,
}

impl ChainParams {
    /// The default chain for a coin and algorithm: 10 s shares, ASERT half-life of 60 share
    /// intervals, a window of twice the block work capped at 2,160 shares, uncles up to 3
    /// deep and 3 per share at a 10 % penalty, at most 200 outputs of at least 10x the dust
    /// limit (546 units, so 5,460).
    pub fn main(coin: &str, algorithm: Algorithm, network: &str, max_target: Target) -> Self {
        ChainParams {
            name: "main".to_owned(),
            coin: coin.to_owned(),
            algorithm,
            network: network.to_owned(),
            share_interval_secs: 10,
            half_life_secs: 600,
            max_target: max_target.to_compact(),
            window_work_percent: 200,
            window_max_shares: 2160,
            uncle_depth: 3,
            max_uncles: 3,
            uncle_penalty_percent: 10,
            future_limit_secs: 120,
            max_outputs: 200,
            min_output: 5_460,
        }
    }

    /// The small-miner tier: the same rules at 30 s shares (a third of the difficulty, so a
    /// small miner lands three times as many shares in the window), as a separate chain.
    pub fn nano(coin: &str, algorithm: Algorithm, network: &str, max_target: Target) -> Self {
        ChainParams {
            name: "nano".to_owned(),
            share_interval_secs: 30,
            half_life_secs: 1800,
            window_max_shares: 720,
            ..ChainParams::main(coin, algorithm, network, max_target)
        }
    }

    /// Checks that the parameters make a chain that can run.
    pub fn validate(&self) -> Result<(), ParamsError> {
        let bad = |what: &'static str| Err(ParamsError::Invalid { what });
        if self.name.is_empty() || self.name.len() > 64 {
            return bad("the chain name must be 1 to 64 bytes");
        }
        if self.share_interval_secs == 0 || self.share_interval_secs > 3_600 {
            return bad("the share interval must be 1 to 3600 seconds");
        }
        if self.half_life_secs < self.share_interval_secs {
            return bad("the half-life must be at least one share interval");
        }
        if self.max_target.decode().is_err() {
            return bad("the easiest share target does not decode");
        }
        if self.window_work_percent == 0 || self.window_max_shares < 2 {
            return bad("the window must hold some work and at least two shares");
        }
        if self.window_max_shares > 100_000 {
            return bad("the window holds at most 100,000 shares");
        }
        if self.uncle_depth > 16 || self.max_uncles > 16 {
            return bad("uncles reach at most 16 deep, 16 per share");
        }
        if self.uncle_penalty_percent > 100 {
            return bad("the uncle penalty is a percentage");
        }
        if self.max_outputs == 0 || self.max_outputs > 2_000 {
            return bad("a coinbase carries 1 to 2000 payout outputs");
        }
        Ok(())
    }

    /// The id every rule above hashes to.
    pub fn consensus_id(&self) -> ConsensusId {
        let mut h = Sha256::new();
        h.update(b"otedama/sharechain/v1");
        for text in [
            self.name.as_str(),
            self.coin.as_str(),
            self.algorithm.name(),
            self.network.as_str(),
        ] {
            h.update((text.len() as u32).to_le_bytes());
            h.update(text.as_bytes());
        }
        for n in [
            self.share_interval_secs,
            self.half_life_secs,
            u64::from(self.max_target.to_consensus()),
            u64::from(self.window_work_percent),
            u64::from(self.window_max_shares),
            u64::from(self.uncle_depth),
            u64::from(self.max_uncles),
            u64::from(self.uncle_penalty_percent),
            self.future_limit_secs,
            u64::from(self.max_outputs),
            self.min_output,
        ] {
            h.update(n.to_le_bytes());
        }
        ConsensusId(h.finalize().into())
    }

    /// How many heights below the tip a node keeps and syncs: two windows plus the uncle
    /// depth, so every share it verifies has its whole window at hand.
    pub fn horizon(&self) -> u64 {
        2 * u64::from(self.window_max_shares) + u64::from(self.uncle_depth) + 1
    }

    /// The easiest share target, decoded.
    pub fn easiest_target(&self) -> Target {
        self.max_target.decode().unwrap_or(Target::MAX)
    }
}

/// The hash of a chain's parameters. It is secret-like: shares commit to it and the
/// handshake proves it, so a private chain's id works as its key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConsensusId(pub [u8; 32]);

impl ConsensusId {
    /// The id's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for ConsensusId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the whole id: it doubles as a private chain's key.
        write!(f, "ConsensusId({:02x}{:02x}..)", self.0[0], self.0[1])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> ChainParams {
        ChainParams::main("litecoin", Algorithm::Scrypt, "regtest", Target::MAX)
    }

    #[test]
    fn every_field_changes_the_id() {
        let base = params();
        assert!(base.validate().is_ok());
        let id = base.consensus_id();
        let variants: Vec<ChainParams> = vec![
            ChainParams {
                name: "nano".into(),
                ..base.clone()
            },
            ChainParams {
                coin: "bitcoin".into(),
                ..base.clone()
            },
            ChainParams {
                algorithm: Algorithm::Sha256d,
                ..base.clone()
            },
            ChainParams {
                network: "main".into(),
                ..base.clone()
            },
            ChainParams {
                share_interval_secs: 11,
                ..base.clone()
            },
            ChainParams {
                half_life_secs: 601,
                ..base.clone()
            },
            ChainParams {
                max_target: CompactTarget::from_consensus(0x1d00ffff),
                ..base.clone()
            },
            ChainParams {
                window_work_percent: 300,
                ..base.clone()
            },
            ChainParams {
                window_max_shares: 2159,
                ..base.clone()
            },
            ChainParams {
                uncle_depth: 2,
                ..base.clone()
            },
            ChainParams {
                max_uncles: 5,
                ..base.clone()
            },
            ChainParams {
                uncle_penalty_percent: 20,
                ..base.clone()
            },
            ChainParams {
                future_limit_secs: 60,
                ..base.clone()
            },
            ChainParams {
                max_outputs: 100,
                ..base.clone()
            },
            ChainParams {
                min_output: 1,
                ..base.clone()
            },
        ];
        let mut seen = std::collections::BTreeSet::from([id]);
        for v in variants {
            assert!(seen.insert(v.consensus_id()), "{v:?} kept the id");
        }
        // The name and the coin are length-prefixed: moving a byte between them changes the id.
        let a = ChainParams {
            name: "ab".into(),
            coin: "c".into(),
            ..base.clone()
        };
        let b = ChainParams {
            name: "a".into(),
            coin: "bc".into(),
            ..base
        };
        assert_ne!(a.consensus_id(), b.consensus_id());
    }

    #[test]
    fn nonsense_is_refused() {
        let base = params();
        for bad in [
            ChainParams {
                share_interval_secs: 0,
                ..base.clone()
            },
            ChainParams {
                half_life_secs: 1,
                ..base.clone()
            },
            ChainParams {
                window_max_shares: 1,
                ..base.clone()
            },
            ChainParams {
                uncle_penalty_percent: 101,
                ..base.clone()
            },
            ChainParams {
                max_outputs: 0,
                ..base.clone()
            },
            ChainParams {
                name: String::new(),
                ..base
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
