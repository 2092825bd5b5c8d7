//! 256-bit integers, proof-of-work targets, compact `nBits`, difficulty, work and hashrate.
//!
//! Every conversion between a difficulty and a target lives here, so that the byte-order and
//! rounding conventions of each coin family are written down exactly once.

use core::cmp::Ordering;
use core::fmt;
use core::ops::{Add, BitAnd, BitOr, Not, Shl, Shr};

// ---------------------------------------------------------------------------------------------
// Limb helpers shared by `U256` and the private 512-bit intermediate.
// ---------------------------------------------------------------------------------------------

/// Shifts little-endian limbs left by `shift` bits; bits shifted past the top are dropped.
fn limbs_shl<const N: usize>(a: &[u64; N], shift: u32) -> [u64; N] {
    let mut out = [0u64; N];
    let limb_shift = (shift / 64) as usize;
    let bit_shift = shift % 64;
    if limb_shift >= N {
        return out;
    }
    for i in (limb_shift..N).rev() {
        let src = i - limb_shift;
        let mut v = a[src] << bit_shift;
        if bit_shift != 0 && src > 0 {
            v |= a[src - 1] >> (64 - bit_shift);
        }
        out[i] = v;
    }
    out
}

/// Shifts little-endian limbs right by `shift` bits; bits shifted past the bottom are dropped.
fn limbs_shr<const N: usize>(a: &[u64; N], shift: u32) -> [u64; N] {
    let mut out = [0u64; N];
    let limb_shift = (shift / 64) as usize;
    let bit_shift = shift % 64;
    if limb_shift >= N {
        return out;
    }
    for (i, o) in out.iter_mut().enumerate().take(N - limb_shift) {
        let src = i + limb_shift;
        let mut v = a[src] >> bit_shift;
        if bit_shift != 0 && src + 1 < N {
            v |= a[src + 1] << (64 - bit_shift);
        }
        *o = v;
    }
    out
}

/// Number of significant bits in little-endian limbs (0 for zero).
fn limbs_bits<const N: usize>(a: &[u64; N]) -> u32 {
    for i in (0..N).rev() {
        if a[i] != 0 {
            return 64 * i as u32 + (64 - a[i].leading_zeros());
        }
    }
    0
}

/// Divides little-endian limbs by a non-zero `u64`, returning quotient and remainder.
fn limbs_div_u64<const N: usize>(a: &[u64; N], d: u64) -> ([u64; N], u64) {
    debug_assert!(d != 0);
    let mut q = [0u64; N];
    let mut rem: u128 = 0;
    for i in (0..N).rev() {
        let cur = (rem << 64) | u128::from(a[i]);
        q[i] = (cur / u128::from(d)) as u64;
        rem = cur % u128::from(d);
    }
    (q, rem as u64)
}

/// Converts little-endian limbs to the nearest `f64` (round half to even).
fn limbs_to_f64<const N: usize>(a: &[u64; N]) -> f64 {
    let bits = limbs_bits(a);
    if bits <= 64 {
        return a[0] as f64;
    }
    // Normalise so that the top 64 significant bits sit in one word; keep a sticky bit for
    // everything below so that `u64 -> f64` rounds correctly.
    let shift = bits - 64;
    let top = limbs_shr(a, shift)[0];
    let below = limbs_shl(a, (64 * N as u32) - shift);
    let sticky = below.iter().any(|&l| l != 0);
    let top = if sticky { top | 1 } else { top };
    (top as f64) * 2f64.powi(shift as i32)
}

/// Reads limb `i` (0 = least significant) of a 256-bit little-endian byte string.
#[inline(always)]
fn le_limb(b: &[u8; 32], i: usize) -> u64 {
    let o = i * 8;
    u64::from_le_bytes([
        b[o],
        b[o + 1],
        b[o + 2],
        b[o + 3],
        b[o + 4],
        b[o + 5],
        b[o + 6],
        b[o + 7],
    ])
}

/// Reads limb `i` (0 = least significant) of a 256-bit big-endian byte string.
#[inline(always)]
fn be_limb(b: &[u8; 32], i: usize) -> u64 {
    let o = (3 - i) * 8;
    u64::from_be_bytes([
        b[o],
        b[o + 1],
        b[o + 2],
        b[o + 3],
        b[o + 4],
        b[o + 5],
        b[o + 6],
        b[o + 7],
    ])
}

// ---------------------------------------------------------------------------------------------
// U256
// ---------------------------------------------------------------------------------------------

/// An unsigned 256-bit integer stored as four little-endian `u64` limbs.
///
/// Arithmetic is implemented here (no bignum crate). Fallible operations are `checked_*` and
/// return `None` instead of wrapping or panicking. Shifts by 256 bits or more yield zero.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct U256([u64; 4]);

impl U256 {
    /// Zero.
    pub const ZERO: U256 = U256([0; 4]);
    /// One.
    pub const ONE: U256 = U256([1, 0, 0, 0]);
    /// 2^256 − 1.
    pub const MAX: U256 = U256([u64::MAX; 4]);

    /// Builds a value from little-endian limbs (limb 0 is the least significant).
    pub const fn from_limbs(limbs: [u64; 4]) -> U256 {
        U256(limbs)
    }

    /// Returns the little-endian limbs (limb 0 is the least significant).
    pub const fn to_limbs(self) -> [u64; 4] {
        self.0
    }

    /// Widens a `u64`.
    pub const fn from_u64(v: u64) -> U256 {
        U256([v, 0, 0, 0])
    }

    /// Widens a `u128`.
    pub const fn from_u128(v: u128) -> U256 {
        U256([v as u64, (v >> 64) as u64, 0, 0])
    }

    /// Returns the value as a `u64` if it fits.
    pub fn to_u64(self) -> Option<u64> {
        if self.0[1] == 0 && self.0[2] == 0 && self.0[3] == 0 {
            Some(self.0[0])
        } else {
            None
        }
    }

    /// Returns the value as a `u128` if it fits.
    pub fn to_u128(self) -> Option<u128> {
        if self.0[2] == 0 && self.0[3] == 0 {
            Some(u128::from(self.0[0]) | (u128::from(self.0[1]) << 64))
        } else {
            None
        }
    }

    /// The least significant 64 bits (Core's `GetLow64`).
    pub const fn low_u64(self) -> u64 {
        self.0[0]
    }

    /// Reads 32 big-endian bytes (most significant byte first).
    pub fn from_be_bytes(bytes: [u8; 32]) -> U256 {
        U256([
            be_limb(&bytes, 0),
            be_limb(&bytes, 1),
            be_limb(&bytes, 2),
            be_limb(&bytes, 3),
        ])
    }

    /// Reads 32 little-endian bytes (least significant byte first).
    pub fn from_le_bytes(bytes: [u8; 32]) -> U256 {
        U256([
            le_limb(&bytes, 0),
            le_limb(&bytes, 1),
            le_limb(&bytes, 2),
            le_limb(&bytes, 3),
        ])
    }

    /// Writes 32 big-endian bytes (most significant byte first).
    pub fn to_be_bytes(self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (chunk, limb) in out.chunks_exact_mut(8).zip(self.0.iter().rev()) {
            chunk.copy_from_slice(&limb.to_be_bytes());
        }
        out
    }

    /// Writes 32 little-endian bytes (least significant byte first).
    pub fn to_le_bytes(self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (chunk, limb) in out.chunks_exact_mut(8).zip(self.0.iter()) {
            chunk.copy_from_slice(&limb.to_le_bytes());
        }
        out
    }

    /// `true` for zero.
    pub fn is_zero(self) -> bool {
        self.0 == [0; 4]
    }

    /// Number of significant bits: 0 for zero, 256 for values with the top bit set.
    pub fn bits(self) -> u32 {
        limbs_bits(&self.0)
    }

    /// Number of leading zero bits (256 for zero).
    pub fn leading_zeros(self) -> u32 {
        256 - self.bits()
    }

    /// Number of trailing zero bits (256 for zero).
    pub fn trailing_zeros(self) -> u32 {
        let mut n = 0;
        for limb in self.0 {
            if limb == 0 {
                n += 64;
            } else {
                return n + limb.trailing_zeros();
            }
        }
        n
    }

    /// Addition; `None` on overflow.
    pub fn checked_add(self, rhs: U256) -> Option<U256> {
        let (sum, carry) = self.overflowing_add(rhs);
        if carry {
            None
        } else {
            Some(sum)
        }
    }

    /// Addition modulo 2^256, with the carry-out.
    pub fn overflowing_add(self, rhs: U256) -> (U256, bool) {
        let mut out = [0u64; 4];
        let mut carry = false;
        for (o, (a, b)) in out.iter_mut().zip(self.0.iter().zip(rhs.0.iter())) {
            let (s1, c1) = a.overflowing_add(*b);
            let (s2, c2) = s1.overflowing_add(u64::from(carry));
            *o = s2;
            carry = c1 || c2;
        }
        (U256(out), carry)
    }

    /// Addition modulo 2^256.
    pub fn wrapping_add(self, rhs: U256) -> U256 {
        self.overflowing_add(rhs).0
    }

    /// Addition clamped at [`U256::MAX`].
    pub fn saturating_add(self, rhs: U256) -> U256 {
        self.checked_add(rhs).unwrap_or(U256::MAX)
    }

    /// Subtraction; `None` when `rhs > self`.
    pub fn checked_sub(self, rhs: U256) -> Option<U256> {
        let (diff, borrow) = self.overflowing_sub(rhs);
        if borrow {
            None
        } else {
            Some(diff)
        }
    }

    /// Subtraction modulo 2^256, with the borrow-out.
    pub fn overflowing_sub(self, rhs: U256) -> (U256, bool) {
        let mut out = [0u64; 4];
        let mut borrow = false;
        for (o, (a, b)) in out.iter_mut().zip(self.0.iter().zip(rhs.0.iter())) {
            let (d1, b1) = a.overflowing_sub(*b);
            let (d2, b2) = d1.overflowing_sub(u64::from(borrow));
            *o = d2;
            borrow = b1 || b2;
        }
        (U256(out), borrow)
    }

    /// Subtraction modulo 2^256.
    pub fn wrapping_sub(self, rhs: U256) -> U256 {
        self.overflowing_sub(rhs).0
    }

    /// Multiplication by a `u64`; `None` on overflow.
    pub fn checked_mul_u64(self, rhs: u64) -> Option<U256> {
        let mut out = [0u64; 4];
        let mut carry: u128 = 0;
        for (o, a) in out.iter_mut().zip(self.0.iter()) {
            let p = u128::from(*a) * u128::from(rhs) + carry;
            *o = p as u64;
            carry = p >> 64;
        }
        if carry != 0 {
            None
        } else {
            Some(U256(out))
        }
    }

    /// Full multiplication; `None` on overflow.
    pub fn checked_mul(self, rhs: U256) -> Option<U256> {
        // Schoolbook multiplication into eight limbs, then check the upper half.
        let mut wide = [0u64; 8];
        for (i, a) in self.0.iter().enumerate() {
            if *a == 0 {
                continue;
            }
            let mut carry: u128 = 0;
            for (j, b) in rhs.0.iter().enumerate() {
                let cur = u128::from(wide[i + j]) + u128::from(*a) * u128::from(*b) + carry;
                wide[i + j] = cur as u64;
                carry = cur >> 64;
            }
            wide[i + 4] = carry as u64;
        }
        if wide[4..].iter().any(|&l| l != 0) {
            None
        } else {
            Some(U256([wide[0], wide[1], wide[2], wide[3]]))
        }
    }

    /// Division with remainder by a `u64`; `None` when `divisor` is zero.
    pub fn div_rem_u64(self, divisor: u64) -> Option<(U256, u64)> {
        if divisor == 0 {
            return None;
        }
        let (q, r) = limbs_div_u64(&self.0, divisor);
        Some((U256(q), r))
    }

    /// Division with remainder, `(self / divisor, self % divisor)`; `None` when `divisor` is
    /// zero.
    pub fn div_rem(self, divisor: U256) -> Option<(U256, U256)> {
        if divisor.is_zero() {
            return None;
        }
        if let Some(d) = divisor.to_u64() {
            let (q, r) = limbs_div_u64(&self.0, d);
            return Some((U256(q), U256::from_u64(r)));
        }
        if self < divisor {
            return Some((U256::ZERO, self));
        }
        // Binary long division over the significant bits of the dividend. The divisor has
        // more than 64 bits here, so the quotient has fewer than 193 bits.
        let shift = self.bits() - divisor.bits();
        let mut rem = self;
        let mut quot = U256::ZERO;
        let mut d = divisor << shift;
        let mut bit = shift as i64;
        while bit >= 0 {
            if rem >= d {
                rem = rem.wrapping_sub(d);
                quot.0[(bit / 64) as usize] |= 1u64 << (bit % 64);
            }
            d = d >> 1;
            bit -= 1;
        }
        Some((quot, rem))
    }

    /// Division; `None` when `divisor` is zero.
    pub fn checked_div(self, divisor: U256) -> Option<U256> {
        self.div_rem(divisor).map(|(q, _)| q)
    }

    /// Remainder; `None` when `divisor` is zero.
    pub fn checked_rem(self, divisor: U256) -> Option<U256> {
        self.div_rem(divisor).map(|(_, r)| r)
    }

    /// The nearest `f64` (correctly rounded, round half to even).
    pub fn to_f64(self) -> f64 {
        limbs_to_f64(&self.0)
    }
}

impl Ord for U256 {
    fn cmp(&self, other: &U256) -> Ordering {
        for i in (0..4).rev() {
            match self.0[i].cmp(&other.0[i]) {
                Ordering::Equal => continue,
                ord => return ord,
            }
        }
        Ordering::Equal
    }
}

impl PartialOrd for U256 {
    fn partial_cmp(&self, other: &U256) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl From<u64> for U256 {
    fn from(v: u64) -> U256 {
        U256::from_u64(v)
    }
}

impl From<[u64; 4]> for U256 {
    fn from(limbs: [u64; 4]) -> U256 {
        U256(limbs)
    }
}

impl From<u128> for U256 {
    fn from(v: u128) -> U256 {
        U256::from_u128(v)
    }
}

impl Shl<u32> for U256 {
    type Output = U256;
    /// Shifts left, dropping bits past bit 255; a shift of 256 or more gives zero.
    fn shl(self, shift: u32) -> U256 {
        U256(limbs_shl(&self.0, shift))
    }
}

impl Shr<u32> for U256 {
    type Output = U256;
    /// Shifts right; a shift of 256 or more gives zero.
    fn shr(self, shift: u32) -> U256 {
        U256(limbs_shr(&self.0, shift))
    }
}

impl BitAnd for U256 {
    type Output = U256;
    fn bitand(self, rhs: U256) -> U256 {
        U256([
            self.0[0] & rhs.0[0],
            self.0[1] & rhs.0[1],
            self.0[2] & rhs.0[2],
            self.0[3] & rhs.0[3],
        ])
    }
}

impl BitOr for U256 {
    type Output = U256;
    fn bitor(self, rhs: U256) -> U256 {
        U256([
            self.0[0] | rhs.0[0],
            self.0[1] | rhs.0[1],
            self.0[2] | rhs.0[2],
            self.0[3] | rhs.0[3],
        ])
    }
}

impl Not for U256 {
    type Output = U256;
    fn not(self) -> U256 {
        U256([!self.0[0], !self.0[1], !self.0[2], !self.0[3]])
    }
}

impl fmt::LowerHex for U256 {
    /// 64 lowercase hex digits, most significant first; `{:#x}` adds `0x`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.alternate() {
            f.write_str("0x")?;
        }
        for limb in self.0.iter().rev() {
            write!(f, "{limb:016x}")?;
        }
        Ok(())
    }
}

impl fmt::Display for U256 {
    /// The same as [`fmt::LowerHex`]: 64 hex digits, most significant first.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(self, f)
    }
}

impl fmt::Debug for U256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "U256({self:#x})")
    }
}

// ---------------------------------------------------------------------------------------------
// Target
// ---------------------------------------------------------------------------------------------

/// A proof-of-work target: a hash meets it when the hash, read as a 256-bit integer in the
/// byte order of its coin family, is less than or equal to the target.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Target(U256);

impl Target {
    /// The largest target (2^256 − 1): every hash meets it.
    pub const MAX: Target = Target(U256::MAX);
    /// The zero target: only the all-zero hash meets it.
    pub const ZERO: Target = Target(U256::ZERO);

    /// Wraps a 256-bit integer.
    pub const fn from_u256(v: U256) -> Target {
        Target(v)
    }

    /// The target as a 256-bit integer.
    pub const fn as_u256(&self) -> U256 {
        self.0
    }

    /// Reads a target from 32 little-endian bytes.
    pub fn from_le_bytes(bytes: [u8; 32]) -> Target {
        Target(U256::from_le_bytes(bytes))
    }

    /// Writes the target as 32 little-endian bytes.
    pub fn to_le_bytes(&self) -> [u8; 32] {
        self.0.to_le_bytes()
    }

    /// Reads a target from 32 big-endian bytes (the usual hex display order).
    pub fn from_be_bytes(bytes: [u8; 32]) -> Target {
        Target(U256::from_be_bytes(bytes))
    }

    /// Writes the target as 32 big-endian bytes (the usual hex display order).
    pub fn to_be_bytes(&self) -> [u8; 32] {
        self.0.to_be_bytes()
    }

    /// `true` when `hash`, read as a **little-endian** 256-bit integer, is `<=` this target.
    ///
    /// This is the check of Bitcoin, scrypt coins and RandomX (Monero). The most significant
    /// limb is compared first, so almost every call reads only 8 bytes of the hash.
    #[inline]
    pub fn is_met_by(&self, hash: &[u8; 32]) -> bool {
        let t = &self.0 .0;
        let h3 = le_limb(hash, 3);
        if h3 != t[3] {
            return h3 < t[3];
        }
        let h2 = le_limb(hash, 2);
        if h2 != t[2] {
            return h2 < t[2];
        }
        let h1 = le_limb(hash, 1);
        if h1 != t[1] {
            return h1 < t[1];
        }
        le_limb(hash, 0) <= t[0]
    }

    /// `true` when `hash`, read as a **big-endian** 256-bit integer, is `<=` this target.
    ///
    /// This is the check of Ethash and KawPow.
    #[inline]
    pub fn is_met_by_be(&self, hash: &[u8; 32]) -> bool {
        let t = &self.0 .0;
        let h3 = be_limb(hash, 3);
        if h3 != t[3] {
            return h3 < t[3];
        }
        let h2 = be_limb(hash, 2);
        if h2 != t[2] {
            return h2 < t[2];
        }
        let h1 = be_limb(hash, 1);
        if h1 != t[1] {
            return h1 < t[1];
        }
        be_limb(hash, 0) <= t[0]
    }

    /// Encodes the target in compact `nBits` form exactly as Bitcoin Core's
    /// `arith_uint256::GetCompact(false)`: the mantissa is truncated to three bytes, and if
    /// its top bit would read as the sign bit it is shifted down a byte and the exponent
    /// raised.
    pub fn to_compact(&self) -> CompactTarget {
        let v = self.0;
        let mut size = v.bits().div_ceil(8);
        let mut compact: u32 = if size <= 3 {
            (v.low_u64() << (8 * (3 - size))) as u32
        } else {
            (v >> (8 * (size - 3))).low_u64() as u32
        };
        if compact & 0x0080_0000 != 0 {
            compact >>= 8;
            size += 1;
        }
        CompactTarget(compact | (size << 24))
    }

    /// The expected number of hashes needed to meet this target, see [`Work`].
    pub fn to_work(&self) -> Work {
        Work::from_target(self)
    }
}

impl fmt::LowerHex for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(&self.0, f)
    }
}

impl fmt::Display for Target {
    /// 64 hex digits, most significant first.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Target({:#x})", self.0)
    }
}

// ---------------------------------------------------------------------------------------------
// CompactTarget
// ---------------------------------------------------------------------------------------------

/// Why a compact `nBits` value does not decode to a usable target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CompactTargetError {
    /// The sign bit is set on a non-zero mantissa.
    #[error("compact target {bits:#010x} is negative")]
    Negative {
        /// The offending `nBits`.
        bits: u32,
    },
    /// The exponent puts mantissa bits above bit 255.
    #[error("compact target {bits:#010x} overflows 256 bits")]
    Overflow {
        /// The offending `nBits`.
        bits: u32,
    },
    /// The target decodes to zero, which no hash can meet with a positive probability.
    #[error("compact target {bits:#010x} is zero")]
    Zero {
        /// The offending `nBits`.
        bits: u32,
    },
}

/// A target in Bitcoin's compact `nBits` form: one exponent byte and a signed 24-bit
/// mantissa. Decoding follows Bitcoin Core's `arith_uint256::SetCompact` exactly.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct CompactTarget(u32);

impl CompactTarget {
    /// Wraps a consensus `nBits` value.
    pub const fn from_consensus(bits: u32) -> CompactTarget {
        CompactTarget(bits)
    }

    /// The consensus `nBits` value.
    pub const fn to_consensus(self) -> u32 {
        self.0
    }

    /// Bitcoin Core's `SetCompact` verbatim: `(value, negative, overflow)`.
    ///
    /// When the exponent is three or less the mantissa is shifted right *before* the flags
    /// are computed, so e.g. `0x01803456` is neither negative nor overflowing. When the
    /// overflow flag is set the returned value is the left shift truncated to 256 bits, as in
    /// Core.
    pub fn decode_raw(self) -> (U256, bool, bool) {
        let size = self.0 >> 24;
        let mut word = self.0 & 0x007f_ffff;
        let value = if size <= 3 {
            word >>= 8 * (3 - size);
            U256::from_u64(u64::from(word))
        } else {
            U256::from_u64(u64::from(word)) << (8 * (size - 3))
        };
        let negative = word != 0 && (self.0 & 0x0080_0000) != 0;
        let overflow =
            word != 0 && (size > 34 || (word > 0xff && size > 33) || (word > 0xffff && size > 32));
        (value, negative, overflow)
    }

    /// Decodes to a target, rejecting negative, overflowing and zero values (checked in that
    /// order).
    pub fn decode(self) -> Result<Target, CompactTargetError> {
        let (value, negative, overflow) = self.decode_raw();
        if negative {
            return Err(CompactTargetError::Negative { bits: self.0 });
        }
        if overflow {
            return Err(CompactTargetError::Overflow { bits: self.0 });
        }
        if value.is_zero() {
            return Err(CompactTargetError::Zero { bits: self.0 });
        }
        Ok(Target(value))
    }
}

impl fmt::Debug for CompactTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CompactTarget({:#010x})", self.0)
    }
}

impl fmt::LowerHex for CompactTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(&self.0, f)
    }
}

impl From<CompactTarget> for bitcoin::CompactTarget {
    fn from(c: CompactTarget) -> bitcoin::CompactTarget {
        bitcoin::CompactTarget::from_consensus(c.0)
    }
}

impl From<bitcoin::CompactTarget> for CompactTarget {
    fn from(c: bitcoin::CompactTarget) -> CompactTarget {
        CompactTarget(c.to_consensus())
    }
}

// ---------------------------------------------------------------------------------------------
// Difficulty
// ---------------------------------------------------------------------------------------------

/// Why a difficulty could not be built or computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DifficultyError {
    /// The value is NaN or infinite.
    #[error("difficulty {value} is not finite")]
    NotFinite {
        /// The rejected value.
        value: f64,
    },
    /// The value is zero or negative.
    #[error("difficulty {value} is not positive")]
    NotPositive {
        /// The rejected value.
        value: f64,
    },
    /// A zero target has no finite difficulty.
    #[error("zero target has no finite difficulty")]
    ZeroTarget,
}

/// A share or block difficulty: a finite number greater than zero.
///
/// What a difficulty means depends on the coin family; see [`DifficultyConvention`].
#[derive(Clone, Copy, PartialEq, PartialOrd)]
pub struct Difficulty(f64);

impl Difficulty {
    /// Difficulty 1.
    pub const ONE: Difficulty = Difficulty(1.0);

    /// Checks that `value` is finite and greater than zero.
    pub fn new(value: f64) -> Result<Difficulty, DifficultyError> {
        if !value.is_finite() {
            Err(DifficultyError::NotFinite { value })
        } else if value <= 0.0 {
            Err(DifficultyError::NotPositive { value })
        } else {
            Ok(Difficulty(value))
        }
    }

    /// The difficulty as a float.
    pub const fn as_f64(self) -> f64 {
        self.0
    }
}

impl fmt::Debug for Difficulty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Difficulty({})", self.0)
    }
}

impl fmt::Display for Difficulty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// 2^256 as an `f64` (exact).
const TWO_POW_256: f64 = 115_792_089_237_316_195_423_570_985_008_687_907_853_269_984_665_640_564_039_457_584_007_913_129_639_936.0;

/// Bitcoin's difficulty-1 target, 0xffff · 2^208 (`0x00000000ffff0000…`).
pub const BITCOIN_DIFF1_TARGET: Target = Target(U256([0, 0, 0, 0x0000_0000_ffff_0000]));

/// The scrypt pools' difficulty-1 target, 0xffff · 2^224 (`0x0000ffff0000…`), i.e. Bitcoin's
/// diff-1 target times 65536.
pub const SCRYPT_DIFF1_TARGET: Target = Target(U256([0, 0, 0, 0x0000_ffff_0000_0000]));

/// How a coin family maps a difficulty to a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DifficultyConvention {
    /// SHA-256d coins: target = floor(0xffff·2^208 / d); hashes are read little-endian.
    Bitcoin,
    /// Scrypt pools (Litecoin, Dogecoin): pool difficulty is Bitcoin difficulty × 65536, so
    /// target = floor(0xffff·2^224 / d); hashes are read little-endian.
    Scrypt,
    /// Monero / RandomX: a hash meets difficulty d when LE-uint256(hash) · d < 2^256, so
    /// target = floor((2^256 − 1) / d); hashes are read little-endian.
    Monero,
    /// Ethash and KawPow: boundary = floor(2^256 / d), clamped to 2^256 − 1 (so difficulty 1
    /// is [`Target::MAX`]); hashes are read **big-endian**.
    Ethash,
}

/// Splits a finite positive `f64` into `(m, e)` with `d = m · 2^e` and `m` an odd integer
/// (or `m < 2^53` for subnormals).
fn decompose(d: f64) -> (u64, i32) {
    let bits = d.to_bits();
    let exp_field = ((bits >> 52) & 0x7ff) as i32;
    let frac = bits & ((1u64 << 52) - 1);
    let (mut m, mut e) = if exp_field == 0 {
        (frac, -1074)
    } else {
        (frac | (1u64 << 52), exp_field - 1075)
    };
    if m != 0 {
        let tz = m.trailing_zeros();
        m >>= tz;
        e += tz as i32;
    }
    (m, e)
}

/// floor(n · 2^shift / m) for `m > 0`, saturating at [`U256::MAX`]. A negative `shift`
/// divides by a power of two first (floor of floors is the floor of the quotient).
fn scaled_div(n: U256, shift: i32, m: u64) -> U256 {
    debug_assert!(m != 0);
    if shift <= 0 {
        let s = shift.unsigned_abs();
        let shifted = if s >= 256 { U256::ZERO } else { n >> s };
        return limbs_div_u64(&shifted.0, m).0.into();
    }
    let s = shift as u32;
    // m < 2^53, so a numerator of 2^310 or more gives a quotient above 2^256.
    if n.is_zero() {
        return U256::ZERO;
    }
    if n.bits() + s > 310 {
        return U256::MAX;
    }
    let wide = [n.0[0], n.0[1], n.0[2], n.0[3], 0, 0, 0, 0];
    let wide = limbs_shl(&wide, s);
    let (q, _) = limbs_div_u64(&wide, m);
    if q[4..].iter().any(|&l| l != 0) {
        U256::MAX
    } else {
        U256([q[0], q[1], q[2], q[3]])
    }
}

/// floor((2^p − 1) / m) for `m > 0` and `p >= 0`, saturating at [`U256::MAX`].
fn pow2_minus_one_div(p: u32, m: u64) -> U256 {
    if p > 310 {
        return U256::MAX;
    }
    let mut wide = [0u64; 8];
    for (i, limb) in wide.iter_mut().enumerate() {
        let lo = 64 * i as u32;
        if p >= lo + 64 {
            *limb = u64::MAX;
        } else if p > lo {
            *limb = (1u64 << (p - lo)) - 1;
        }
    }
    let (q, _) = limbs_div_u64(&wide, m);
    if q[4..].iter().any(|&l| l != 0) {
        U256::MAX
    } else {
        U256([q[0], q[1], q[2], q[3]])
    }
}

impl DifficultyConvention {
    /// The target of difficulty 1.
    pub fn diff1_target(self) -> Target {
        match self {
            DifficultyConvention::Bitcoin => BITCOIN_DIFF1_TARGET,
            DifficultyConvention::Scrypt => SCRYPT_DIFF1_TARGET,
            DifficultyConvention::Monero | DifficultyConvention::Ethash => Target::MAX,
        }
    }

    /// `true` when this family reads hashes as big-endian integers (Ethash, KawPow).
    pub fn hash_is_big_endian(self) -> bool {
        matches!(self, DifficultyConvention::Ethash)
    }

    /// The target for a difficulty, computed exactly in integer arithmetic from the binary
    /// expansion of the `f64` (no float division); saturates at [`Target::MAX`] for tiny
    /// difficulties.
    pub fn target_for(self, difficulty: Difficulty) -> Target {
        let (m, e) = decompose(difficulty.0);
        let v = match self {
            DifficultyConvention::Bitcoin | DifficultyConvention::Scrypt => {
                // floor(diff1 / (m · 2^e)) = floor(diff1 · 2^-e / m)
                scaled_div(self.diff1_target().0, -e, m)
            }
            DifficultyConvention::Ethash => {
                // floor(2^256 / (m · 2^e)) = floor(2^(256-e) / m), clamped.
                let p = 256 - i64::from(e);
                if p < 0 {
                    U256::ZERO
                } else if p >= 256 {
                    // 2^256 itself does not fit; the quotient is >= 2^256 / m. Compute
                    // floor(2^(p-1) · 2 / m) through the wide path (saturates when needed).
                    scaled_div(U256::ONE << 255, (p - 255) as i32, m)
                } else {
                    scaled_div(U256::ONE << (p as u32), 0, m)
                }
            }
            DifficultyConvention::Monero => {
                // Largest h with h · d < 2^256: h = ceil(2^256 / d) − 1
                // = floor((2^(256-e) − 1) / m) when 256 − e >= 0, otherwise 0.
                let p = 256 - i64::from(e);
                if p < 0 {
                    U256::ZERO
                } else {
                    pow2_minus_one_div(p.min(i64::from(u32::MAX)) as u32, m)
                }
            }
        };
        Target(v)
    }

    /// The difficulty of a target (the inverse of [`target_for`](Self::target_for), up to
    /// float rounding). A zero target is an error.
    pub fn difficulty_of(self, target: &Target) -> Result<Difficulty, DifficultyError> {
        let t = target.0;
        if t.is_zero() {
            return Err(DifficultyError::ZeroTarget);
        }
        let d = match self {
            DifficultyConvention::Bitcoin | DifficultyConvention::Scrypt => {
                self.diff1_target().0.to_f64() / t.to_f64()
            }
            DifficultyConvention::Ethash => TWO_POW_256 / t.to_f64(),
            DifficultyConvention::Monero => match t.checked_add(U256::ONE) {
                Some(t1) => TWO_POW_256 / t1.to_f64(),
                None => 1.0,
            },
        };
        Difficulty::new(d)
    }

    /// The difficulty a single hash achieves (the largest difficulty whose target it meets),
    /// reading the hash in this family's byte order. For the Bitcoin family this is cgminer's
    /// share difficulty, diff1 / LE-uint256(hash). An all-zero hash gives `f64::INFINITY`.
    pub fn share_difficulty(self, hash: &[u8; 32]) -> f64 {
        let h = if self.hash_is_big_endian() {
            U256::from_be_bytes(*hash)
        } else {
            U256::from_le_bytes(*hash)
        };
        match self.difficulty_of(&Target(h)) {
            Ok(d) => d.0,
            Err(_) => f64::INFINITY,
        }
    }

    /// Whether `hash` meets `target` in this family's byte order.
    pub fn is_met(self, target: &Target, hash: &[u8; 32]) -> bool {
        if self.hash_is_big_endian() {
            target.is_met_by_be(hash)
        } else {
            target.is_met_by(hash)
        }
    }

    /// The work (expected hashes) of one share at `difficulty`: 2^256 / (target + 1) of the
    /// exact target. For Bitcoin this is about d · 2^32 (exactly d · 2^48 / 0xffff), for
    /// scrypt pools about d · 2^16, and for Monero and Ethash about d.
    pub fn work_for(self, difficulty: Difficulty) -> Work {
        Work::from_target(&self.target_for(difficulty))
    }

    /// The expected number of hashes per share at `difficulty`, 2^256 / (target + 1)
    /// computed in floating point (unlike [`Work`], not floored, so that small difficulties
    /// keep their fraction).
    pub fn expected_hashes(self, difficulty: Difficulty) -> f64 {
        let t = self.target_for(difficulty).0;
        match t.checked_add(U256::ONE) {
            Some(t1) => TWO_POW_256 / t1.to_f64(),
            None => 1.0,
        }
    }
}

/// Monero's `check_hash`: `true` when LE-uint256(hash) · difficulty < 2^256.
///
/// A difficulty of zero is met by every hash, as in Monero.
pub fn monero_check_hash(hash: &[u8; 32], difficulty: u64) -> bool {
    U256::from_le_bytes(*hash)
        .checked_mul_u64(difficulty)
        .is_some()
}

/// The target a Monero `difficulty` stands for: the largest hash (little-endian) that
/// [`monero_check_hash`] accepts, ⌊(2^256 − 1) / difficulty⌋ (every hash for zero).
pub fn monero_target(difficulty: u64) -> Target {
    match U256::MAX.div_rem_u64(difficulty) {
        Some((quotient, _)) => Target(quotient),
        None => Target::MAX,
    }
}

// ---------------------------------------------------------------------------------------------
// Monero stratum targets
// ---------------------------------------------------------------------------------------------

/// Why a Monero stratum target string could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MoneroTargetError {
    /// The string is not 8 or 16 hex digits.
    #[error("monero target {hex:?} must be 8 or 16 hex digits")]
    Length {
        /// The rejected string.
        hex: String,
    },
    /// The string contains a non-hex character.
    #[error("monero target {hex:?} is not hex")]
    NotHex {
        /// The rejected string.
        hex: String,
    },
    /// The target is zero.
    #[error("monero target {hex:?} is zero")]
    Zero {
        /// The rejected string.
        hex: String,
    },
    /// A difficulty of zero has no target.
    #[error("monero difficulty must be at least 1")]
    ZeroDifficulty,
}

/// A Monero stratum (xmrig) share target: the `"target"` field of a job.
///
/// * 4-byte form `t32` (8 hex digits, little-endian): target64 = (2^64 − 1) / ((2^32 − 1) / t32).
/// * 8-byte form (16 hex digits): a little-endian `u64` target64.
///
/// A hash meets a target64 when its last 8 bytes, read as a little-endian `u64`, are below
/// it, and the difficulty is (2^64 − 1) / target64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MoneroTarget {
    /// The 4-byte form.
    Short(u32),
    /// The 8-byte form.
    Long(u64),
}

impl MoneroTarget {
    /// Difficulties up to this value use the 4-byte form in [`from_difficulty`]
    /// (p2pool switches at about four million).
    ///
    /// [`from_difficulty`]: MoneroTarget::from_difficulty
    pub const SHORT_FORM_MAX_DIFFICULTY: u64 = 4_000_000;

    /// The 4-byte form of `difficulty`: t32 = (2^32 − 1) / difficulty (at least 1).
    pub fn short_from_difficulty(difficulty: u64) -> Result<MoneroTarget, MoneroTargetError> {
        if difficulty == 0 {
            return Err(MoneroTargetError::ZeroDifficulty);
        }
        let t32 = (u64::from(u32::MAX) / difficulty).max(1) as u32;
        Ok(MoneroTarget::Short(t32))
    }

    /// The 8-byte form of `difficulty`: target64 = (2^64 − 1) / difficulty.
    pub fn long_from_difficulty(difficulty: u64) -> Result<MoneroTarget, MoneroTargetError> {
        if difficulty == 0 {
            return Err(MoneroTargetError::ZeroDifficulty);
        }
        Ok(MoneroTarget::Long(u64::MAX / difficulty))
    }

    /// The 4-byte form for difficulties up to [`SHORT_FORM_MAX_DIFFICULTY`], the 8-byte form
    /// above.
    ///
    /// [`SHORT_FORM_MAX_DIFFICULTY`]: MoneroTarget::SHORT_FORM_MAX_DIFFICULTY
    pub fn from_difficulty(difficulty: u64) -> Result<MoneroTarget, MoneroTargetError> {
        if difficulty <= Self::SHORT_FORM_MAX_DIFFICULTY {
            Self::short_from_difficulty(difficulty)
        } else {
            Self::long_from_difficulty(difficulty)
        }
    }

    /// The 64-bit target the miner compares the top 8 bytes of a hash with.
    pub fn target64(self) -> u64 {
        match self {
            MoneroTarget::Short(t32) => {
                let q = u64::from(u32::MAX) / u64::from(t32.max(1));
                u64::MAX / q.max(1)
            }
            MoneroTarget::Long(t64) => t64,
        }
    }

    /// The difficulty, (2^64 − 1) / target64 (a zero target64 counts as 1).
    pub fn difficulty(self) -> u64 {
        u64::MAX / self.target64().max(1)
    }

    /// `true` when the last 8 bytes of `hash`, read little-endian, are below target64.
    pub fn is_met_by(self, hash: &[u8; 32]) -> bool {
        le_limb(hash, 3) < self.target64()
    }

    /// The equivalent 256-bit [`Target`]: target64 · 2^192 − 1 (hashes are little-endian).
    pub fn to_target(self) -> Target {
        let t = U256::from_u64(self.target64()) << 192;
        Target(t.checked_sub(U256::ONE).unwrap_or(U256::ZERO))
    }

    /// Lowercase little-endian hex: 8 digits for the 4-byte form, 16 for the 8-byte form.
    pub fn to_hex(self) -> String {
        let bytes: Vec<u8> = match self {
            MoneroTarget::Short(t) => t.to_le_bytes().to_vec(),
            MoneroTarget::Long(t) => t.to_le_bytes().to_vec(),
        };
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses either form from little-endian hex (case-insensitive). Zero is rejected.
    pub fn from_hex(hex: &str) -> Result<MoneroTarget, MoneroTargetError> {
        let bytes = hex.as_bytes();
        if bytes.len() != 8 && bytes.len() != 16 {
            return Err(MoneroTargetError::Length {
                hex: hex.to_owned(),
            });
        }
        let mut value: u64 = 0;
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            let hi = hex_digit(pair[0]);
            let lo = hex_digit(pair[1]);
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(MoneroTargetError::NotHex {
                    hex: hex.to_owned(),
                });
            };
            value |= u64::from((hi << 4) | lo) << (8 * i);
        }
        if value == 0 {
            return Err(MoneroTargetError::Zero {
                hex: hex.to_owned(),
            });
        }
        if bytes.len() == 8 {
            Ok(MoneroTarget::Short(value as u32))
        } else {
            Ok(MoneroTarget::Long(value))
        }
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Work and hashrate
// ---------------------------------------------------------------------------------------------

/// Expected number of hashes to find one hash meeting a target: floor(2^256 / (target + 1)),
/// as Bitcoin Core's `GetBlockProof`. Work adds up along a chain or a share window.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Work(U256);

impl Work {
    /// No work.
    pub const ZERO: Work = Work(U256::ZERO);

    /// The work of `target`. [`Target::MAX`] gives 1; the zero target (2^256 in theory)
    /// saturates at 2^256 − 1.
    pub fn from_target(target: &Target) -> Work {
        match target.0.checked_add(U256::ONE) {
            None => Work(U256::ONE),
            // 2^256 / (t + 1) = (2^256 − 1 − t) / (t + 1) + 1, as Core computes it.
            Some(t1) => {
                let q = (!target.0).div_rem(t1).map(|(q, _)| q).unwrap_or(U256::MAX);
                Work(q.saturating_add(U256::ONE))
            }
        }
    }

    /// Wraps a 256-bit count of hashes.
    pub const fn from_u256(v: U256) -> Work {
        Work(v)
    }

    /// The work as a 256-bit integer.
    pub const fn as_u256(&self) -> U256 {
        self.0
    }

    /// The work as an `f64` number of hashes.
    pub fn to_f64(&self) -> f64 {
        self.0.to_f64()
    }

    /// Addition; `None` on overflow.
    pub fn checked_add(self, rhs: Work) -> Option<Work> {
        self.0.checked_add(rhs.0).map(Work)
    }
}

impl Add for Work {
    type Output = Work;
    /// Saturating addition (2^256 − 1 hashes is not reachable in practice).
    fn add(self, rhs: Work) -> Work {
        Work(self.0.saturating_add(rhs.0))
    }
}

impl core::iter::Sum for Work {
    fn sum<I: Iterator<Item = Work>>(iter: I) -> Work {
        iter.fold(Work::ZERO, |a, b| a + b)
    }
}

impl fmt::Debug for Work {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Work({:#x})", self.0)
    }
}

impl fmt::Display for Work {
    /// 64 hex digits, most significant first.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Why a hashrate could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum HashrateError {
    /// The hash count or the hashrate is negative, NaN or infinite.
    #[error("hash count {value} is not a finite non-negative number")]
    InvalidHashes {
        /// The rejected value.
        value: f64,
    },
    /// The duration is zero, negative, NaN or infinite.
    #[error("duration {secs} s is not a finite positive number")]
    InvalidDuration {
        /// The rejected duration in seconds.
        secs: f64,
    },
}

/// Hashes per second: finite and non-negative.
#[derive(Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Hashrate(f64);

impl Hashrate {
    /// Zero hashes per second.
    pub const ZERO: Hashrate = Hashrate(0.0);

    /// Checks that `hashes_per_sec` is finite and non-negative.
    pub fn new(hashes_per_sec: f64) -> Result<Hashrate, HashrateError> {
        if !hashes_per_sec.is_finite() || hashes_per_sec < 0.0 {
            return Err(HashrateError::InvalidHashes {
                value: hashes_per_sec,
            });
        }
        Ok(Hashrate(hashes_per_sec))
    }

    /// `hashes / secs`.
    pub fn from_hashes_and_secs(hashes: f64, secs: f64) -> Result<Hashrate, HashrateError> {
        if !secs.is_finite() || secs <= 0.0 {
            return Err(HashrateError::InvalidDuration { secs });
        }
        if !hashes.is_finite() || hashes < 0.0 {
            return Err(HashrateError::InvalidHashes { value: hashes });
        }
        Hashrate::new(hashes / secs)
    }

    /// Hashes per second.
    pub const fn as_f64(self) -> f64 {
        self.0
    }
}

impl fmt::Debug for Hashrate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hashrate({} H/s)", self.0)
    }
}

impl fmt::Display for Hashrate {
    /// SI units with one decimal by default, e.g. `12.3 MH/s`; `{:.3}` changes the decimals.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 9] = ["", "k", "M", "G", "T", "P", "E", "Z", "Y"];
        let mut v = self.0;
        let mut unit = UNITS[0];
        for u in UNITS.iter().skip(1) {
            if v < 1000.0 {
                break;
            }
            v /= 1000.0;
            unit = u;
        }
        let precision = f.precision().unwrap_or(1);
        write!(f, "{v:.precision$} {unit}H/s")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn monero_target_is_the_check_hash_boundary(difficulty in 1u64.., hash in proptest::prelude::any::<[u8; 32]>()) {
            let target = monero_target(difficulty);
            proptest::prop_assert_eq!(target.is_met_by(&hash), monero_check_hash(&hash, difficulty));
            let edge = target.to_le_bytes();
            proptest::prop_assert!(monero_check_hash(&edge, difficulty));
            if let Some(above) = target.as_u256().checked_add(U256::ONE) {
                proptest::prop_assert!(!monero_check_hash(&above.to_le_bytes(), difficulty));
            }
        }
    }

    #[test]
    fn diff1_targets() {
        assert_eq!(
            BITCOIN_DIFF1_TARGET.to_string(),
            "00000000ffff0000000000000000000000000000000000000000000000000000"
        );
        assert_eq!(
            SCRYPT_DIFF1_TARGET.to_string(),
            "0000ffff00000000000000000000000000000000000000000000000000000000"
        );
    }

    fn d(v: f64) -> Difficulty {
        Difficulty::new(v).unwrap()
    }

    #[test]
    fn known_targets() {
        use DifficultyConvention::*;
        assert_eq!(Bitcoin.target_for(d(1.0)), BITCOIN_DIFF1_TARGET);
        assert_eq!(Scrypt.target_for(d(1.0)), SCRYPT_DIFF1_TARGET);
        assert_eq!(Ethash.target_for(d(1.0)), Target::MAX);
        assert_eq!(
            Ethash.target_for(d(2.0)),
            Target::from_u256(U256::ONE << 255)
        );
        assert_eq!(Monero.target_for(d(1.0)), Target::MAX);
        assert_eq!(
            Bitcoin.target_for(d(2.0)).to_string(),
            "000000007fff8000000000000000000000000000000000000000000000000000"
        );
        // floor(0xffff * 2^208 / 3)
        assert_eq!(
            Bitcoin.target_for(d(3.0)).to_string(),
            "0000000055550000000000000000000000000000000000000000000000000000"
        );
        assert_eq!(Bitcoin.target_for(d(1e-30)), Target::MAX);
        assert_eq!(Ethash.target_for(d(0.5)), Target::MAX);
        assert_eq!(Bitcoin.target_for(d(f64::MAX)), Target::ZERO);
        // Bitcoin difficulty 1/65536 is the scrypt diff-1 target.
        assert_eq!(Bitcoin.target_for(d(1.0 / 65536.0)), SCRYPT_DIFF1_TARGET);
    }

    #[test]
    fn known_difficulties() {
        use DifficultyConvention::*;
        assert_eq!(
            Bitcoin
                .difficulty_of(&BITCOIN_DIFF1_TARGET)
                .unwrap()
                .as_f64(),
            1.0
        );
        assert_eq!(
            Scrypt.difficulty_of(&SCRYPT_DIFF1_TARGET).unwrap().as_f64(),
            1.0
        );
        assert_eq!(Ethash.difficulty_of(&Target::MAX).unwrap().as_f64(), 1.0);
        assert_eq!(Monero.difficulty_of(&Target::MAX).unwrap().as_f64(), 1.0);
        assert_eq!(
            Bitcoin.difficulty_of(&Target::ZERO),
            Err(DifficultyError::ZeroTarget)
        );
    }

    #[test]
    fn monero_known() {
        let t = MoneroTarget::long_from_difficulty(1000).unwrap();
        assert_eq!(t.to_hex(), "efa7c64b37894100");
        assert_eq!(t.difficulty(), 1000);
        assert_eq!(MoneroTarget::from_hex("efa7c64b37894100").unwrap(), t);
        let s = MoneroTarget::short_from_difficulty(1000).unwrap();
        assert_eq!(s, MoneroTarget::Short(u32::MAX / 1000));
        assert_eq!(s.difficulty(), 1000);
        assert!(monero_check_hash(&[0xff; 32], 1));
        assert!(!monero_check_hash(&[0xff; 32], 2));
        assert!(MoneroTarget::from_hex("0000000").is_err());
        assert!(MoneroTarget::from_hex("zz000000").is_err());
        assert!(MoneroTarget::from_hex("00000000").is_err());
    }

    #[test]
    fn work_values() {
        assert_eq!(Target::MAX.to_work().as_u256(), U256::ONE);
        assert_eq!(Target::ZERO.to_work().as_u256(), U256::MAX);
        assert_eq!(
            Target::from_u256(U256::ONE << 255).to_work().as_u256(),
            U256::from_u64(1)
        );
        // Core: block proof of the diff-1 target is 0x100010001.
        assert_eq!(
            BITCOIN_DIFF1_TARGET.to_work().as_u256(),
            U256::from_u64(0x1_0001_0001)
        );
        let w = BITCOIN_DIFF1_TARGET.to_work() + BITCOIN_DIFF1_TARGET.to_work();
        assert_eq!(w.as_u256(), U256::from_u64(0x2_0002_0002));
    }

    #[test]
    fn hashrate_display() {
        let h = Hashrate::from_hashes_and_secs(123.0e6, 10.0).unwrap();
        assert_eq!(h.to_string(), "12.3 MH/s");
        assert_eq!(Hashrate::new(999.0).unwrap().to_string(), "999.0 H/s");
        assert_eq!(
            format!("{:.2}", Hashrate::new(1.5e12).unwrap()),
            "1.50 TH/s"
        );
        assert!(Hashrate::from_hashes_and_secs(1.0, 0.0).is_err());
        assert!(Hashrate::new(f64::NAN).is_err());
    }

    #[test]
    fn compact_basics() {
        let t = CompactTarget::from_consensus(0x1d00ffff).decode().unwrap();
        assert_eq!(t, BITCOIN_DIFF1_TARGET);
        assert_eq!(t.to_compact().to_consensus(), 0x1d00ffff);
        assert_eq!(Target::MAX.to_compact().to_consensus(), 0x2100ffff);
        let pow_limit = Target::from_u256(U256::MAX >> 32);
        assert_eq!(pow_limit.to_compact().to_consensus(), 0x1d00ffff);
        assert_eq!(Target::ZERO.to_compact().to_consensus(), 0);
        assert_eq!(
            Target::from_u256(U256::from_u64(0x80))
                .to_compact()
                .to_consensus(),
            0x02008000
        );
    }

    #[test]
    fn div_rem_wide() {
        let a = U256::MAX;
        let b = U256::from_u128(u128::MAX) << 3;
        let (q, r) = a.div_rem(b).unwrap();
        assert_eq!(q.checked_mul(b).unwrap().checked_add(r).unwrap(), a);
        assert!(r < b);
        assert_eq!(U256::ONE.div_rem(U256::ZERO), None);
    }

    #[test]
    fn decompose_values() {
        assert_eq!(decompose(1.0), (1, 0));
        assert_eq!(decompose(1.5), (3, -1));
        assert_eq!(decompose(1024.0), (1, 10));
    }
}
