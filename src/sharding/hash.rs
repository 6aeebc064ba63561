//! PostgreSQL's hash partitioning functions, bit-exact, so our bucket of a key is the partition PostgreSQL
//! itself would pick (`satisfies_hash_partition` agrees with us). Pure.
//!
//! Ported from PostgreSQL 15: `src/common/hashfn.c` (Bob Jenkins' lookup3 as PostgreSQL adapted it, with the
//! little-endian byte order of the platforms we run on), the `*extended` hash support functions in
//! `src/backend/utils/adt/`, and `hash_combine64` from `src/include/common/hashfn.h`.

/// The seed PostgreSQL passes to every key column's extended hash function when routing a row to a hash
/// partition (`HASH_PARTITION_SEED` in `src/include/catalog/partition.h`).
pub const HASH_PARTITION_SEED: u64 = 0x7A5B_2236_7996_DCFD;

/// lookup3's `mix()`.
#[inline(always)]
fn mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    *a = a.wrapping_sub(*c) ^ c.rotate_left(4);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a) ^ a.rotate_left(6);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b) ^ b.rotate_left(8);
    *b = b.wrapping_add(*a);
    *a = a.wrapping_sub(*c) ^ c.rotate_left(16);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a) ^ a.rotate_left(19);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b) ^ b.rotate_left(4);
    *b = b.wrapping_add(*a);
}

/// lookup3's `final()`; the 64-bit result is `b:c`.
#[inline(always)]
fn finish(mut a: u32, mut b: u32, mut c: u32) -> u64 {
    c = (c ^ b).wrapping_sub(b.rotate_left(14));
    a = (a ^ c).wrapping_sub(c.rotate_left(11));
    b = (b ^ a).wrapping_sub(a.rotate_left(25));
    c = (c ^ b).wrapping_sub(b.rotate_left(16));
    a = (a ^ c).wrapping_sub(c.rotate_left(4));
    b = (b ^ a).wrapping_sub(a.rotate_left(14));
    c = (c ^ b).wrapping_sub(b.rotate_left(24));
    (u64::from(b) << 32) | u64::from(c)
}

/// The initial state for a key of `len` bytes, perturbed by a non-zero seed as if the seed were a leading
/// 12-byte block (its high half in `a`, low half in `b`).
#[inline(always)]
fn start(len: u32, seed: u64) -> (u32, u32, u32) {
    let init = 0x9e37_79b9u32.wrapping_add(len).wrapping_add(3_923_095);
    let (mut a, mut b, mut c) = (init, init, init);
    if seed != 0 {
        a = a.wrapping_add((seed >> 32) as u32);
        b = b.wrapping_add(seed as u32);
        mix(&mut a, &mut b, &mut c);
    }
    (a, b, c)
}

/// Little-endian load of up to four bytes (a short tail is zero-padded, as lookup3's tail switch does).
#[inline(always)]
fn word(k: &[u8]) -> u32 {
    let mut w = [0u8; 4];
    w[..k.len()].copy_from_slice(k);
    u32::from_le_bytes(w)
}

/// `hash_bytes_extended`: `hash_any_extended` of a byte string.
pub fn hash_bytes_extended(k: &[u8], seed: u64) -> u64 {
    // PostgreSQL takes the length as an `int` and mixes it in as a uint32; keys longer than 1 GB do not exist.
    let (mut a, mut b, mut c) = start(k.len() as u32, seed);
    let mut blocks = k.chunks_exact(12);
    for block in &mut blocks {
        a = a.wrapping_add(word(&block[0..4]));
        b = b.wrapping_add(word(&block[4..8]));
        c = c.wrapping_add(word(&block[8..12]));
        mix(&mut a, &mut b, &mut c);
    }
    let tail = blocks.remainder();
    // The tail fills a, b, then c from its second byte up: the lowest byte of c is left for the length.
    a = a.wrapping_add(word(&tail[..tail.len().min(4)]));
    if tail.len() > 4 {
        b = b.wrapping_add(word(&tail[4..tail.len().min(8)]));
    }
    if tail.len() > 8 {
        c = c.wrapping_add(word(&tail[8..]) << 8);
    }
    finish(a, b, c)
}

/// `hash_bytes_uint32_extended`: a 4-byte key added as one word.
pub fn hash_uint32_extended(k: u32, seed: u64) -> u64 {
    let (a, b, c) = start(4, seed);
    finish(a.wrapping_add(k), b, c)
}

/// `hashint8extended`. An `int2` or `int4` widened to `i64` hashes the same as it does in PostgreSQL
/// (`hashint2extended`, `hashint4extended`), which is what lets cross-type hash partitioning work.
pub fn hash_int8_extended(v: i64, seed: u64) -> u64 {
    let lo = v as u32;
    let hi = (v >> 32) as u32;
    // Fold the high half in so that values fitting in int4 hash as int4 does (hi is all sign bits then).
    let folded = lo ^ if v >= 0 { hi } else { !hi };
    hash_uint32_extended(folded, seed)
}

/// `hashtextextended` for a deterministic collation: the UTF-8 bytes of the text, without a terminator.
pub fn hash_text_extended(s: &[u8], seed: u64) -> u64 {
    hash_bytes_extended(s, seed)
}

/// `uuid_hash_extended`: the 16 bytes in network order.
pub fn hash_uuid_extended(u: &[u8; 16], seed: u64) -> u64 {
    hash_bytes_extended(u, seed)
}

/// What PostgreSQL's hash partitioning computes for a one-column key whose extended hash (with
/// [`HASH_PARTITION_SEED`]) is `h`: `hash_combine64(0, h)`. The partition is this value `% modulus`.
pub fn partition_combine(h: u64) -> u64 {
    hash_combine64(0, h)
}

/// `hash_combine64` from `src/include/common/hashfn.h`; 0x49a0f4dd15e5a8e3 is its 64 bits of random data.
fn hash_combine64(a: u64, b: u64) -> u64 {
    a ^ b
        .wrapping_add(0x49a0_f4dd_15e5_a8e3)
        .wrapping_add(a << 54)
        .wrapping_add(a >> 7)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    enum Key {
        /// int2, int4 and int8 values alike (widened).
        Int(i64),
        Text(&'static str),
        Uuid(&'static str),
    }
    use Key::*;

    fn uuid(text: &str) -> [u8; 16] {
        let hex: Vec<u8> = text.bytes().filter(|b| *b != b'-').collect();
        let mut out = [0u8; 16];
        for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
            let pair = std::str::from_utf8(pair).expect("test uuid is ASCII");
            *byte = u8::from_str_radix(pair, 16).expect("test uuid is hex");
        }
        out
    }

    fn hash(key: &Key, seed: u64) -> u64 {
        match key {
            Int(v) => hash_int8_extended(*v, seed),
            Text(s) => hash_text_extended(s.as_bytes(), seed),
            Uuid(s) => hash_uuid_extended(&uuid(s), seed),
        }
    }

    /// `want` as PostgreSQL prints it: the SQL functions return a signed bigint.
    fn check(key: &Key, seed: u64, want: i64) {
        assert_eq!(hash(key, seed), want as u64, "{key:?} seed {seed:#x}");
    }

    #[test]
    fn matches_postgresql_15() {
        // From PostgreSQL 15.18: hashint8extended(v, seed), hashint4extended(v::int4, seed),
        // hashint2extended(v::int2, seed), hashtextextended(t, seed) (UTF8 database, deterministic
        // collation), uuid_hash_extended(u, seed); seeds given to SQL as signed bigint.
        let table: &[(Key, u64, i64)] = &[
            (Int(0), 0, 4154612158245552303),
            (Int(1), 0, -3670598878359251130),
            (Int(-1), 0, -1888257769727981238),
            (Int(1), HASH_PARTITION_SEED, 5968994663651403477),
            (Int(-1), HASH_PARTITION_SEED, -5017072347659237694),
            (Int(42), 42, 826591455424871831),
            (Int(-300), u64::MAX, 3709702887270975720),
            (Int(i64::MAX), HASH_PARTITION_SEED, 4938542303000433043),
            (Int(i64::MIN), HASH_PARTITION_SEED, -6050265599104649060),
            (Int(i64::MAX), 0, 1977219185673256887),
            (Int(i64::MIN), 1 << 63, 1541059758912566796),
            (Int(4294967296), HASH_PARTITION_SEED, 5968994663651403477),
            (Int(-2147483649), HASH_PARTITION_SEED, -6050265599104649060),
            (Int(1234567890123), HASH_PARTITION_SEED, 4234184308168508908),
            (Int(-1234567890123), u64::MAX, 6903608783228126722),
            // hashint4extended
            (
                Int(i32::MAX as i64),
                HASH_PARTITION_SEED,
                -6050265599104649060,
            ),
            (
                Int(i32::MIN as i64),
                HASH_PARTITION_SEED,
                4938542303000433043,
            ),
            (Int(-100), u64::MAX, -2059551318871560703),
            // hashint2extended
            (Int(i16::MAX as i64), 0, 1790040721271588170),
            (
                Int(i16::MIN as i64),
                HASH_PARTITION_SEED,
                5885242512097991578,
            ),
            // Every tail length of the 12-byte block loop, with zero, one and two blocks before it.
            (Text(""), HASH_PARTITION_SEED, -5700645584453517373),
            (Text("T"), HASH_PARTITION_SEED, -5744778375200340036),
            (Text("Th"), HASH_PARTITION_SEED, -3898278563181308333),
            (Text("The"), HASH_PARTITION_SEED, 3515404771647576006),
            (Text("The "), HASH_PARTITION_SEED, -2252019373604324759),
            (Text("The q"), HASH_PARTITION_SEED, -5703651373769001236),
            (Text("The qu"), HASH_PARTITION_SEED, -949884056120241652),
            (Text("The qui"), HASH_PARTITION_SEED, 2490044116434112174),
            (Text("The quic"), HASH_PARTITION_SEED, 8197177666979083362),
            (Text("The quick"), HASH_PARTITION_SEED, 1128990387745890170),
            (
                Text("The quick "),
                HASH_PARTITION_SEED,
                -7249906615326372176,
            ),
            (
                Text("The quick b"),
                HASH_PARTITION_SEED,
                -5235799857860941163,
            ),
            (
                Text("The quick br"),
                HASH_PARTITION_SEED,
                -5372500833392535518,
            ),
            (
                Text("The quick bro"),
                HASH_PARTITION_SEED,
                3994320958599819571,
            ),
            (
                Text("The quick brow"),
                HASH_PARTITION_SEED,
                -5863929275387938153,
            ),
            (
                Text("The quick brown"),
                HASH_PARTITION_SEED,
                3195964990734746365,
            ),
            (
                Text("The quick brown "),
                HASH_PARTITION_SEED,
                -6590194492130876340,
            ),
            (
                Text("The quick brown f"),
                HASH_PARTITION_SEED,
                7392068388824108558,
            ),
            (
                Text("The quick brown fo"),
                HASH_PARTITION_SEED,
                -1431726267575042354,
            ),
            (
                Text("The quick brown fox"),
                HASH_PARTITION_SEED,
                -799676844905196895,
            ),
            (
                Text("The quick brown fox "),
                HASH_PARTITION_SEED,
                -2006078361498342426,
            ),
            (
                Text("The quick brown fox j"),
                HASH_PARTITION_SEED,
                -5520832946600929388,
            ),
            (
                Text("The quick brown fox ju"),
                HASH_PARTITION_SEED,
                1104219756816140633,
            ),
            (
                Text("The quick brown fox jum"),
                HASH_PARTITION_SEED,
                -126307401200583330,
            ),
            (
                Text("The quick brown fox jump"),
                HASH_PARTITION_SEED,
                -6607058234038157299,
            ),
            (
                Text("The quick brown fox jumps"),
                HASH_PARTITION_SEED,
                5652438115739902581,
            ),
            (
                Text("The quick brown fox jumps "),
                HASH_PARTITION_SEED,
                1201374509327364659,
            ),
            (
                Text("The quick brown fox jumps o"),
                HASH_PARTITION_SEED,
                1093108374719870778,
            ),
            (
                Text("The quick brown fox jumps ov"),
                HASH_PARTITION_SEED,
                2679886066821309172,
            ),
            (
                Text("The quick brown fox jumps ove"),
                HASH_PARTITION_SEED,
                -1453668621564831766,
            ),
            (
                Text("The quick brown fox jumps over"),
                HASH_PARTITION_SEED,
                -23054996183676132,
            ),
            (Text(""), 0, -6939563903564495251),
            (Text("abc"), 0, -6747756470228489321),
            (Text("abc"), 42, 4423357919252764502),
            (
                Text("The quick brown fox jumps over the lazy dog, 0123456789"),
                u64::MAX,
                2339179878106366626,
            ),
            (Text("é"), HASH_PARTITION_SEED, 4377877661621198540),
            (Text("日本語"), HASH_PARTITION_SEED, -8050275759738715173),
            (Text("naïve café"), HASH_PARTITION_SEED, -312925380848054187),
            (
                Text("Ünïcödé strings with ✓ marks and 🎉 emoji"),
                HASH_PARTITION_SEED,
                -6269991114191288440,
            ),
            (
                Uuid("00000000-0000-0000-0000-000000000000"),
                HASH_PARTITION_SEED,
                -5281082146396728638,
            ),
            (
                Uuid("ffffffff-ffff-ffff-ffff-ffffffffffff"),
                HASH_PARTITION_SEED,
                -148986464341306210,
            ),
            (
                Uuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
                HASH_PARTITION_SEED,
                424513190990560493,
            ),
            (
                Uuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
                0,
                7543054272012930821,
            ),
        ];
        for (key, seed, want) in table {
            check(key, *seed, *want);
        }
    }

    fn check_bucket(key: &Key, want: u64) {
        let bucket = partition_combine(hash(key, HASH_PARTITION_SEED)) % 1024;
        assert_eq!(bucket, want, "{key:?}");
    }

    #[test]
    fn partition_matches_postgresql_15() {
        // From PostgreSQL 15.18: the one `b` in 0..1024 for which
        // satisfies_hash_partition('p'::regclass, 1024, b, k) is true, with p partitioned by hash on an
        // int8, int4, text or uuid column.
        let table: &[(Key, u64)] = &[
            (Int(0), 432),
            (Int(1), 952),
            (Int(-1), 933),
            (Int(50), 516),
            (Int(-50), 546),
            (Int(1000000), 139),
            (Int(i64::MAX), 630),
            (Int(i64::MIN), 383),
            (Int(4294967296), 952),
            // int4 column
            (Int(i32::MAX as i64), 383),
            (Int(i32::MIN as i64), 630),
            // text column
            (Text(""), 166),
            (Text("The"), 169),
            (Text("The quic"), 325),
            (Text("The quick"), 93),
            (Text("The quick brown"), 992),
            (Text("The quick brown "), 303),
            (Text("The quick brown fox jumps o"), 29),
            (Text("The quick brown fox jumps ov"), 983),
            (Text("The quick brown fox jumps over"), 1023),
            (Text("日本語"), 190),
            (Text("user_12345"), 266),
            // uuid column
            (Uuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), 464),
            (Uuid("ed566942-a8cc-40c1-971d-9f484f7c8d9d"), 36),
            (Uuid("95cb65e3-a20c-4ff2-bace-03c72d510eb4"), 420),
        ];
        for (key, want) in table {
            check_bucket(key, *want);
        }
    }
}
