//! Decimal digits written straight into an output buffer: the fast path's
//! `content-length`, the `RateLimit-*` lines, the log lines' numbers. `fmt`'s machinery
//! costs several times more per number.

/// Appends the decimal digits of `n` to `out`.
pub fn push(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
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
