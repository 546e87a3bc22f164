//! Decimal digits written straight into an output buffer: the fast path's
//! `content-length`, the `RateLimit-*` lines, the log lines' numbers. `fmt`'s machinery
//! costs several times more per number; `itoa` writes two digits per step from a table
//! (a digit at a time cost ~40 instructions per digit: the three `RateLimit-*` numbers of
//! a limit were ~600 instructions per request).

/// Appends the decimal digits of `n` to `out`.
pub fn push(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

#[cfg(test)]
mod tests {
    #[test]
    fn digits() {
        for (n, want) in [(0, "0"), (8372, "8372"), (u64::MAX, "18446744073709551615")] {
            let mut out = b"x".to_vec();
            super::push(&mut out, n);
            assert_eq!(out, format!("x{want}").as_bytes());
        }
    }
}
