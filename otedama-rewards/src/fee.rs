//! The pool fee as an exact rate.

use crate::error::RewardError;

/// A fee rate in parts per million (1 % = 10,000 ppm); applied with a floor, so the pool
/// never takes a fraction of a unit more than its rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct FeeRate(u32);

impl FeeRate {
    /// No fee.
    pub const ZERO: FeeRate = FeeRate(0);
    /// The whole reward.
    pub const ALL: FeeRate = FeeRate(1_000_000);

    /// A rate in parts per million; at most 1,000,000.
    pub fn from_ppm(ppm: u32) -> Result<FeeRate, RewardError> {
        if ppm > 1_000_000 {
            return Err(RewardError::FeeOutOfRange(f64::from(ppm) / 10_000.0));
        }
        Ok(FeeRate(ppm))
    }

    /// A rate from a percentage as operators write it (`1.5` = 1.5 %), rounded to the nearest
    /// part per million.
    pub fn from_percent(percent: f64) -> Result<FeeRate, RewardError> {
        if !(percent.is_finite() && (0.0..=100.0).contains(&percent)) {
            return Err(RewardError::FeeOutOfRange(percent));
        }
        // Bounded to 0..=1e6 above, so the conversion is exact.
        Ok(FeeRate((percent * 10_000.0).round() as u32))
    }

    /// The rate in parts per million.
    pub fn ppm(self) -> u32 {
        self.0
    }

    /// The fee on `amount`: `floor(amount * ppm / 1_000_000)`.
    pub fn fee_of(self, amount: u64) -> u64 {
        // amount < 2^64 and ppm <= 10^6 < 2^20: the product fits in u128.
        ((u128::from(amount) * u128::from(self.0)) / 1_000_000) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_and_ppm_agree() {
        assert_eq!(FeeRate::from_percent(1.0).expect("1%").ppm(), 10_000);
        assert_eq!(FeeRate::from_percent(1.5).expect("1.5%").ppm(), 15_000);
        assert_eq!(FeeRate::from_percent(0.0001).expect("tiny").ppm(), 1);
        assert!(FeeRate::from_percent(-1.0).is_err());
        assert!(FeeRate::from_percent(100.5).is_err());
        assert!(FeeRate::from_percent(f64::NAN).is_err());
        assert!(FeeRate::from_ppm(1_000_001).is_err());
        assert_eq!(
            FeeRate::from_percent(1.0)
                .expect("1%")
                .fee_of(5_000_000_000),
            50_000_000
        );
        assert_eq!(FeeRate::ALL.fee_of(u64::MAX), u64::MAX);
        assert_eq!(FeeRate::from_ppm(1).expect("1 ppm").fee_of(999_999), 0);
    }
}
