//! The hash functions of `hash-type` (sdbm, djb2, wt6, crc32) and the
//! avalanche modifier, bit for bit as HAProxy computes them, since a
//! different hash would send every client of a migrated setup to a
//! different server.
//!
//! All arithmetic is on wrapping 32-bit unsigned integers, as in C.

use crate::config::model::{HashFunction, HashType};

/// sdbm: `h = c + (h << 6) + (h << 16) - h`, starting from 0.
pub fn sdbm(key: &[u8]) -> u32 {
    key.iter().fold(0u32, |h, &c| {
        u32::from(c)
            .wrapping_add(h << 6)
            .wrapping_add(h << 16)
            .wrapping_sub(h)
    })
}

/// djb2: `h = h * 33 + c`, starting from 5381.
pub fn djb2(key: &[u8]) -> u32 {
    key.iter().fold(5381u32, |h, &c| {
        (h << 5).wrapping_add(h).wrapping_add(u32::from(c))
    })
}

/// wt6, HAProxy's own: two state words rotated by data-dependent steps.
pub fn wt6(key: &[u8]) -> u32 {
    let (mut h0, mut h1) = (0xa53c_965a_u32, 0x5ca6_953a_u32);
    let (mut step0, mut step1) = (6u32, 18u32);
    for &c in key {
        let t = u32::from(c);
        h0 = !(h0 ^ t);
        h1 = !(h1.wrapping_add(t));
        // C's `(x << s) | (x >> (32 - s))` is a rotation; for s = 0 the C
        // expression shifts by 32, which x86 reduces to 0, giving x — the
        // same as rotate_left(0).
        let t = h1.rotate_left(step0);
        h1 = h0.rotate_left(step1);
        h0 = t;
        let t = ((h0 >> 16) ^ h1) & 0xffff;
        step0 = t & 0x1f;
        step1 = t >> 11;
    }
    h0 ^ h1
}

/// The common (Ethernet, gzip, PNG) CRC-32.
pub fn crc32(key: &[u8]) -> u32 {
    let mut h = !0u32;
    for &c in key {
        h ^= u32::from(c);
        for _ in 0..8 {
            h = (h >> 1) ^ if h & 1 != 0 { 0xedb8_8320 } else { 0 };
        }
    }
    !h
}

/// Bob Jenkins' full avalanche of a 32-bit value, then a multiplication by
/// a large prime, as HAProxy's `full_hash()`: the `avalanche` modifier, and
/// the key of every point on the consistent-hash ring.
pub fn full_hash(a: u32) -> u32 {
    let mut a = a;
    a = a.wrapping_add(0x7ed5_5d16).wrapping_add(a << 12);
    a = (a ^ 0xc761_c23c) ^ (a >> 19);
    a = a.wrapping_add(0x1656_67b1).wrapping_add(a << 5);
    a = a.wrapping_add(0xd3a2_646c) ^ (a << 9);
    a = a.wrapping_add(0xfd70_46c5).wrapping_add(a << 3);
    a = (a ^ 0xb55a_4f09) ^ (a >> 16);
    a.wrapping_mul(3_221_225_473)
}

/// The key's hash under `hash-type` (HAProxy's `gen_hash()`).
pub fn gen_hash(ty: &HashType, key: &[u8]) -> u32 {
    let h = match ty.function {
        HashFunction::Sdbm => sdbm(key),
        HashFunction::Djb2 => djb2(key),
        HashFunction::Wt6 => wt6(key),
        HashFunction::Crc32 => crc32(key),
    };
    if ty.avalanche {
        full_hash(h)
    } else {
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // CRC-32 check value from the standard.
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
        assert_eq!(djb2(b""), 5381);
        assert_eq!(djb2(b"a"), 5381 * 33 + 97);
        assert_eq!(sdbm(b""), 0);
        assert_eq!(sdbm(b"a"), 97);
        assert_eq!(
            sdbm(b"ab"),
            98u32
                .wrapping_add(97 << 6)
                .wrapping_add(97 << 16)
                .wrapping_sub(97)
        );
        // Avalanche mixes: neighbouring inputs land far apart.
        assert_ne!(full_hash(1) >> 24, full_hash(2) >> 24);
        assert_ne!(wt6(b"abc"), wt6(b"abd"));
    }
}
