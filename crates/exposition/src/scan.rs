//! Byte search eight bytes per step, in safe code: label values and line ends are most of a
//! federate body's bytes, and a byte-by-byte loop over them was a third of the parse.

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Marks the zero bytes of `y` (the high bit of each): `(y - 0x01…) & !y & 0x80…`. The lowest
/// mark is exact; marks above it may be false (a borrow), so only the lowest is ever used.
fn zero_bytes(y: u64) -> u64 {
    y.wrapping_sub(ONES) & !y & HIGHS
}

/// Offset of the first byte of `b` at or after `from` that is one of `needles`, or `b.len()`.
pub(crate) fn first_of<const N: usize>(b: &[u8], from: usize, needles: [u8; N]) -> usize {
    let mut i = from.min(b.len());
    while let Some(chunk) = b.get(i..i + 8) {
        let Ok(word) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let x = u64::from_le_bytes(word);
        // A byte equal to a needle is zero after the XOR with that needle in every byte.
        let marks = needles
            .iter()
            .fold(0, |marks, &n| marks | zero_bytes(x ^ (ONES * u64::from(n))));
        if marks != 0 {
            return i + (marks.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < b.len() && !needles.contains(&b[i]) {
        i += 1;
    }
    i
}
