//! Keccak as the Ethash family uses it.
//!
//! Keccak-256 and Keccak-512 with the original padding (`0x01 .. 0x80`, not SHA-3's `0x06`) run
//! on `tiny-keccak`'s Keccak-f[1600]. The fixed-size inputs of the hot paths (a 64-byte cache
//! node, the 40-byte header-and-nonce, the 96-byte seed-and-mix) are absorbed straight into the
//! permutation state, with no buffering. Keccak-f[800], which ProgPoW needs and `tiny-keccak`
//! does not provide, is written out here.

use tiny_keccak::{keccakf, Hasher, Keccak};

/// Keccak-256 with the original padding, as Ethereum uses it (not SHA3-256).
pub fn keccak256(data: &[u8]) -> [u8; 32] {
    let mut hasher = Keccak::v256();
    hasher.update(data);
    let mut out = [0u8; 32];
    hasher.finalize(&mut out);
    out
}

/// Keccak-512 with the original padding (not SHA3-512).
pub fn keccak512(data: &[u8]) -> [u8; 64] {
    let mut hasher = Keccak::v512();
    hasher.update(data);
    let mut out = [0u8; 64];
    hasher.finalize(&mut out);
    out
}

/// The padding bit that closes Keccak's rate block, in the top byte of its last lane.
const LAST_BIT: u64 = 0x8000_0000_0000_0000;
/// Lanes in Keccak-512's rate (72 bytes).
const RATE_512: usize = 9;
/// Lanes in Keccak-256's rate (136 bytes).
const RATE_256: usize = 17;

/// Two little-endian 32-bit words as one 64-bit lane.
#[inline(always)]
fn lane(lo: u32, hi: u32) -> u64 {
    u64::from(lo) | (u64::from(hi) << 32)
}

/// Keccak-512 of 64 bytes given as 16 little-endian words; the digest comes back the same way.
#[inline]
pub(crate) fn keccak512_words(words: &[u32; 16]) -> [u32; 16] {
    let mut state = [0u64; 25];
    for (i, slot) in state.iter_mut().take(8).enumerate() {
        *slot = lane(words[2 * i], words[2 * i + 1]);
    }
    state[8] = 0x01 | LAST_BIT;
    keccakf(&mut state);
    let mut out = [0u32; 16];
    for (i, &s) in state.iter().take(8).enumerate() {
        out[2 * i] = s as u32;
        out[2 * i + 1] = (s >> 32) as u32;
    }
    out
}

/// Keccak-512 of `header_hash || nonce` (the nonce as 8 little-endian bytes): Ethash's seed, as
/// 16 little-endian words.
#[inline]
pub(crate) fn keccak512_header_nonce(header_hash: &[u8; 32], nonce: u64) -> [u32; 16] {
    let mut state = [0u64; 25];
    for (slot, chunk) in state.iter_mut().zip(header_hash.chunks_exact(8)) {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        *slot = u64::from_le_bytes(bytes);
    }
    state[4] = nonce;
    state[5] = 0x01;
    state[RATE_512 - 1] = LAST_BIT;
    keccakf(&mut state);
    let mut out = [0u32; 16];
    for (i, &s) in state.iter().take(8).enumerate() {
        out[2 * i] = s as u32;
        out[2 * i + 1] = (s >> 32) as u32;
    }
    out
}

/// Keccak-256 of `seed || mix` (64 + 32 bytes, both as little-endian words): Ethash's final hash.
#[inline]
pub(crate) fn keccak256_seed_mix(seed: &[u32; 16], mix: &[u32; 8]) -> [u8; 32] {
    let mut state = [0u64; 25];
    for i in 0..8 {
        state[i] = lane(seed[2 * i], seed[2 * i + 1]);
    }
    for i in 0..4 {
        state[8 + i] = lane(mix[2 * i], mix[2 * i + 1]);
    }
    state[12] = 0x01;
    state[RATE_256 - 1] = LAST_BIT;
    keccakf(&mut state);
    let mut out = [0u8; 32];
    for (chunk, s) in out.chunks_exact_mut(8).zip(state) {
        chunk.copy_from_slice(&s.to_le_bytes());
    }
    out
}

/// Keccak-f[800] round constants: the low halves of Keccak-f[1600]'s first 22.
const RC800: [u32; 22] = [
    0x0000_0001,
    0x0000_8082,
    0x0000_808a,
    0x8000_8000,
    0x0000_808b,
    0x8000_0001,
    0x8000_8081,
    0x0000_8009,
    0x0000_008a,
    0x0000_0088,
    0x8000_8009,
    0x8000_000a,
    0x8000_808b,
    0x0000_008b,
    0x0000_8089,
    0x0000_8003,
    0x0000_8002,
    0x0000_0080,
    0x0000_800a,
    0x8000_000a,
    0x8000_8081,
    0x0000_8080,
];

/// ρ offsets along the π walk, reduced modulo the 32-bit lane width.
const RHO800: [u32; 24] = {
    let full: [u32; 24] = [
        1, 3, 6, 10, 15, 21, 28, 36, 45, 55, 2, 14, 27, 41, 56, 8, 25, 43, 62, 18, 39, 61, 20, 44,
    ];
    let mut out = [0u32; 24];
    let mut i = 0;
    while i < 24 {
        out[i] = full[i] % 32;
        i += 1;
    }
    out
};

/// The lane each step of the π walk moves to.
const PI: [usize; 24] = [
    10, 7, 11, 17, 18, 3, 5, 16, 8, 21, 24, 4, 15, 23, 19, 13, 12, 2, 20, 14, 22, 9, 6, 1,
];

/// Keccak-f[800]: the Keccak permutation on 25 32-bit lanes, 22 rounds.
pub(crate) fn keccakf800(state: &mut [u32; 25]) {
    for rc in RC800 {
        // θ: fold each column's parity into its neighbours.
        let mut parity = [0u32; 5];
        for (x, p) in parity.iter_mut().enumerate() {
            *p = state[x] ^ state[x + 5] ^ state[x + 10] ^ state[x + 15] ^ state[x + 20];
        }
        for x in 0..5 {
            let d = parity[(x + 4) % 5] ^ parity[(x + 1) % 5].rotate_left(1);
            for y in 0..5 {
                state[x + 5 * y] ^= d;
            }
        }
        // ρ and π together: walk the lanes, rotating each into its new place.
        let mut carried = state[1];
        for (&to, &rot) in PI.iter().zip(RHO800.iter()) {
            let displaced = state[to];
            state[to] = carried.rotate_left(rot);
            carried = displaced;
        }
        // χ: the only non-linear step, row by row.
        for y in 0..5 {
            let row = [
                state[5 * y],
                state[5 * y + 1],
                state[5 * y + 2],
                state[5 * y + 3],
                state[5 * y + 4],
            ];
            for x in 0..5 {
                state[5 * y + x] = row[x] ^ (!row[(x + 1) % 5] & row[(x + 2) % 5]);
            }
        }
        // ι
        state[0] ^= rc;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(bytes: &[u8]) -> Vec<u32> {
        bytes
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    fn bytes(words: &[u32]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    #[test]
    fn keccak_original_padding() {
        // Keccak-256("") is Ethereum's empty hash; SHA3-256("") would start with a7ffc6f8.
        assert_eq!(
            keccak256(b""),
            [
                0xc5, 0xd2, 0x46, 0x01, 0x86, 0xf7, 0x23, 0x3c, 0x92, 0x7e, 0x7d, 0xb2, 0xdc, 0xc7,
                0x03, 0xc0, 0xe5, 0x00, 0xb6, 0x53, 0xca, 0x82, 0x27, 0x3b, 0x7b, 0xfa, 0xd8, 0x04,
                0x5d, 0x85, 0xa4, 0x70
            ]
        );
    }

    #[test]
    fn fixed_size_paths_match_the_general_hash() {
        let data: Vec<u8> = (0..96u8)
            .map(|b| b.wrapping_mul(37).wrapping_add(11))
            .collect();
        let node: [u32; 16] = words(&data[..64]).try_into().expect("16 words");
        assert_eq!(
            bytes(&keccak512_words(&node)),
            keccak512(&data[..64]).to_vec()
        );

        let header: [u8; 32] = data[..32].try_into().expect("32 bytes");
        let nonce = 0x0123_4567_89ab_cdefu64;
        let mut input = header.to_vec();
        input.extend_from_slice(&nonce.to_le_bytes());
        assert_eq!(
            bytes(&keccak512_header_nonce(&header, nonce)),
            keccak512(&input).to_vec()
        );

        let seed: [u32; 16] = words(&data[..64]).try_into().expect("16 words");
        let mix: [u32; 8] = words(&data[64..]).try_into().expect("8 words");
        assert_eq!(keccak256_seed_mix(&seed, &mix), keccak256(&data));
    }

    #[test]
    fn keccakf800_matches_xkcp() {
        // XKCP TestVectors/KeccakF-800-IntermediateValues.txt: the zero state permuted once,
        // then again.
        let mut state = [0u32; 25];
        keccakf800(&mut state);
        assert_eq!(
            state,
            [
                0xE531D45D, 0xF404C6FB, 0x23A0BF99, 0xF1F8452F, 0x51FFD042, 0xE539F578, 0xF00B80A7,
                0xAF973664, 0xBF5AF34C, 0x227A2424, 0x88172715, 0x9F685884, 0xB15CD054, 0x1BF4FC0E,
                0x6166FA91, 0x1A9E599A, 0xA3970A1F, 0xAB659687, 0xAFAB8D68, 0xE74B1015, 0x34001A98,
                0x4119EFF3, 0x930A0E76, 0x87B28070, 0x11EFE996
            ]
        );
        keccakf800(&mut state);
        assert_eq!(
            state,
            [
                0x75BF2D0D, 0x9B610E89, 0xC826AF40, 0x64CD84AB, 0xF905BDD6, 0xBC832835, 0x5F8001B9,
                0x15662CCE, 0x8E38C95E, 0x701FE543, 0x1B544380, 0x89ACDEFF, 0x51EDB5DE, 0x0E9702D9,
                0x6C19AA16, 0xA2913EEE, 0x60754E9A, 0x9819063C, 0xF4709254, 0xD09F9084, 0x772DA259,
                0x1DB35DF7, 0x5AA60162, 0x358825D5, 0xB3783BAB
            ]
        );
    }
}
