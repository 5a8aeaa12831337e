//! Protobuf wire-format primitives (varints, tags, length-delimited fields): a reader
//! that borrows from the buffer it reads, and the writes the re-encoders need.
//!
//! Only what Remote Write uses: varints, 64-bit fixed values and length-delimited fields. Groups
//! (wire types 3 and 4) are refused; 32-bit fixed values are skipped.

/// A protobuf wire type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireType {
    /// 0: varint.
    Varint,
    /// 1: 8 bytes little-endian.
    Fixed64,
    /// 2: length-delimited.
    Len,
    /// 5: 4 bytes little-endian.
    Fixed32,
}

/// The bytes are not valid protobuf. `offset` counts from the start of the innermost message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} at byte {offset}")]
pub struct WireError {
    /// What is wrong.
    pub what: &'static str,
    /// Where, within the message being read.
    pub offset: usize,
}

/// Reads fields from one message, borrowing every length-delimited value from the buffer.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader over one encoded message.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes read so far.
    #[inline]
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Whether everything was read.
    #[inline]
    pub fn is_at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn error(&self, what: &'static str) -> WireError {
        WireError {
            what,
            offset: self.pos,
        }
    }

    /// The next field's number and wire type, or `None` at the end of the message.
    #[inline]
    pub fn field(&mut self) -> Result<Option<(u32, WireType)>, WireError> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let wire_type = match key & 7 {
            0 => WireType::Varint,
            1 => WireType::Fixed64,
            2 => WireType::Len,
            5 => WireType::Fixed32,
            _ => return Err(self.error("unsupported wire type")),
        };
        let field = u32::try_from(key >> 3)
            .ok()
            .filter(|f| *f > 0)
            .ok_or_else(|| self.error("invalid field number"))?;
        Ok(Some((field, wire_type)))
    }

    /// A varint (at most 10 bytes).
    #[inline]
    pub fn varint(&mut self) -> Result<u64, WireError> {
        // Fast path: one byte, as for every tag and most lengths.
        if let Some(&byte) = self.buf.get(self.pos) {
            if byte < 0x80 {
                self.pos += 1;
                return Ok(u64::from(byte));
            }
        }
        self.long_varint()
    }

    #[inline(never)]
    fn long_varint(&mut self) -> Result<u64, WireError> {
        let mut value: u64 = 0;
        for shift in 0..10 {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(self.error("truncated varint"));
            };
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << (shift * 7);
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(self.error("varint longer than 10 bytes"))
    }

    /// 8 little-endian bytes.
    #[inline]
    pub fn fixed64(&mut self) -> Result<u64, WireError> {
        let bytes = self
            .buf
            .get(self.pos..self.pos + 8)
            .ok_or_else(|| self.error("truncated fixed64"))?;
        self.pos += 8;
        let mut array = [0u8; 8];
        array.copy_from_slice(bytes);
        Ok(u64::from_le_bytes(array))
    }

    /// A length-delimited value, borrowed.
    #[inline]
    pub fn bytes(&mut self) -> Result<&'a [u8], WireError> {
        let len = self.varint()?;
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| self.pos.checked_add(len))
            .filter(|end| *end <= self.buf.len())
            .ok_or_else(|| self.error("length beyond the end of the message"))?;
        let value = &self.buf[self.pos..end];
        self.pos = end;
        Ok(value)
    }

    /// Skips a value of `wire_type`.
    pub fn skip(&mut self, wire_type: WireType) -> Result<(), WireError> {
        match wire_type {
            WireType::Varint => self.varint().map(drop),
            WireType::Fixed64 => self.fixed64().map(drop),
            WireType::Len => self.bytes().map(drop),
            WireType::Fixed32 => {
                if self.pos + 4 > self.buf.len() {
                    return Err(self.error("truncated fixed32"));
                }
                self.pos += 4;
                Ok(())
            }
        }
    }

    /// Checks that a known field came with the wire type its schema gives it.
    #[inline]
    pub fn expect(&self, got: WireType, want: WireType) -> Result<(), WireError> {
        if got == want {
            Ok(())
        } else {
            Err(self.error("wrong wire type for a known field"))
        }
    }
}

/// Bytes a varint of `value` takes.
#[inline]
pub fn varint_len(value: u64) -> usize {
    // Most lengths in Remote Write (labels, samples) take one byte.
    if value < 0x80 {
        return 1;
    }
    // 1 byte per started group of 7 bits.
    (64 - value.leading_zeros() as usize).div_ceil(7)
}

/// Appends `value` as a varint.
#[inline]
pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Appends the key of a length-delimited field `field` (< 16, so one byte) and `len`.
#[inline]
pub fn put_len_key(out: &mut Vec<u8>, field: u8, len: usize) {
    out.push((field << 3) | 2);
    put_varint(out, len as u64);
}

/// Bytes of a length-delimited field (< 16) whose value is `len` bytes long.
#[inline]
pub fn len_field_size(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn malformed_input_is_an_error_never_a_panic() {
        let cases: &[(&[u8], &str)] = &[
            (&[0x80], "truncated varint"),
            (&[0xff; 11], "varint longer than 10 bytes"),
            (&[0x0a, 0x05, 1, 2], "length beyond the end of the message"),
            (&[0x0b], "unsupported wire type"),
            (&[0x02], "invalid field number"),
            (&[0x09, 1, 2, 3], "truncated fixed64"),
        ];
        for (bytes, want) in cases {
            let mut reader = Reader::new(bytes);
            let error = loop {
                match reader.field() {
                    Err(e) => break e,
                    Ok(None) => panic!("{bytes:?} read without error"),
                    Ok(Some((_, wire_type))) => {
                        if let Err(e) = reader.skip(wire_type) {
                            break e;
                        }
                    }
                }
            };
            assert_eq!(error.what, *want, "{bytes:?}");
        }
    }

    proptest! {
        #[test]
        fn varints_round_trip(value in any::<u64>()) {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            prop_assert_eq!(out.len(), varint_len(value));
            let mut reader = Reader::new(&out);
            prop_assert_eq!(reader.varint().unwrap(), value);
            prop_assert!(reader.field().unwrap().is_none());
        }
    }
}
