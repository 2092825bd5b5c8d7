//! The invariants every scheme must keep, over arbitrary inputs.

use std::collections::BTreeMap;

use otedama_rewards::{
    fpps_value, pplns, pps_value, prop, solo, split_proportionally, FeeRate, RewardError,
    ShareRecord, Window,
};
use proptest::prelude::*;

fn shares() -> impl Strategy<Value = Vec<ShareRecord>> {
    proptest::collection::vec(
        (0u8..6, 0u128..=u128::from(u64::MAX) * 4, 0i64..10_000),
        1..60,
    )
    .prop_map(|v| {
        v.into_iter()
            .map(|(a, w, t)| ShareRecord::new(format!("addr{a}"), w, t))
            .collect()
    })
}

fn window() -> impl Strategy<Value = Window> {
    prop_oneof![
        (1usize..80).prop_map(Window::Shares),
        (1i64..20_000).prop_map(|ms| Window::Duration { ms }),
    ]
}

proptest! {
    #[test]
    fn pplns_pays_exactly_the_reward(shares in shares(), window in window(), reward in any::<u64>(), ppm in 0u32..=1_000_000, at in 0i64..12_000) {
        let fee = FeeRate::from_ppm(ppm).expect("in range");
        // The window, computed the plain way.
        let mut eligible: Vec<(usize, &ShareRecord)> = shares.iter().enumerate().filter(|(_, s)| s.time_ms <= at).collect();
        eligible.sort_by_key(|(i, s)| (s.time_ms, *i));
        let counted: Vec<&ShareRecord> = match window {
            Window::Shares(n) => eligible.iter().rev().take(n).map(|(_, s)| *s).collect(),
            Window::Duration { ms } => eligible.iter().filter(|(_, s)| s.time_ms > at - ms).map(|(_, s)| *s).collect(),
        };
        let paid: std::collections::BTreeSet<&str> =
            counted.iter().filter(|s| s.work > 0).map(|s| s.address.as_str()).collect();
        match pplns(&shares, at, window, reward, fee) {
            Ok(p) => {
                prop_assert_eq!(p.total(), reward);
                prop_assert_eq!(p.pool_fee, fee.fee_of(reward));
                let got: std::collections::BTreeSet<&str> = p.amounts.keys().map(String::as_str).collect();
                prop_assert_eq!(got, paid);
            }
            Err(RewardError::NoShares { .. }) => prop_assert!(paid.is_empty()),
            Err(e) => prop_assert!(false, "unexpected {e}"),
        }
    }

    #[test]
    fn each_miner_gets_within_one_unit_of_its_exact_share(shares in shares(), reward in any::<u64>(), ppm in 0u32..=1_000_000) {
        let fee = FeeRate::from_ppm(ppm).expect("in range");
        let Ok(p) = prop(&shares, reward, fee) else { return Ok(()) };
        let mut weights: BTreeMap<String, u128> = BTreeMap::new();
        for s in &shares {
            *weights.entry(s.address.clone()).or_default() += s.work;
        }
        let total_work: f64 = weights.values().map(|w| *w as f64).sum();
        let pot = (reward - p.pool_fee) as f64;
        for (address, amount) in &p.amounts {
            let exact = pot * weights[address] as f64 / total_work;
            // One unit for the remainder, plus float slack on the check itself.
            prop_assert!((*amount as f64 - exact).abs() <= 1.0 + exact * 1e-9 + 1e-6, "{address}: {amount} vs {exact}");
        }
    }

    #[test]
    fn prop_does_not_depend_on_share_order(mut shares in shares(), reward in any::<u64>()) {
        let a = prop(&shares, reward, FeeRate::ZERO);
        shares.reverse();
        prop_assert_eq!(a, prop(&shares, reward, FeeRate::ZERO));
    }

    #[test]
    fn more_work_never_pays_less(weights in proptest::collection::btree_map("[a-d]", 1u128..1_000_000, 1..4), extra in 1u128..1_000_000, total in any::<u64>()) {
        let before = split_proportionally(total, &weights);
        let key = weights.keys().next().expect("non-empty").clone();
        let mut more = weights.clone();
        *more.get_mut(&key).expect("key") += extra;
        let after = split_proportionally(total, &more);
        prop_assert!(after[&key] + 1 >= before[&key]);
        prop_assert_eq!(after.values().map(|v| u128::from(*v)).sum::<u128>(), u128::from(total));
    }

    #[test]
    fn solo_pays_the_finder_all_but_the_fee(reward in any::<u64>(), ppm in 0u32..=1_000_000) {
        let fee = FeeRate::from_ppm(ppm).expect("in range");
        let p = solo("finder", reward, fee);
        prop_assert_eq!(p.total(), reward);
        prop_assert_eq!(p.amounts.len(), 1);
    }

    #[test]
    fn pps_is_floor_additive(w1 in 0u128..1u128 << 80, w2 in 0u128..1u128 << 80, network in 1u128..1u128 << 100, subsidy in any::<u64>(), ppm in 0u32..=1_000_000) {
        let fee = FeeRate::from_ppm(ppm).expect("in range");
        let a = pps_value(w1, network, subsidy, fee).expect("pps");
        let b = pps_value(w2, network, subsidy, fee).expect("pps");
        let both = pps_value(w1 + w2, network, subsidy, fee).expect("pps");
        // Paying shares one by one never costs more than paying them together, and at most
        // a unit less.
        prop_assert!(both >= a.saturating_add(b) || both == u64::MAX);
        prop_assert!(both <= a.saturating_add(b).saturating_add(1));
        prop_assert!(fpps_value(w1, network, subsidy, 0, fee).expect("fpps") == a);
        prop_assert!(fpps_value(w1, network, subsidy, 1_000, fee).expect("fpps") >= a);
    }

    #[test]
    fn a_share_of_a_whole_block_is_worth_the_block_less_fee(subsidy in any::<u64>(), network in 1u128..1u128 << 100, ppm in 0u32..=1_000_000) {
        let fee = FeeRate::from_ppm(ppm).expect("in range");
        let v = pps_value(network, network, subsidy, fee).expect("pps");
        let exact = u128::from(subsidy) * u128::from(1_000_000 - ppm) / 1_000_000;
        prop_assert_eq!(u128::from(v), exact);
    }
}
