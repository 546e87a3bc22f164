//! HPACK's Huffman code (RFC 7541 §5.2, the code table of its Appendix B): decoding only
//! (rampart's answers send their strings as they are, see [`super::hpack`]).
//!
//! Symbols of up to [`FAST`] bits (every letter, digit and common punctuation) are found
//! by one lookup of the next [`FAST`] bits. The rest use that the code is canonical:
//! within one length the codes are consecutive, and the first code of a length follows
//! the last of the length before, shifted, so a longer symbol is found length by length
//! with three small per-length tables. All are built once from the code table. (Bit by
//! bit, the decoding of an upstream's answer heads cost ~8k instructions per proxied
//! gRPC call; the lookup cuts that to a fifth.)

use std::sync::OnceLock;

/// Why a Huffman string is not one.
#[derive(Debug, PartialEq, Eq)]
pub struct Invalid;

const ENCODE_CODES: [u32; 256] = [
    0x1ff8, 0x7fffd8, 0xfffffe2, 0xfffffe3, 0xfffffe4, 0xfffffe5, 0xfffffe6, 0xfffffe7, 0xfffffe8,
    0xffffea, 0x3ffffffc, 0xfffffe9, 0xfffffea, 0x3ffffffd, 0xfffffeb, 0xfffffec, 0xfffffed,
    0xfffffee, 0xfffffef, 0xffffff0, 0xffffff1, 0xffffff2, 0x3ffffffe, 0xffffff3, 0xffffff4,
    0xffffff5, 0xffffff6, 0xffffff7, 0xffffff8, 0xffffff9, 0xffffffa, 0xffffffb, 0x14, 0x3f8,
    0x3f9, 0xffa, 0x1ff9, 0x15, 0xf8, 0x7fa, 0x3fa, 0x3fb, 0xf9, 0x7fb, 0xfa, 0x16, 0x17, 0x18,
    0x0, 0x1, 0x2, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x5c, 0xfb, 0x7ffc, 0x20, 0xffb,
    0x3fc, 0x1ffa, 0x21, 0x5d, 0x5e, 0x5f, 0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
    0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f, 0x70, 0x71, 0x72, 0xfc, 0x73, 0xfd, 0x1ffb, 0x7fff0,
    0x1ffc, 0x3ffc, 0x22, 0x7ffd, 0x3, 0x23, 0x4, 0x24, 0x5, 0x25, 0x26, 0x27, 0x6, 0x74, 0x75,
    0x28, 0x29, 0x2a, 0x7, 0x2b, 0x76, 0x2c, 0x8, 0x9, 0x2d, 0x77, 0x78, 0x79, 0x7a, 0x7b, 0x7ffe,
    0x7fc, 0x3ffd, 0x1ffd, 0xffffffc, 0xfffe6, 0x3fffd2, 0xfffe7, 0xfffe8, 0x3fffd3, 0x3fffd4,
    0x3fffd5, 0x7fffd9, 0x3fffd6, 0x7fffda, 0x7fffdb, 0x7fffdc, 0x7fffdd, 0x7fffde, 0xffffeb,
    0x7fffdf, 0xffffec, 0xffffed, 0x3fffd7, 0x7fffe0, 0xffffee, 0x7fffe1, 0x7fffe2, 0x7fffe3,
    0x7fffe4, 0x1fffdc, 0x3fffd8, 0x7fffe5, 0x3fffd9, 0x7fffe6, 0x7fffe7, 0xffffef, 0x3fffda,
    0x1fffdd, 0xfffe9, 0x3fffdb, 0x3fffdc, 0x7fffe8, 0x7fffe9, 0x1fffde, 0x7fffea, 0x3fffdd,
    0x3fffde, 0xfffff0, 0x1fffdf, 0x3fffdf, 0x7fffeb, 0x7fffec, 0x1fffe0, 0x1fffe1, 0x3fffe0,
    0x1fffe2, 0x7fffed, 0x3fffe1, 0x7fffee, 0x7fffef, 0xfffea, 0x3fffe2, 0x3fffe3, 0x3fffe4,
    0x7ffff0, 0x3fffe5, 0x3fffe6, 0x7ffff1, 0x3ffffe0, 0x3ffffe1, 0xfffeb, 0x7fff1, 0x3fffe7,
    0x7ffff2, 0x3fffe8, 0x1ffffec, 0x3ffffe2, 0x3ffffe3, 0x3ffffe4, 0x7ffffde, 0x7ffffdf,
    0x3ffffe5, 0xfffff1, 0x1ffffed, 0x7fff2, 0x1fffe3, 0x3ffffe6, 0x7ffffe0, 0x7ffffe1, 0x3ffffe7,
    0x7ffffe2, 0xfffff2, 0x1fffe4, 0x1fffe5, 0x3ffffe8, 0x3ffffe9, 0xffffffd, 0x7ffffe3, 0x7ffffe4,
    0x7ffffe5, 0xfffec, 0xfffff3, 0xfffed, 0x1fffe6, 0x3fffe9, 0x1fffe7, 0x1fffe8, 0x7ffff3,
    0x3fffea, 0x3fffeb, 0x1ffffee, 0x1ffffef, 0xfffff4, 0xfffff5, 0x3ffffea, 0x7ffff4, 0x3ffffeb,
    0x7ffffe6, 0x3ffffec, 0x3ffffed, 0x7ffffe7, 0x7ffffe8, 0x7ffffe9, 0x7ffffea, 0x7ffffeb,
    0xffffffe, 0x7ffffec, 0x7ffffed, 0x7ffffee, 0x7ffffef, 0x7fffff0, 0x3ffffee,
];

const ENCODE_CODE_LENGTHS: [u8; 256] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28,
    28, 28, 28, 28, 28, 28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5,
    5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6,
    6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22,
    23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22,
    21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20,
    22, 22, 22, 23, 22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19,
    21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22,
    22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
];

struct Canonical {
    /// Per length 0..=30: the first code of that length, and how many there are.
    first: [u32; 31],
    count: [u32; 31],
    /// Per length: where its symbols start in `symbols`.
    offset: [u32; 31],
    /// The 256 symbols ordered by code.
    symbols: [u8; 256],
    /// By the next [`FAST`] bits: the symbol they start with and its length, when that is
    /// at most [`FAST`] (length 0: longer).
    fast: Box<[(u8, u8); 1 << FAST]>,
}

/// The bits looked up at once.
const FAST: u32 = 10;

fn canonical() -> &'static Canonical {
    static T: OnceLock<Canonical> = OnceLock::new();
    T.get_or_init(|| {
        let mut order: Vec<u8> = (0..=255).collect();
        order.sort_by_key(|&s| (ENCODE_CODE_LENGTHS[s as usize], ENCODE_CODES[s as usize]));
        let mut t = Canonical {
            first: [0; 31],
            count: [0; 31],
            offset: [0; 31],
            symbols: [0; 256],
            fast: Box::new([(0, 0); 1 << FAST]),
        };
        for (i, &s) in order.iter().enumerate() {
            let len = ENCODE_CODE_LENGTHS[s as usize] as usize;
            if t.count[len] == 0 {
                t.first[len] = ENCODE_CODES[s as usize];
                t.offset[len] = i as u32;
            }
            t.count[len] += 1;
            t.symbols[i] = s;
            if len as u32 <= FAST {
                let spare = FAST - len as u32;
                let base = (ENCODE_CODES[s as usize] << spare) as usize;
                for e in &mut t.fast[base..base + (1 << spare)] {
                    *e = (s, len as u8);
                }
            }
        }
        t
    })
}

/// Appends the decoding of `src` to `dst`: an error for a code that is no symbol, the
/// end-of-string symbol inside the string, or padding that is longer than 7 bits or not
/// all ones (RFC 7541 §5.2).
pub fn decode(src: &[u8], dst: &mut Vec<u8>) -> Result<(), Invalid> {
    let t = canonical();
    dst.reserve(src.len() * 8 / 5 + 1);
    // The bits not yet decoded, most significant first, and how many there are.
    let mut acc: u64 = 0;
    let mut bits: u32 = 0;
    let mut next = src.iter();
    loop {
        while bits <= 56 {
            let Some(&b) = next.next() else { break };
            acc |= u64::from(b) << (56 - bits);
            bits += 8;
        }
        if bits == 0 {
            return Ok(());
        }
        let (sym, len) = t.fast[(acc >> (64 - FAST)) as usize];
        let len = u32::from(len);
        if len != 0 && len <= bits {
            dst.push(sym);
            acc <<= len;
            bits -= len;
            continue;
        }
        let mut found = false;
        if len == 0 {
            for l in FAST + 1..=bits.min(30) {
                let code = (acc >> (64 - l)) as u32;
                let rel = code.wrapping_sub(t.first[l as usize]);
                if t.count[l as usize] != 0
                    && code >= t.first[l as usize]
                    && rel < t.count[l as usize]
                {
                    dst.push(t.symbols[(t.offset[l as usize] + rel) as usize]);
                    acc <<= l;
                    bits -= l;
                    found = true;
                    break;
                }
            }
        }
        if !found {
            // The input is used up (else 30 bits would have held a symbol, EOS being no
            // symbol here): what is left must be a prefix of EOS (all ones), shorter than
            // a byte.
            if bits > 7 || (acc >> (64 - bits)) != (1u64 << bits) - 1 {
                return Err(Invalid);
            }
            return Ok(());
        }
    }
}

#[cfg(test)]
pub(crate) fn encode(src: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u64, 0u32);
    for &b in src {
        acc = (acc << ENCODE_CODE_LENGTHS[b as usize]) | u64::from(ENCODE_CODES[b as usize]);
        bits += u32::from(ENCODE_CODE_LENGTHS[b as usize]);
        while bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    if bits > 0 {
        out.push(((acc << (8 - bits)) as u8) | (0xff >> bits));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(src: &[u8]) -> Result<Vec<u8>, Invalid> {
        let mut v = Vec::new();
        decode(src, &mut v).map(|()| v)
    }

    #[test]
    fn the_code_is_canonical() {
        // Every code of a length lies in [first, first + count) of that length, which is
        // what decoding relies on.
        let t = canonical();
        for s in 0..256 {
            let len = ENCODE_CODE_LENGTHS[s] as usize;
            let c = ENCODE_CODES[s];
            assert!(
                c >= t.first[len] && c - t.first[len] < t.count[len],
                "symbol {s}"
            );
            let at = (t.offset[len] + c - t.first[len]) as usize;
            assert_eq!(t.symbols[at] as usize, s);
        }
    }

    #[test]
    fn rfc_7541_examples() {
        // C.4.1 – C.4.3 and C.6.1.
        let hex = |s: &str| {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect::<Vec<u8>>()
        };
        assert_eq!(
            dec(&hex("f1e3c2e5f23a6ba0ab90f4ff")).unwrap(),
            b"www.example.com"
        );
        assert_eq!(dec(&hex("a8eb10649cbf")).unwrap(), b"no-cache");
        assert_eq!(dec(&hex("25a849e95ba97d7f")).unwrap(), b"custom-key");
        assert_eq!(dec(&hex("6402")).unwrap(), b"302");
        assert_eq!(
            dec(&hex("d07abe941054d444a8200595040b8166e082a62d1bff")).unwrap(),
            b"Mon, 21 Oct 2013 20:13:21 GMT"
        );
    }

    #[test]
    fn every_byte_round_trips() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(dec(&encode(&all)).unwrap(), all);
        for b in 0..=255u8 {
            assert_eq!(dec(&encode(&[b, b, b])).unwrap(), vec![b, b, b]);
        }
        assert_eq!(dec(&[]).unwrap(), b"");
    }

    #[test]
    fn bad_padding_and_eos_are_refused() {
        // 'a' is 00011 (5 bits): padding with zeros is not EOS's prefix.
        assert_eq!(dec(&[0b0001_1000]), Err(Invalid));
        assert_eq!(dec(&[0b0001_1111]).unwrap(), b"a");
        // A whole byte of padding (8 ones) is too long.
        assert_eq!(dec(&[0b0001_1111, 0xff]), Err(Invalid));
        // EOS itself (30 ones) inside the string.
        assert_eq!(dec(&[0xff, 0xff, 0xff, 0xff]), Err(Invalid));
    }
}
