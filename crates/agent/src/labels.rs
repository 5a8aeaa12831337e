//! A series' identity, encoded once: the normalised label set of a parsed line as the protobuf
//! bytes of `repeated Label labels = 1` of a Remote Write 1.0 `TimeSeries`, and its hash.
//!
//! A known series costs no allocation: the labels are sorted in the parser's own vector,
//! merged with `__name__` and the external labels while being hashed and encoded into a reused
//! buffer, and compared byte for byte with the stored block of the series with that hash. The
//! block is also what goes on the wire, so encoding a request copies it (see
//! [`batch`](super::batch)).

use std::sync::Arc;

use remote_write::Label;

/// Protobuf bytes of a series' labels (`TimeSeries.labels`, field 1, each a `Label` message).
pub(crate) type LabelBlock = Arc<[u8]>;

/// FNV-1a over the sorted labels, with separators that cannot occur in names.
///
/// Deliberately not `DefaultHasher`: the hash also picks a record's lane, and must be the same
/// after a restart and an upgrade so replayed and fresh records of a series share a lane.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SeriesHasher(u64);

impl SeriesHasher {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    pub fn new() -> Self {
        Self(Self::OFFSET)
    }

    fn eat(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }

    pub fn label(&mut self, name: &str, value: &str) {
        self.eat(name.as_bytes());
        self.eat(&[0xff]);
        self.eat(value.as_bytes());
        self.eat(&[0xfe]);
    }

    pub fn finish(self) -> u64 {
        self.0
    }
}

#[cfg(test)]
/// [`SeriesHasher`] over owned labels (already normalised and sorted).
pub(crate) fn series_hash(labels: &[Label]) -> u64 {
    let mut h = SeriesHasher::new();
    for l in labels {
        h.label(&l.name, &l.value);
    }
    h.finish()
}

/// Appends `v` as a protobuf varint.
pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Bytes of `v` as a varint.
pub(crate) fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// Appends one `Label` message as field 1 of `TimeSeries`.
fn put_label(out: &mut Vec<u8>, name: &str, value: &str) {
    let (n, v) = (name.len(), value.len());
    let inner = 1 + varint_len(n as u64) + n + 1 + varint_len(v as u64) + v;
    out.push(0x0a);
    put_varint(out, inner as u64);
    out.push(0x0a);
    put_varint(out, n as u64);
    out.extend_from_slice(name.as_bytes());
    out.push(0x12);
    put_varint(out, v as u64);
    out.extend_from_slice(value.as_bytes());
}

#[cfg(test)]
/// Encodes already normalised, sorted labels (tests, stale markers of restored state).
pub(crate) fn encode_block(labels: &[Label]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in labels {
        put_label(&mut out, &l.name, &l.value);
    }
    out
}

/// Normalises the labels of a parsed line and appends their block to `out`; returns the
/// series hash.
///
/// Normalisation: `__name__` is the metric name (a `__name__` label in the set is ignored),
/// empty values are dropped (`/federate` adds `instance=""`), `external` labels (sorted by
/// name) are added where the series has no label of that name, everything sorted by name.
/// `labels` is sorted in place.
pub(crate) fn encode_normalized(
    name: &str,
    labels: &mut [exposition::Label<'_>],
    external: &[Label],
    out: &mut Vec<u8>,
) -> u64 {
    labels.sort_unstable_by(|a, b| a.name.cmp(b.name));
    let own = labels
        .iter()
        .filter(|l| l.name != "__name__" && !l.value.is_empty())
        .map(|l| (l.name, l.value.as_ref()));
    let own = merge(std::iter::once(("__name__", name)), own);
    let ext = external.iter().map(|l| (l.name.as_str(), l.value.as_str()));
    let mut hasher = SeriesHasher::new();
    for (n, v) in merge(own, ext) {
        hasher.label(n, v);
        put_label(out, n, v);
    }
    hasher.finish()
}

/// Merges two name-sorted label sequences; on equal names the left one wins.
fn merge<'a>(
    left: impl Iterator<Item = (&'a str, &'a str)>,
    right: impl Iterator<Item = (&'a str, &'a str)>,
) -> impl Iterator<Item = (&'a str, &'a str)> {
    let mut left = left.peekable();
    let mut right = right.peekable();
    std::iter::from_fn(move || match (left.peek(), right.peek()) {
        (Some(l), Some(r)) => match l.0.cmp(r.0) {
            std::cmp::Ordering::Less => left.next(),
            std::cmp::Ordering::Greater => right.next(),
            std::cmp::Ordering::Equal => {
                right.next();
                left.next()
            }
        },
        (Some(_), None) => left.next(),
        (None, _) => right.next(),
    })
}

#[cfg(test)]
/// Reads a block back into (name, value) pairs borrowed from it; `None` if it is not a valid
/// block (never for blocks this module wrote).
pub(crate) fn decode_block(block: &[u8]) -> Option<Vec<(&str, &str)>> {
    let mut out = Vec::new();
    let mut rest = block;
    while !rest.is_empty() {
        let (tag, r) = rest.split_first()?;
        if *tag != 0x0a {
            return None;
        }
        let (len, r) = get_varint(r)?;
        let (label, r) = r.split_at_checked(usize::try_from(len).ok()?)?;
        rest = r;
        let (name, label) = field(label, 0x0a)?;
        let (value, label) = field(label, 0x12)?;
        if !label.is_empty() {
            return None;
        }
        out.push((name, value));
    }
    Some(out)
}

#[cfg(test)]
fn field(b: &[u8], tag: u8) -> Option<(&str, &[u8])> {
    let (t, r) = b.split_first()?;
    if *t != tag {
        return None;
    }
    let (len, r) = get_varint(r)?;
    let (s, r) = r.split_at_checked(usize::try_from(len).ok()?)?;
    Some((std::str::from_utf8(s).ok()?, r))
}

#[cfg(test)]
fn get_varint(b: &[u8]) -> Option<(u64, &[u8])> {
    let mut v = 0u64;
    for (i, &byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return Some((v, &b[i + 1..]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use exposition::{parse_line, Entry};
    use remote_write::{encode_write_request, TimeSeries, WriteRequest};

    fn owned(pairs: &[(&str, &str)]) -> Vec<Label> {
        pairs
            .iter()
            .map(|(n, v)| Label {
                name: (*n).into(),
                value: (*v).into(),
            })
            .collect()
    }

    fn normalized(line: &str, external: &[Label]) -> (u64, Vec<u8>) {
        let Entry::Sample(mut s) = parse_line(line).unwrap() else {
            panic!("{line}")
        };
        let mut out = Vec::new();
        let hash = encode_normalized(s.name, &mut s.labels, external, &mut out);
        (hash, out)
    }

    #[test]
    fn normalises_like_the_owned_path_and_encodes_like_prost() {
        let external = owned(&[("cluster", "from-agent"), ("seed", "aws-eu1"), ("zz", "z")]);
        let (hash, block) = normalized(
            r#"shoot:availability{kind="vpn",instance="",cluster="shoot--p--a",__name__="x",Up="U"} 1"#,
            &external,
        );
        let expected = owned(&[
            ("Up", "U"),
            ("__name__", "shoot:availability"),
            ("cluster", "shoot--p--a"),
            ("kind", "vpn"),
            ("seed", "aws-eu1"),
            ("zz", "z"),
        ]);
        assert_eq!(hash, series_hash(&expected));
        assert_eq!(
            decode_block(&block).unwrap(),
            expected
                .iter()
                .map(|l| (l.name.as_str(), l.value.as_str()))
                .collect::<Vec<_>>()
        );
        // The block is exactly prost's encoding of the labels of a TimeSeries.
        let prost = encode_write_request(&WriteRequest {
            timeseries: vec![TimeSeries {
                labels: expected.clone(),
                ..TimeSeries::default()
            }],
            metadata: Vec::new(),
        });
        let raw = remote_write::codec::decompress_capped(&prost, 1 << 20).unwrap();
        assert!(raw.ends_with(&block), "{raw:?} vs {block:?}");
        assert_eq!(encode_block(&expected), block);
        // An empty own label does not block the external one (empty = absent).
        let (_, b) = normalized(r#"up{seed=""} 1"#, &external);
        assert!(decode_block(&b).unwrap().contains(&("seed", "aws-eu1")));
    }

    #[test]
    fn hash_is_stable_across_releases() {
        // The lane of replayed records depends on it: changing it reorders series after upgrades.
        assert_eq!(series_hash(&[]), 0xcbf2_9ce4_8422_2325);
        assert_eq!(series_hash(&owned(&[("a", "")])), {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for b in [b'a', 0xff, 0xfe] {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x100_0000_01b3);
            }
            h
        });
    }

    #[test]
    fn varints() {
        for v in [0u64, 1, 127, 128, 300, 16_383, 16_384, u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(b.len(), varint_len(v), "{v}");
            assert_eq!(get_varint(&b), Some((v, &[][..])));
        }
    }
}
