//! Splitting an amount in proportion to integer weights, exactly.

use std::collections::BTreeMap;

use otedama_core::U256;

/// Splits `total` among the keys of `weights` in proportion to their weights, to the unit:
/// each key first gets the floor of its exact share, then the units left over go one each to
/// the keys with the largest remainders (ties: the smaller key first). The amounts always sum
/// to `total`; a key of zero weight gets nothing. With no positive weight, nothing is split
/// and the map is empty.
pub fn split_proportionally(total: u64, weights: &BTreeMap<String, u128>) -> BTreeMap<String, u64> {
    split_proportionally_by(total, weights)
}

/// [`split_proportionally`] for any ordered key (a payout script, a miner id): the same
/// floors, the same largest-remainder rule, ties to the smaller key.
pub fn split_proportionally_by<K: Ord + Clone>(
    total: u64,
    weights: &BTreeMap<K, u128>,
) -> BTreeMap<K, u64> {
    let sum: U256 = weights
        .values()
        .fold(U256::ZERO, |acc, w| acc.saturating_add(U256::from_u128(*w)));
    let mut out = BTreeMap::new();
    if sum.is_zero() {
        return out;
    }
    let total_wide = U256::from_u64(total);
    let mut remainders: Vec<(U256, &K)> = Vec::with_capacity(weights.len());
    let mut handed_out: u64 = 0;
    for (key, weight) in weights {
        if *weight == 0 {
            continue;
        }
        // total * weight < 2^64 * 2^128, well inside 256 bits.
        let product = total_wide
            .checked_mul(U256::from_u128(*weight))
            .unwrap_or(U256::MAX);
        let (share, remainder) = product.div_rem(sum).unwrap_or((U256::ZERO, U256::ZERO));
        // share <= total, so it fits in u64.
        let share = share.to_u64().unwrap_or(total);
        handed_out += share;
        out.insert(key.clone(), share);
        remainders.push((remainder, key));
    }
    let mut left = total - handed_out.min(total);
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    for (_, key) in remainders {
        if left == 0 {
            break;
        }
        if let Some(v) = out.get_mut(key) {
            *v += 1;
            left -= 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(pairs: &[(&str, u128)]) -> BTreeMap<String, u128> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    #[test]
    fn remainders_go_to_the_largest_then_the_smallest_key() {
        let out = split_proportionally(10, &w(&[("a", 1), ("b", 1), ("c", 1)]));
        assert_eq!(
            out,
            [
                ("a".to_owned(), 4),
                ("b".to_owned(), 3),
                ("c".to_owned(), 3)
            ]
            .into()
        );
        let out = split_proportionally(100, &w(&[("a", 1), ("b", 2)]));
        assert_eq!(out["a"] + out["b"], 100);
        assert_eq!(out["b"], 67);
        assert!(split_proportionally(5, &w(&[("a", 0)])).is_empty());
        let huge = split_proportionally(u64::MAX, &w(&[("a", u128::MAX), ("b", u128::MAX)]));
        assert_eq!(huge["a"].checked_add(huge["b"]), Some(u64::MAX));
    }
}
