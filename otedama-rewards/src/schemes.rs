//! The schemes.

use std::collections::BTreeMap;

use otedama_core::U256;

use crate::error::RewardError;
use crate::fee::FeeRate;
use crate::split::split_proportionally;

/// One accepted share, as the share log records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareRecord {
    /// The payout address.
    pub address: String,
    /// The share's work: the expected hashes its difficulty stands for.
    pub work: u128,
    /// When it was accepted, in milliseconds.
    pub time_ms: i64,
}

impl ShareRecord {
    /// A record.
    pub fn new(address: impl Into<String>, work: u128, time_ms: i64) -> Self {
        ShareRecord {
            address: address.into(),
            work,
            time_ms,
        }
    }
}

/// Which shares a PPLNS payout counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// The last N shares up to the block.
    Shares(usize),
    /// The shares of the last N milliseconds up to the block (`window: 2h` in the config).
    Duration {
        /// The window's length in milliseconds.
        ms: i64,
    },
}

/// What a block pays: per address, and the pool fee. `total()` equals the block reward.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Payout {
    /// Amounts per address, in the smallest unit.
    pub amounts: BTreeMap<String, u64>,
    /// The pool's fee, in the smallest unit.
    pub pool_fee: u64,
}

impl Payout {
    /// Everything paid out, fee included.
    pub fn total(&self) -> u64 {
        self.amounts
            .values()
            .fold(self.pool_fee, |acc, v| acc.saturating_add(*v))
    }
}

fn by_address<'a>(shares: impl Iterator<Item = &'a ShareRecord>) -> BTreeMap<String, u128> {
    let mut weights: BTreeMap<String, u128> = BTreeMap::new();
    for s in shares {
        let entry = weights.entry(s.address.clone()).or_insert(0);
        *entry = entry.saturating_add(s.work);
    }
    weights
}

fn pay(
    weights: &BTreeMap<String, u128>,
    reward: u64,
    fee: FeeRate,
    block_time_ms: i64,
) -> Result<Payout, RewardError> {
    if weights.values().all(|w| *w == 0) {
        return Err(RewardError::NoShares { block_time_ms });
    }
    let pool_fee = fee.fee_of(reward);
    Ok(Payout {
        amounts: split_proportionally(reward - pool_fee, weights),
        pool_fee,
    })
}

/// PPLNS: splits `reward` over the shares in `window` ending at `block_time_ms` (shares after
/// the block do not count). Shares may come in any order; among shares with the same time,
/// later input counts as later.
pub fn pplns(
    shares: &[ShareRecord],
    block_time_ms: i64,
    window: Window,
    reward: u64,
    fee: FeeRate,
) -> Result<Payout, RewardError> {
    let mut eligible: Vec<(usize, &ShareRecord)> = shares
        .iter()
        .enumerate()
        .filter(|(_, s)| s.time_ms <= block_time_ms)
        .collect();
    eligible.sort_by_key(|(i, s)| (s.time_ms, *i));
    let counted: Vec<&ShareRecord> = match window {
        Window::Shares(n) => eligible.iter().rev().take(n).map(|(_, s)| *s).collect(),
        Window::Duration { ms } => eligible
            .iter()
            .filter(|(_, s)| s.time_ms > block_time_ms.saturating_sub(ms.max(0)))
            .map(|(_, s)| *s)
            .collect(),
    };
    pay(&by_address(counted.into_iter()), reward, fee, block_time_ms)
}

/// PROP: splits `reward` over every share of the round (the shares since the previous block).
pub fn prop(round: &[ShareRecord], reward: u64, fee: FeeRate) -> Result<Payout, RewardError> {
    let end = round.iter().map(|s| s.time_ms).max().unwrap_or(0);
    pay(&by_address(round.iter()), reward, fee, end)
}

/// SOLO: the finder takes the reward less the fee.
pub fn solo(finder: &str, reward: u64, fee: FeeRate) -> Payout {
    let pool_fee = fee.fee_of(reward);
    Payout {
        amounts: [(finder.to_owned(), reward - pool_fee)].into(),
        pool_fee,
    }
}

/// What PPS pays for one share: `floor(subsidy * work * (1e6 - fee) / (network_work * 1e6))`.
pub fn pps_value(
    work: u128,
    network_work: u128,
    subsidy: u64,
    fee: FeeRate,
) -> Result<u64, RewardError> {
    if network_work == 0 {
        return Err(RewardError::ZeroNetworkWork);
    }
    let keep = U256::from_u64(u64::from(1_000_000 - fee.ppm().min(1_000_000)));
    let numerator = U256::from_u64(subsidy)
        .checked_mul(U256::from_u128(work))
        .and_then(|v| v.checked_mul(keep))
        .unwrap_or(U256::MAX);
    let denominator = U256::from_u128(network_work)
        .checked_mul(U256::from_u64(1_000_000))
        .unwrap_or(U256::MAX);
    let (value, _) = numerator
        .div_rem(denominator)
        .ok_or(RewardError::ZeroNetworkWork)?;
    // A share worth more than the whole block cannot be paid more than u64 holds.
    Ok(value.to_u64().unwrap_or(u64::MAX))
}

/// What FPPS pays for one share: PPS on the subsidy plus the expected transaction fees of a
/// block (e.g. their average over recent blocks).
pub fn fpps_value(
    work: u128,
    network_work: u128,
    subsidy: u64,
    expected_fees: u64,
    fee: FeeRate,
) -> Result<u64, RewardError> {
    pps_value(
        work,
        network_work,
        subsidy.saturating_add(expected_fees),
        fee,
    )
}

/// The pool's running position under PPS/FPPS: what it paid for shares against what its
/// blocks brought in. A negative balance is the variance the pool carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PpsLedger {
    /// Paid to miners for shares.
    pub paid: u128,
    /// Earned from blocks.
    pub earned: u128,
}

impl PpsLedger {
    /// Records a share payment.
    pub fn pay_share(&mut self, amount: u64) {
        self.paid = self.paid.saturating_add(u128::from(amount));
    }

    /// Records a block's reward.
    pub fn earn_block(&mut self, reward: u64) {
        self.earned = self.earned.saturating_add(u128::from(reward));
    }

    /// Earned minus paid: the pool's profit so far, or its exposure when negative.
    pub fn balance(&self) -> i128 {
        let earned = i128::try_from(self.earned).unwrap_or(i128::MAX);
        let paid = i128::try_from(self.paid).unwrap_or(i128::MAX);
        earned.saturating_sub(paid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pplns_windows_by_count_and_time() {
        let shares = [
            ShareRecord::new("a", 1, 100),
            ShareRecord::new("b", 1, 200),
            ShareRecord::new("c", 1, 300),
            ShareRecord::new("late", 1, 999),
        ];
        let last_two = pplns(&shares, 300, Window::Shares(2), 100, FeeRate::ZERO).expect("payout");
        assert_eq!(
            last_two.amounts,
            [("b".to_owned(), 50), ("c".to_owned(), 50)].into()
        );
        let by_time = pplns(
            &shares,
            300,
            Window::Duration { ms: 150 },
            100,
            FeeRate::ZERO,
        )
        .expect("payout");
        assert_eq!(by_time.amounts.keys().collect::<Vec<_>>(), ["b", "c"]);
        assert_eq!(
            pplns(&shares, 50, Window::Shares(5), 100, FeeRate::ZERO),
            Err(RewardError::NoShares { block_time_ms: 50 })
        );
    }

    #[test]
    fn solo_and_prop_add_up() {
        let p = solo(
            "finder",
            1_250_000_000,
            FeeRate::from_percent(2.0).expect("fee"),
        );
        assert_eq!(p.pool_fee, 25_000_000);
        assert_eq!(p.total(), 1_250_000_000);
        let round = [ShareRecord::new("x", 7, 1), ShareRecord::new("y", 3, 2)];
        let p = prop(&round, 1_000, FeeRate::ZERO).expect("prop");
        assert_eq!(p.amounts["x"], 700);
        assert_eq!(p.amounts["y"], 300);
    }

    #[test]
    fn pps_prices_a_share_by_its_share_of_a_block() {
        // A share of 1/1000 of the block's work, 1 % fee: 50 coins / 1000 * 0.99.
        let v = pps_value(
            1,
            1000,
            5_000_000_000,
            FeeRate::from_percent(1.0).expect("fee"),
        )
        .expect("pps");
        assert_eq!(v, 4_950_000);
        let f = fpps_value(1, 1000, 5_000_000_000, 1_000_000_000, FeeRate::ZERO).expect("fpps");
        assert_eq!(f, 6_000_000);
        assert_eq!(
            pps_value(1, 0, 1, FeeRate::ZERO),
            Err(RewardError::ZeroNetworkWork)
        );
        let mut ledger = PpsLedger::default();
        ledger.pay_share(v);
        assert_eq!(ledger.balance(), -4_950_000);
        ledger.earn_block(5_000_000_000);
        assert!(ledger.balance() > 0);
    }
}
