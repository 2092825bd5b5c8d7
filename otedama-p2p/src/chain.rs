//! The sharechain: every share a node holds, validated, with fork choice by cumulative work.

use std::collections::{BTreeMap, HashMap};

use bitcoin::ScriptBuf;
use otedama_core::rx::{RxBlob, RX_NONCE_OFFSET};
use otedama_core::{monero_target, sha256d, BlockHeader, MerkleBranch, Target, Work, U256};

use crate::asert::next_target;
use crate::error::ShareError;
use crate::params::{ChainParams, ConsensusId};
use crate::share::{
    build_coinbase, coinbase_root, rx_coinbase, BitcoinProof, Layout, MainProof, RxProof, Share,
    ShareId, ShareInfo,
};
use crate::window::{payout_outputs, share_work, window_parts, window_weights, Ancestry};

/// How far a share was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// Every rule, the coinbase included.
    Full,
    /// Every rule except the coinbase, whose window reaches below what this node synced. Only
    /// shares near the bottom of a freshly synced chain end up here.
    Partial,
}

/// A share in the chain with what the node derived from it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The share.
    pub share: Share,
    /// Its own work.
    pub work: u128,
    /// The work of the chain ending here: the parent's, this share's, and its uncles'.
    pub chain_work: U256,
    /// How far it was checked.
    pub verification: Verification,
}

/// What adding a share did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Added {
    /// The share.
    pub id: ShareId,
    /// How far it was checked.
    pub verification: Verification,
    /// The best tip changed.
    pub new_tip: bool,
    /// The best tip moved to another branch: the old tip and how many of its shares left the
    /// best chain.
    pub reorg: Option<(ShareId, u64)>,
}

/// What a node needs from the main chain to build a share: the block it would be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MainWork {
    /// The block header with everything but the merkle root and the nonce: version, previous
    /// block, time and bits.
    pub header: BlockHeader,
    /// The block's height.
    pub height: u32,
    /// The reward the coinbase may pay (subsidy plus fees).
    pub reward: u64,
    /// The witness merkle root when the block has segwit transactions.
    pub witness_root: Option<[u8; 32]>,
    /// The coinbase's merkle branch.
    pub branch: MerkleBranch,
}

/// The next share a node's miners work on: its sharechain data and the coinbase every peer
/// will rebuild for it.
#[derive(Debug, Clone)]
pub struct ShareTemplate {
    /// The sharechain data.
    pub info: ShareInfo,
    /// The payout outputs.
    pub outputs: Vec<(ScriptBuf, u64)>,
    /// The coinbase, split around an extranonce slot of `extranonce_len` bytes.
    pub coinbase: otedama_core::Coinbase,
    /// The main-chain block the share is part of.
    pub main: MainWork,
    /// The consensus id the commitment is under.
    pub chain: ConsensusId,
}

impl ShareTemplate {
    /// The share target.
    pub fn target(&self) -> Target {
        self.info.target()
    }

    /// The header for an extranonce, with the nonce still to find.
    pub fn header(&self, extranonce: &[u8]) -> Result<BlockHeader, ShareError> {
        let root = coinbase_root(
            &self.info,
            &self.chain,
            &self.outputs,
            extranonce,
            self.main.witness_root,
            &self.main.branch,
        )
        .map_err(|reason| ShareError::Invalid {
            id: ShareId::NONE,
            reason,
        })?;
        Ok(BlockHeader {
            merkle_root: root,
            ..self.main.header
        })
    }

    /// The share for a solved header (its nonce, time or version rolled by the miner).
    pub fn finish(&self, header: BlockHeader, extranonce: &[u8]) -> Share {
        Share {
            main: MainProof::Bitcoin(BitcoinProof {
                header,
                extranonce: extranonce.to_vec(),
                witness_root: self.main.witness_root,
                branch: self.main.branch.clone(),
            }),
            info: self.info.clone(),
        }
    }
}

/// What a node needs from a RandomX main chain to build a share: the block it would be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RxMainWork {
    /// The node's hashing blob for the block (version, time and parent; its nonce and tree
    /// root are replaced).
    pub blob: Vec<u8>,
    /// The block's height.
    pub height: u64,
    /// The main chain's difficulty (Monero convention).
    pub difficulty: u64,
    /// The reward the coinbase may pay.
    pub reward: u64,
}

/// The next RandomX share a node's miners work on, for one payout and one session's reserved
/// bytes: the coinbase every peer will rebuild and the blob that commits to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RxShareTemplate {
    /// The sharechain data.
    pub info: ShareInfo,
    /// The payout outputs.
    pub outputs: Vec<(ScriptBuf, u64)>,
    /// The devnet coinbase, to submit with a found block.
    pub coinbase: Vec<u8>,
    /// The hashing blob, nonce zero, committing to `coinbase`.
    pub blob: Vec<u8>,
    /// The reserved bytes written into the coinbase.
    pub reserved: [u8; 8],
    /// The main chain's difficulty.
    pub difficulty: u64,
}

impl RxShareTemplate {
    /// The share target.
    pub fn target(&self) -> Target {
        self.info.target()
    }

    /// The share for the blob solved with `nonce`.
    pub fn finish(&self, nonce: u32) -> Share {
        let mut blob = self.blob.clone();
        if let Some(slot) = blob.get_mut(RX_NONCE_OFFSET..RX_NONCE_OFFSET + 4) {
            slot.copy_from_slice(&nonce.to_le_bytes());
        }
        Share {
            main: MainProof::RandomX(RxProof {
                blob,
                reserved: self.reserved,
                difficulty: self.difficulty,
            }),
            info: self.info.clone(),
        }
    }
}

/// The shares a node holds, validated, and its best tip.
#[derive(Debug)]
pub struct Sharechain {
    params: ChainParams,
    id: ConsensusId,
    shares: HashMap<ShareId, Entry>,
    by_height: BTreeMap<u64, Vec<ShareId>>,
    tip: Option<ShareId>,
}

struct Infos<'a>(&'a HashMap<ShareId, Entry>);

impl Ancestry for Infos<'_> {
    fn info(&self, id: &ShareId) -> Option<&ShareInfo> {
        self.0.get(id).map(|e| &e.share.info)
    }
}

impl Sharechain {
    /// An empty chain with these rules.
    pub fn new(params: ChainParams) -> Self {
        let id = params.consensus_id();
        Sharechain {
            params,
            id,
            shares: HashMap::new(),
            by_height: BTreeMap::new(),
            tip: None,
        }
    }

    /// The chain's rules.
    pub fn params(&self) -> &ChainParams {
        &self.params
    }

    /// The chain's consensus id.
    pub fn consensus_id(&self) -> &ConsensusId {
        &self.id
    }

    /// The best tip.
    pub fn tip(&self) -> Option<&Entry> {
        self.tip.and_then(|id| self.shares.get(&id))
    }

    /// A held share.
    pub fn get(&self, id: &ShareId) -> Option<&Entry> {
        self.shares.get(id)
    }

    /// Whether the share is held.
    pub fn contains(&self, id: &ShareId) -> bool {
        self.shares.contains_key(id)
    }

    /// How many shares are held.
    pub fn len(&self) -> usize {
        self.shares.len()
    }

    /// Whether no share is held.
    pub fn is_empty(&self) -> bool {
        self.shares.is_empty()
    }

    /// Every share held, off the best chain too, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.shares.values()
    }

    /// The best chain from the tip back, at most `count` shares.
    pub fn best_chain(&self, count: usize) -> Vec<ShareId> {
        self.ancestors(self.tip, count)
    }

    /// `from` and its parents, at most `count` shares, newest first.
    pub fn ancestors(&self, from: Option<ShareId>, count: usize) -> Vec<ShareId> {
        let mut out = Vec::new();
        let mut at = from;
        while let Some(id) = at {
            if out.len() >= count {
                break;
            }
            let Some(entry) = self.shares.get(&id) else {
                break;
            };
            out.push(id);
            at = (entry.share.info.parent != ShareId::NONE).then_some(entry.share.info.parent);
        }
        out
    }

    /// The share at `height` on the chain ending at `from`, if held.
    fn ancestor_at(&self, from: ShareId, height: u64) -> Option<ShareId> {
        let mut id = from;
        loop {
            let e = self.shares.get(&id)?;
            let h = e.share.info.height;
            if h == height {
                return Some(id);
            }
            if h < height || e.share.info.parent == ShareId::NONE {
                return None;
            }
            id = e.share.info.parent;
        }
    }

    /// The payout outputs of the coinbase for `info`, or `None` when its window reaches below
    /// what this node holds.
    pub fn outputs_for(
        &self,
        info: &ShareInfo,
        main_bits_target: &Target,
    ) -> Option<Vec<(ScriptBuf, u64)>> {
        let main_work = Work::from_target(main_bits_target).as_u256();
        window_weights(&self.params, &Infos(&self.shares), info, main_work)
            .ok()
            .map(|w| payout_outputs(&self.params, &w, info.reward))
    }

    /// The median of the last 11 timestamps ending at `id` (fewer after the genesis), or
    /// `None` when the chain held here is cut off above the eleventh: the median of a shorter
    /// list is not the one the share's miner saw, and judging by it would refuse valid shares
    /// near the bottom of a synced chain.
    fn median_time_past(&self, id: ShareId) -> Option<u64> {
        let ids = self.ancestors(Some(id), 11);
        let reaches_genesis = ids
            .last()
            .and_then(|a| self.shares.get(a))
            .is_some_and(|e| e.share.info.parent == ShareId::NONE);
        if ids.len() < 11 && !reaches_genesis {
            return None;
        }
        let mut times: Vec<u64> = ids
            .iter()
            .filter_map(|a| self.shares.get(a).map(|e| e.share.info.timestamp))
            .collect();
        times.sort_unstable();
        times.get(times.len() / 2).copied()
    }

    /// The target a child of `parent` must meet.
    pub fn target_after(&self, parent: &ShareInfo) -> otedama_core::CompactTarget {
        next_target(
            self.params.max_target,
            parent.anchor_time,
            parent.height,
            parent.timestamp,
            self.params.share_interval_secs,
            self.params.half_life_secs,
        )
    }

    /// Adds a share whose proof of work the caller checked ([`Share::check_pow`]); `now` is
    /// the node's clock in Unix seconds, for the future-time limit.
    pub fn add(&mut self, share: Share, now: u64) -> Result<Added, ShareError> {
        self.insert(share, now, false)
    }

    /// Adds the bottom share of a chain synced from a peer into an empty node: its parent is
    /// not fetched (it lies below the sync horizon), so the share is only partially checked,
    /// as are the shares above it whose window reaches below it.
    pub fn add_base(&mut self, share: Share, now: u64) -> Result<Added, ShareError> {
        self.insert(share, now, true)
    }

    fn insert(&mut self, share: Share, now: u64, base: bool) -> Result<Added, ShareError> {
        let id = share.id();
        if self.shares.contains_key(&id) {
            return Err(ShareError::Duplicate { id });
        }
        let info = &share.info;
        let invalid = |reason: &str| ShareError::Invalid {
            id,
            reason: reason.to_owned(),
        };
        if info.payout.is_empty() {
            return Err(invalid("no payout script"));
        }
        if info.timestamp > now.saturating_add(self.params.future_limit_secs) {
            return Err(invalid("timestamp too far in the future"));
        }
        if info.uncles.len() > self.params.max_uncles as usize {
            return Err(invalid("too many uncles"));
        }
        if info.uncles.windows(2).any(|w| w[0] >= w[1]) {
            return Err(invalid("uncles not sorted and unique"));
        }
        if share.layout() != Layout::of(self.params.algorithm) {
            return Err(invalid("a share in another chain's layout"));
        }
        let main_target = share.main_target().map_err(|e| invalid(&e))?;
        let share_target = info.target();
        if info.bits.decode().is_err() || share_target.as_u256().is_zero() {
            return Err(invalid("share bits do not decode"));
        }
        let work = share_work(&share_target);
        let mut uncle_work = U256::ZERO;
        let mut partial = false;
        let parent_work;
        if info.parent == ShareId::NONE {
            if info.height != 0 || !info.uncles.is_empty() || info.anchor_time != info.timestamp {
                return Err(invalid(
                    "a genesis share sits at height 0, anchors its own time, has no uncles",
                ));
            }
            if info.bits != self.params.max_target {
                return Err(invalid("a genesis share starts at the easiest target"));
            }
            parent_work = U256::ZERO;
        } else if let Some(parent) = self.shares.get(&info.parent) {
            let p = &parent.share.info;
            if info.height != p.height.saturating_add(1) {
                return Err(invalid("height is not the parent's plus one"));
            }
            if info.anchor_time != p.anchor_time {
                return Err(invalid("anchor time differs from the parent's"));
            }
            if info.bits != self.target_after(p) {
                return Err(invalid("share target is not the difficulty rule's"));
            }
            if self
                .median_time_past(info.parent)
                .is_some_and(|mtp| info.timestamp <= mtp)
            {
                return Err(invalid("timestamp not after the median of the last 11"));
            }
            parent_work = parent.chain_work;
            partial = parent.verification == Verification::Partial;
            for uncle_id in &info.uncles {
                let Some(uncle) = self.shares.get(uncle_id) else {
                    if partial {
                        // Near the bottom of a synced chain an uncle may lie below it.
                        continue;
                    }
                    return Err(ShareError::Missing {
                        id,
                        missing: *uncle_id,
                    });
                };
                self.check_uncle(id, info, uncle)?;
                uncle_work = uncle_work.saturating_add(U256::from_u128(uncle.work));
            }
        } else if base {
            if !self.shares.is_empty() {
                return Err(invalid("a base share only starts an empty chain"));
            }
            partial = true;
            parent_work = U256::ZERO;
        } else {
            return Err(ShareError::Missing {
                id,
                missing: info.parent,
            });
        }

        let verification =
            if base && info.parent != ShareId::NONE && !self.shares.contains_key(&info.parent) {
                Verification::Partial
            } else {
                match self.outputs_for(info, &main_target) {
                    Some(outputs) => {
                        share.check_binding(&self.id, &outputs)?;
                        Verification::Full
                    }
                    None if partial => Verification::Partial,
                    None => return Err(invalid("window reaches below the chain")),
                }
            };

        let chain_work = parent_work
            .saturating_add(U256::from_u128(work))
            .saturating_add(uncle_work);
        let height = info.height;
        self.shares.insert(
            id,
            Entry {
                share,
                work,
                chain_work,
                verification,
            },
        );
        self.by_height.entry(height).or_default().push(id);

        let old_tip = self.tip;
        let better = match old_tip.and_then(|t| self.shares.get(&t)) {
            None => true,
            Some(t) => {
                chain_work > t.chain_work || (chain_work == t.chain_work && id < t.share.id())
            }
        };
        let mut reorg = None;
        if better {
            if let Some(old) = old_tip {
                let parent = self.shares.get(&id).map(|e| e.share.info.parent);
                if parent != Some(old) {
                    reorg = Some((old, self.reorg_depth(old, id)));
                }
            }
            self.tip = Some(id);
            self.prune();
        }
        Ok(Added {
            id,
            verification,
            new_tip: better,
            reorg,
        })
    }

    fn check_uncle(&self, id: ShareId, info: &ShareInfo, uncle: &Entry) -> Result<(), ShareError> {
        let invalid = |reason: &str| ShareError::Invalid {
            id,
            reason: reason.to_owned(),
        };
        let u = &uncle.share.info;
        if u.height >= info.height || info.height - u.height > u64::from(self.params.uncle_depth) {
            return Err(invalid("uncle outside the allowed depth"));
        }
        if self.ancestor_at(info.parent, u.height) == Some(uncle.share.id()) {
            return Err(invalid("uncle is an ancestor"));
        }
        if u.height == 0 || self.ancestor_at(info.parent, u.height - 1) != Some(u.parent) {
            return Err(invalid("uncle does not branch off this chain"));
        }
        // No ancestor within the depth may have included it already.
        let uid = uncle.share.id();
        for a in self.ancestors(Some(info.parent), self.params.uncle_depth as usize) {
            if let Some(e) = self.shares.get(&a) {
                if e.share.info.height <= u.height {
                    break;
                }
                if e.share.info.uncles.contains(&uid) {
                    return Err(invalid("uncle already included"));
                }
            }
        }
        Ok(())
    }

    fn reorg_depth(&self, old: ShareId, new: ShareId) -> u64 {
        let (Some(o), Some(n)) = (self.shares.get(&old), self.shares.get(&new)) else {
            return 0;
        };
        let (mut a, mut b) = (o, n);
        let mut depth = 0u64;
        while a.share.id() != b.share.id() {
            if a.share.info.height >= b.share.info.height {
                depth += 1;
                match self.shares.get(&a.share.info.parent) {
                    Some(p) => a = p,
                    None => return depth,
                }
            } else {
                match self.shares.get(&b.share.info.parent) {
                    Some(p) => b = p,
                    None => return depth,
                }
            }
        }
        depth
    }

    /// Drops the shares below the horizon under the tip.
    fn prune(&mut self) {
        let Some(tip) = self.tip() else { return };
        let floor = tip.share.info.height.saturating_sub(self.params.horizon());
        while let Some((&h, _)) = self.by_height.first_key_value() {
            if h >= floor {
                break;
            }
            if let Some(ids) = self.by_height.remove(&h) {
                for id in ids {
                    self.shares.remove(&id);
                }
            }
        }
    }

    /// Side shares a new share on the tip may include as uncles: within the depth, branching
    /// off the best chain, not yet included; the heaviest first, at most the chain's limit,
    /// returned sorted.
    pub fn uncle_candidates(&self) -> Vec<ShareId> {
        let Some(tip) = self.tip() else {
            return Vec::new();
        };
        let new_height = tip.share.info.height + 1;
        let tip_id = tip.share.id();
        let probe = ShareInfo {
            parent: tip_id,
            uncles: Vec::new(),
            height: new_height,
            ..tip.share.info.clone()
        };
        let low = new_height.saturating_sub(u64::from(self.params.uncle_depth));
        let mut found: Vec<(u128, ShareId)> = self
            .by_height
            .range(low..new_height)
            .flat_map(|(_, ids)| ids.iter())
            .filter_map(|uid| {
                let e = self.shares.get(uid)?;
                self.check_uncle(ShareId::NONE, &probe, e).ok()?;
                Some((e.work, *uid))
            })
            .collect();
        found.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        let mut chosen: Vec<ShareId> = found
            .into_iter()
            .take(self.params.max_uncles as usize)
            .map(|(_, id)| id)
            .collect();
        chosen.sort();
        chosen
    }

    /// The next share for a miner paid at `payout`, on the best tip (or a genesis share on an
    /// empty chain), built on `main` at time `now`.
    pub fn template(
        &self,
        payout: &[u8],
        main: MainWork,
        now: u64,
        extranonce_len: usize,
    ) -> Result<ShareTemplate, ShareError> {
        self.template_base(main, now, extranonce_len)?
            .for_payout(payout)
    }

    /// Everything the next share on the best tip needs except its payout script: one walk of
    /// the window that then builds a [`ShareTemplate`] for any miner cheaply
    /// ([`TemplateBase::for_payout`]), with no access to the chain.
    pub fn template_base(
        &self,
        main: MainWork,
        now: u64,
        extranonce_len: usize,
    ) -> Result<TemplateBase, ShareError> {
        let main_target = main.header.bits.decode().map_err(|e| ShareError::Invalid {
            id: ShareId::NONE,
            reason: format!("main-chain bits: {e}"),
        })?;
        let (height, reward) = (main.height, main.reward);
        self.base(main, height, reward, &main_target, now, extranonce_len)
    }

    /// The RandomX counterpart of [`Sharechain::template_base`]: the next share on the best
    /// tip for any payout ([`TemplateBase::for_rx_payout`]). Only a RandomX chain takes it.
    pub fn rx_template_base(
        &self,
        main: RxMainWork,
        now: u64,
    ) -> Result<TemplateBase<RxMainWork>, ShareError> {
        let invalid = |reason: &str| ShareError::Invalid {
            id: ShareId::NONE,
            reason: reason.to_owned(),
        };
        if Layout::of(self.params.algorithm) != Layout::RandomX {
            return Err(invalid("randomx work for a chain of another algorithm"));
        }
        if main.difficulty == 0 {
            return Err(invalid("a main-chain difficulty of zero"));
        }
        let height =
            u32::try_from(main.height).map_err(|_| invalid("a main-chain height past 2^32"))?;
        let target = monero_target(main.difficulty);
        let reward = main.reward;
        self.base(main, height, reward, &target, now, 0)
    }

    fn base<M>(
        &self,
        main: M,
        main_height: u32,
        reward: u64,
        main_target: &Target,
        now: u64,
        extranonce_len: usize,
    ) -> Result<TemplateBase<M>, ShareError> {
        let info = match self.tip() {
            None => ShareInfo {
                parent: ShareId::NONE,
                uncles: Vec::new(),
                height: 0,
                timestamp: now,
                anchor_time: now,
                bits: self.params.max_target,
                main_height,
                reward,
                payout: Vec::new(),
            },
            Some(tip) => {
                let p = &tip.share.info;
                ShareInfo {
                    parent: tip.share.id(),
                    uncles: self.uncle_candidates(),
                    height: p.height + 1,
                    timestamp: now.max(self.median_time_past(tip.share.id()).map_or(0, |m| m + 1)),
                    anchor_time: p.anchor_time,
                    bits: self.target_after(p),
                    main_height,
                    reward,
                    payout: Vec::new(),
                }
            }
        };
        let main_work = Work::from_target(main_target).as_u256();
        let (weights, own) = window_parts(&self.params, &Infos(&self.shares), &info, main_work)
            .map_err(|_| ShareError::Invalid {
                id: ShareId::NONE,
                reason: "the chain is not synced deep enough to pay a window".to_owned(),
            })?;
        Ok(TemplateBase {
            info,
            weights,
            own,
            main,
            chain: self.id,
            params: self.params.clone(),
            extranonce_len,
        })
    }
}

/// The next share on a tip, for any payout script: its sharechain data, the window's weights
/// without the new share's own, and the main-chain work it goes into
/// ([`Sharechain::template_base`]).
#[derive(Debug, Clone)]
pub struct TemplateBase<M = MainWork> {
    info: ShareInfo,
    weights: BTreeMap<Vec<u8>, u128>,
    own: u128,
    main: M,
    chain: ConsensusId,
    params: ChainParams,
    extranonce_len: usize,
}

impl<M> TemplateBase<M> {
    /// The share target every template from this base must meet.
    pub fn target(&self) -> Target {
        self.info.target()
    }

    /// The main-chain work the shares go into.
    pub fn main(&self) -> &M {
        &self.main
    }

    /// The sharechain height of the share.
    pub fn height(&self) -> u64 {
        self.info.height
    }

    /// The parent share.
    pub fn parent(&self) -> ShareId {
        self.info.parent
    }

    /// The least hashrate (expected hashes per second) at which a miner's expected part of
    /// a block is twice the output floor, the chain's hashrate judged from this share's
    /// target and the share interval. A miner below it mines through a node (on shares
    /// paying the node, which pays it from its ledger): its own output could fall under the
    /// floor, and its part would go to the others.
    pub fn direct_hashrate(&self) -> f64 {
        let interval = self.params.share_interval_secs.max(1) as f64;
        let chain_hashrate = share_work(&self.info.target()) as f64 / interval;
        let reward = self.info.reward.max(1) as f64;
        2.0 * self.params.min_output as f64 * chain_hashrate / reward
    }

    /// The sharechain data and the payout outputs of the share for a miner paid at `payout`.
    fn paying(&self, payout: &[u8]) -> (ShareInfo, Vec<(ScriptBuf, u64)>) {
        let info = ShareInfo {
            payout: payout.to_vec(),
            ..self.info.clone()
        };
        let mut weights = self.weights.clone();
        let slot = weights.entry(payout.to_vec()).or_insert(0);
        *slot = slot.saturating_add(self.own);
        let outputs = payout_outputs(&self.params, &weights, info.reward);
        (info, outputs)
    }
}

impl TemplateBase<RxMainWork> {
    /// The template for a miner paid at `payout` (an address, as text) whose session writes
    /// `reserved` into the coinbase: the coinbase every peer rebuilds, and the node's blob
    /// with its tree root.
    pub fn for_rx_payout(
        &self,
        payout: &[u8],
        reserved: [u8; 8],
    ) -> Result<RxShareTemplate, ShareError> {
        let (info, outputs) = self.paying(payout);
        let coinbase =
            rx_coinbase(&info, &self.chain, &outputs, reserved, self.main.difficulty).to_bytes();
        let mut blob = RxBlob::parse(&self.main.blob).map_err(|e| ShareError::Invalid {
            id: ShareId::NONE,
            reason: format!("the node's hashing blob: {e}"),
        })?;
        blob.nonce = 0;
        blob.tree_root = sha256d(&coinbase);
        blob.tx_count = 1;
        Ok(RxShareTemplate {
            info,
            outputs,
            coinbase,
            blob: blob.to_bytes(),
            reserved,
            difficulty: self.main.difficulty,
        })
    }
}

impl TemplateBase {
    /// The template for a miner paid at `payout`: the same coinbase
    /// [`Sharechain::template`] builds, without walking the chain again.
    pub fn for_payout(&self, payout: &[u8]) -> Result<ShareTemplate, ShareError> {
        let (info, outputs) = self.paying(payout);
        let coinbase = build_coinbase(
            &info,
            &self.chain,
            &outputs,
            self.extranonce_len,
            self.main.witness_root,
        )
        .map_err(|reason| ShareError::Invalid {
            id: ShareId::NONE,
            reason,
        })?;
        Ok(ShareTemplate {
            info,
            outputs,
            coinbase,
            main: self.main.clone(),
            chain: self.chain,
        })
    }
}
