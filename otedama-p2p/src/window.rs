//! The PPLNS window and the payout outputs every node derives from it.
//!
//! The window ending at a share starts with the share itself and walks back along its
//! parents. Each share on that path weighs its work; each uncle it includes weighs its work
//! less the penalty, and the penalty goes to the including share (the nephew). The walk stops
//! once the work seen (uncles counted in full) reaches the chain's multiple of the main
//! chain's block work, or after the chain's share cap, or at the genesis.
//!
//! The block reward is split over the window's payout scripts with `otedama-rewards`' exact
//! integer split; then at most `max_outputs` scripts of at least `min_output` are kept, and the
//! reward is split again over those alone, so the outputs always add up to the reward. Outputs
//! are ordered by script bytes. Every step is integer and ordered, so every node builds the
//! same coinbase byte for byte.

use std::collections::BTreeMap;

use bitcoin::ScriptBuf;
use otedama_core::{Target, Work, U256};
use otedama_rewards::split_proportionally_by;

use crate::params::ChainParams;
use crate::share::{ShareId, ShareInfo};

/// Read access to the shares a window walks over.
pub trait Ancestry {
    /// The info of a known share.
    fn info(&self, id: &ShareId) -> Option<&ShareInfo>;
}

/// The window reached a share whose parent this node does not hold (the bottom of what it
/// synced), so the payouts cannot be computed here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowGap {
    /// The first unknown share.
    pub missing: ShareId,
}

/// The work a share of this target stands for, as the window's weight unit.
pub fn share_work(target: &Target) -> u128 {
    Work::from_target(target)
        .as_u256()
        .to_u128()
        .unwrap_or(u128::MAX)
}

/// The weight of each payout script in the window ending at `tip` (not yet in the chain, or
/// already in it), for a main chain whose block needs `main_work` hashes.
pub fn window_weights(
    params: &ChainParams,
    chain: &dyn Ancestry,
    tip: &ShareInfo,
    main_work: U256,
) -> Result<BTreeMap<Vec<u8>, u128>, WindowGap> {
    let (mut weights, own) = window_parts(params, chain, tip, main_work)?;
    add(&mut weights, &tip.payout, own);
    Ok(weights)
}

/// The window ending at `tip` in two parts: the weights of everyone but the tip's own payout
/// (its uncles' parts and every share below it), and the tip's own weight. Which shares the
/// window holds does not depend on the tip's payout script, so one walk serves every payout.
pub fn window_parts(
    params: &ChainParams,
    chain: &dyn Ancestry,
    tip: &ShareInfo,
    main_work: U256,
) -> Result<(BTreeMap<Vec<u8>, u128>, u128), WindowGap> {
    let limit = main_work
        .checked_mul(U256::from_u64(u64::from(params.window_work_percent)))
        .unwrap_or(U256::MAX)
        .div_rem_u64(100)
        .map(|(q, _)| q)
        .unwrap_or(U256::MAX);
    let keep = u128::from(100 - params.uncle_penalty_percent.min(100));
    let mut weights: BTreeMap<Vec<u8>, u128> = BTreeMap::new();
    let mut tip_own: Option<u128> = None;
    let mut seen = U256::ZERO;
    let mut count: u32 = 0;
    let mut current = tip;
    loop {
        let work = share_work(&current.target());
        let mut own = work;
        seen = seen.saturating_add(U256::from_u128(work));
        for uncle_id in &current.uncles {
            let uncle = chain
                .info(uncle_id)
                .ok_or(WindowGap { missing: *uncle_id })?;
            let uw = share_work(&uncle.target());
            seen = seen.saturating_add(U256::from_u128(uw));
            // uw * keep / 100 without overflow: uw / 100 * keep + (uw % 100) * keep / 100.
            let uncle_part = (uw / 100) * keep + (uw % 100) * keep / 100;
            add(&mut weights, &uncle.payout, uncle_part);
            own = own.saturating_add(uw - uncle_part);
        }
        match tip_own {
            None => tip_own = Some(own),
            Some(_) => add(&mut weights, &current.payout, own),
        }
        count += 1;
        if seen >= limit || count >= params.window_max_shares || current.parent == ShareId::NONE {
            return Ok((weights, tip_own.unwrap_or(0)));
        }
        current = chain.info(&current.parent).ok_or(WindowGap {
            missing: current.parent,
        })?;
    }
}

fn add(weights: &mut BTreeMap<Vec<u8>, u128>, script: &[u8], w: u128) {
    let slot = weights.entry(script.to_vec()).or_insert(0);
    *slot = slot.saturating_add(w);
}

/// The coinbase's payout outputs for `reward` over `weights`, in canonical order.
pub fn payout_outputs(
    params: &ChainParams,
    weights: &BTreeMap<Vec<u8>, u128>,
    reward: u64,
) -> Vec<(ScriptBuf, u64)> {
    let first = split_proportionally_by(reward, weights);
    let mut ranked: Vec<(&Vec<u8>, u64)> = first.iter().map(|(k, v)| (k, *v)).collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let kept: BTreeMap<Vec<u8>, u128> = ranked
        .iter()
        .filter(|(_, amount)| *amount >= params.min_output)
        .take(params.max_outputs as usize)
        .map(|(k, _)| ((*k).clone(), weights.get(*k).copied().unwrap_or(0)))
        .collect();
    let amounts = if kept.len() == first.len() {
        first
    } else if kept.is_empty() {
        // Nobody reaches the floor: the largest takes the whole reward rather than no one.
        ranked
            .first()
            .map(|(k, _)| BTreeMap::from([((*k).clone(), reward)]))
            .unwrap_or_default()
    } else {
        split_proportionally_by(reward, &kept)
    };
    amounts
        .into_iter()
        .filter(|(_, v)| *v > 0)
        .map(|(k, v)| (ScriptBuf::from_bytes(k), v))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use otedama_core::CompactTarget;
    use otedama_hash::Algorithm;
    use proptest::prelude::*;
    use std::collections::HashMap;

    struct Map(HashMap<ShareId, ShareInfo>);
    impl Ancestry for Map {
        fn info(&self, id: &ShareId) -> Option<&ShareInfo> {
            self.0.get(id)
        }
    }

    fn params() -> ChainParams {
        let mut p = ChainParams::main("devnet", Algorithm::Sha256d, "devnet", Target::MAX);
        p.min_output = 0;
        p
    }

    fn info(id: u8, parent: u8, height: u64, payout: u8, uncles: &[u8]) -> (ShareId, ShareInfo) {
        (
            ShareId([id; 32]),
            ShareInfo {
                parent: if parent == 0 {
                    ShareId::NONE
                } else {
                    ShareId([parent; 32])
                },
                uncles: uncles.iter().map(|u| ShareId([*u; 32])).collect(),
                height,
                timestamp: height * 10,
                anchor_time: 0,
                // Target 2^255 - 1 ... : work 2 per share keeps the sums readable.
                bits: CompactTarget::from_consensus(0x207fffff),
                main_height: 1,
                reward: 0,
                payout: vec![payout],
            },
        )
    }

    #[test]
    fn uncles_pay_ninety_percent_and_nephews_the_rest() {
        let (gid, g) = info(1, 0, 0, 0xa0, &[]);
        let (uid, u) = info(2, 1, 1, 0xb0, &[]);
        let (sid, s) = info(3, 1, 1, 0xc0, &[]);
        let (_, tip) = info(4, 3, 2, 0xc0, &[2]);
        let chain = Map(HashMap::from([(gid, g), (uid, u), (sid, s)]));
        let w = window_weights(&params(), &chain, &tip, U256::from_u64(1_000_000)).unwrap();
        let work = share_work(&tip.target());
        assert_eq!(w[&vec![0xb0]], work * 9 / 10);
        assert_eq!(w[&vec![0xc0]], 2 * work + work - work * 9 / 10);
        assert_eq!(w[&vec![0xa0]], work);
    }

    #[test]
    fn the_walk_stops_at_the_work_limit_and_reports_gaps() {
        let (gid, g) = info(1, 0, 0, 0xa0, &[]);
        let (aid, a) = info(2, 1, 1, 0xb0, &[]);
        let (_, tip) = info(3, 2, 2, 0xc0, &[]);
        let work = share_work(&tip.target());
        let chain = Map(HashMap::from([(gid, g), (aid, a.clone())]));
        // 200 % of a block of one share's work: two shares.
        let w = window_weights(&params(), &chain, &tip, U256::from_u128(work)).unwrap();
        assert_eq!(w.len(), 2);
        assert!(!w.contains_key(&vec![0xa0]));
        let gap = Map(HashMap::from([(aid, a)]));
        assert_eq!(
            window_weights(&params(), &gap, &tip, U256::from_u128(work * 100)),
            Err(WindowGap { missing: gid })
        );
    }

    proptest! {
        #[test]
        fn outputs_add_up_and_respect_the_caps(
            weights in proptest::collection::btree_map(proptest::collection::vec(any::<u8>(), 1..4), 1u128..1_000_000_000_000, 1..300),
            reward in 0u64..10_000_000_000,
            max_outputs in 1u32..250,
            min_output in 0u64..100_000,
        ) {
            let p = ChainParams { max_outputs, min_output, ..params() };
            let out = payout_outputs(&p, &weights, reward);
            prop_assert_eq!(out.iter().map(|(_, v)| *v).sum::<u64>(), reward);
            prop_assert!(out.len() <= max_outputs as usize || reward == 0);
            for pair in out.windows(2) {
                prop_assert!(pair[0].0 < pair[1].0);
            }
            if out.len() > 1 {
                for (_, v) in &out {
                    prop_assert!(*v >= min_output);
                }
            }
        }
    }
}
