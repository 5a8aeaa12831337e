//! Remote Write 2.0 requests (`io.prometheus.write.v2.Request`, spec 2.0-rc.4): [`RequestBuilder`] encodes one with
//! an interned symbol table (the agent's sender and the tests use it), and
//! [`decode_v2_request`] reads one back into 1.0 types (tests and the fuzz target; the receiver
//! itself rewrites 2.0 without building it, see [`super::rewrite`]).
//!
//! Per the spec, the first symbol is `""`, every string of the request is in the table once, and
//! a series' labels are `labels_refs` pairs of indexes, sorted by label name (the caller sorts, as
//! for 1.0).

use std::hash::BuildHasher;

use hashbrown::HashTable;
use prost::Message;

use super::codec::{compress, decompress_capped, DecodeError};
use super::proto::{v1, v2};
use super::rewrite::{put_sample, sample_size};
use super::wire::{
    len_field_size, put_len_key, put_varint, varint_len, Reader, WireError, WireType,
};

/// Builds an encoded `io.prometheus.write.v2.Request`, interning every string once.
///
/// Reusable: [`RequestBuilder::clear`] keeps the allocations, so a sender that builds one
/// request after another allocates nothing once warmed up (symbols are stored as ranges of the
/// encoded table, the hash table holds only indexes).
#[derive(Debug, Clone)]
pub struct RequestBuilder {
    /// Encoded `symbols` fields (field 4), in index order.
    symbols_field: Vec<u8>,
    /// Byte range of each symbol's text in `symbols_field`.
    symbol_ranges: Vec<(u32, u32)>,
    /// Symbol indexes, keyed by the hash of their text.
    index: HashTable<u32>,
    hasher: foldhash::fast::RandomState,
    /// Encoded `timeseries` fields (field 5).
    series_field: Vec<u8>,
    series: usize,
    samples: usize,
    refs: Vec<u32>,
}

impl Default for RequestBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl RequestBuilder {
    /// An empty request (its symbol table holds `""`).
    pub fn new() -> Self {
        let mut builder = Self {
            symbols_field: Vec::new(),
            symbol_ranges: Vec::new(),
            index: HashTable::new(),
            hasher: foldhash::fast::RandomState::default(),
            series_field: Vec::new(),
            series: 0,
            samples: 0,
            refs: Vec::new(),
        };
        builder.clear();
        builder
    }

    /// Empties the request, keeping its allocations.
    pub fn clear(&mut self) {
        self.symbols_field.clear();
        self.symbol_ranges.clear();
        self.index.clear();
        self.series_field.clear();
        self.series = 0;
        self.samples = 0;
        self.intern("");
    }

    /// The index of `text` in the symbol table, adding it if new.
    pub fn intern(&mut self, text: &str) -> u32 {
        self.intern_bytes(text.as_bytes())
    }

    /// [`Self::intern`] for text already known to be UTF-8 (read from a 1.0 request we encoded).
    fn intern_bytes(&mut self, text: &[u8]) -> u32 {
        let hash = self.hasher.hash_one(text);
        let Self {
            index,
            symbols_field,
            symbol_ranges,
            hasher,
            ..
        } = self;
        let found = index.find(hash, |&i| {
            let (start, end) = symbol_ranges[i as usize];
            &symbols_field[start as usize..end as usize] == text
        });
        if let Some(&i) = found {
            return i;
        }
        let i = symbol_ranges.len() as u32;
        put_len_key(symbols_field, 4, text.len());
        let start = symbols_field.len() as u32;
        symbols_field.extend_from_slice(text);
        symbol_ranges.push((start, symbols_field.len() as u32));
        index.insert_unique(hash, i, |&j| {
            let (start, end) = symbol_ranges[j as usize];
            hasher.hash_one(&symbols_field[start as usize..end as usize])
        });
        i
    }

    /// Adds a series with `labels` (sorted by name, no empty values) and `samples` in timestamp
    /// order.
    pub fn push_series<'l>(
        &mut self,
        labels: impl IntoIterator<Item = (&'l str, &'l str)>,
        samples: &[v1::Sample],
    ) {
        let mut refs = std::mem::take(&mut self.refs);
        refs.clear();
        for (name, value) in labels {
            refs.push(self.intern(name));
            refs.push(self.intern(value));
        }
        let samples_size: usize = samples
            .iter()
            .map(|s| len_field_size(sample_size(s.value.to_bits(), s.timestamp)))
            .sum();
        let out = &mut self.series_field;
        put_series_head(out, &refs, samples_size);
        // `io.prometheus.write.v2.Sample` has value = 1 and timestamp = 2 like the 1.0 sample;
        // start_timestamp (3) is left unset.
        for sample in samples {
            put_sample(out, sample.value.to_bits(), sample.timestamp);
        }
        self.refs = refs;
        self.series += 1;
        self.samples += samples.len();
    }

    /// Adds every series of an encoded (uncompressed) 1.0 `WriteRequest` without decoding it into
    /// owned types: label strings are interned as they are read, and each sample's bytes are
    /// copied as they are (1.0 and 2.0 `Sample` share field numbers and types, and `samples` is
    /// field 2 of both `TimeSeries`). Exemplars, histograms and metadata are left out, as in
    /// [`encode_v2_request`]. Labels keep their order (the 1.0 request has them sorted).
    pub fn push_v1_request(&mut self, raw: &[u8]) -> Result<(), WireError> {
        let mut request = Reader::new(raw);
        while let Some((field, wire_type)) = request.field()? {
            if field != 1 {
                request.skip(wire_type)?;
                continue;
            }
            request.expect(wire_type, WireType::Len)?;
            self.push_v1_series(request.bytes()?)?;
        }
        Ok(())
    }

    fn push_v1_series(&mut self, series: &[u8]) -> Result<(), WireError> {
        let mut refs = std::mem::take(&mut self.refs);
        refs.clear();
        let (mut samples_size, mut samples) = (0, 0);
        let mut fields = Reader::new(series);
        while let Some((field, wire_type)) = fields.field()? {
            match field {
                1 => {
                    fields.expect(wire_type, WireType::Len)?;
                    let mut label = Reader::new(fields.bytes()?);
                    let (mut name, mut value): (&[u8], &[u8]) = (b"", b"");
                    while let Some((field, wire_type)) = label.field()? {
                        match field {
                            1 | 2 => {
                                label.expect(wire_type, WireType::Len)?;
                                let text = label.bytes()?;
                                if field == 1 {
                                    name = text
                                } else {
                                    value = text
                                }
                            }
                            _ => label.skip(wire_type)?,
                        }
                    }
                    refs.push(self.intern_bytes(name));
                    refs.push(self.intern_bytes(value));
                }
                2 => {
                    fields.expect(wire_type, WireType::Len)?;
                    samples_size += len_field_size(fields.bytes()?.len());
                    samples += 1;
                }
                _ => fields.skip(wire_type)?,
            }
        }
        let out = &mut self.series_field;
        put_series_head(out, &refs, samples_size);
        let mut fields = Reader::new(series);
        while let Some((field, wire_type)) = fields.field()? {
            if field == 2 {
                let sample = fields.bytes()?;
                put_len_key(out, 2, sample.len());
                out.extend_from_slice(sample);
            } else {
                fields.skip(wire_type)?;
            }
        }
        self.refs = refs;
        self.series += 1;
        self.samples += samples;
        Ok(())
    }

    /// Series added so far.
    pub fn series_count(&self) -> usize {
        self.series
    }

    /// Samples added so far.
    pub fn sample_count(&self) -> usize {
        self.samples
    }

    /// Symbols in the table (including `""`).
    pub fn symbol_count(&self) -> usize {
        self.symbol_ranges.len()
    }

    /// Length of the encoded (uncompressed) request.
    pub fn encoded_len(&self) -> usize {
        self.symbols_field.len() + self.series_field.len()
    }

    /// Appends the encoded (uncompressed) request to `out`: the symbols, then the series.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        out.extend_from_slice(&self.symbols_field);
        out.extend_from_slice(&self.series_field);
    }

    /// The encoded request, snappy-compressed: a request body.
    pub fn to_body(&self) -> Vec<u8> {
        let mut raw = Vec::new();
        self.encode_into(&mut raw);
        compress(&raw)
    }
}

/// Writes a `timeseries` field's key and length (its samples fields take `samples_size` bytes,
/// written next by the caller) and its packed `labels_refs`.
fn put_series_head(out: &mut Vec<u8>, refs: &[u32], samples_size: usize) {
    let refs_size: usize = refs.iter().map(|&r| varint_len(u64::from(r))).sum();
    let refs_field = if refs.is_empty() {
        0
    } else {
        len_field_size(refs_size)
    };
    put_len_key(out, 5, refs_field + samples_size);
    if !refs.is_empty() {
        put_len_key(out, 1, refs_size);
        for &r in refs {
            put_varint(out, u64::from(r));
        }
    }
}

/// `request` (1.0 types; exemplars and metadata are left out) as a snappy-compressed 2.0 body.
pub fn encode_v2_request(request: &v1::WriteRequest) -> Vec<u8> {
    let mut builder = RequestBuilder::new();
    for series in &request.timeseries {
        builder.push_series(
            series
                .labels
                .iter()
                .map(|l| (l.name.as_str(), l.value.as_str())),
            &series.samples,
        );
    }
    builder.to_body()
}

/// A snappy-compressed 1.0 body of at most `max_decoded_bytes` as a snappy-compressed 2.0 body,
/// through [`RequestBuilder::push_v1_request`] (no owned 1.0 types in between).
pub fn transcode_v1_body(body: &[u8], max_decoded_bytes: usize) -> Result<Vec<u8>, DecodeError> {
    let raw = decompress_capped(body, max_decoded_bytes)?;
    let mut builder = RequestBuilder::new();
    builder
        .push_v1_request(&raw)
        .map_err(|e| DecodeError::Protobuf(e.to_string()))?;
    Ok(builder.to_body())
}

/// Decodes a snappy-compressed 2.0 body of at most `max_decoded_bytes` into 1.0 types (labels and
/// float samples; `start_timestamp` has no 1.0 field). A reference outside the symbol table is a
/// [`DecodeError::Protobuf`].
pub fn decode_v2_request(
    body: &[u8],
    max_decoded_bytes: usize,
) -> Result<v1::WriteRequest, DecodeError> {
    let raw = decompress_capped(body, max_decoded_bytes)?;
    let request =
        v2::Request::decode(raw.as_slice()).map_err(|e| DecodeError::Protobuf(e.to_string()))?;
    let symbol = |reference: u32| {
        request
            .symbols
            .get(reference as usize)
            .cloned()
            .ok_or_else(|| {
                DecodeError::Protobuf(format!(
                    "label reference {reference} beyond the {} symbols",
                    request.symbols.len()
                ))
            })
    };
    let mut timeseries = Vec::with_capacity(request.timeseries.len());
    for series in &request.timeseries {
        if series.labels_refs.len() % 2 != 0 {
            return Err(DecodeError::Protobuf(
                "labels_refs has an odd number of entries".into(),
            ));
        }
        let labels = series
            .labels_refs
            .chunks_exact(2)
            .map(|pair| {
                Ok(v1::Label {
                    name: symbol(pair[0])?,
                    value: symbol(pair[1])?,
                })
            })
            .collect::<Result<Vec<_>, DecodeError>>()?;
        timeseries.push(v1::TimeSeries {
            labels,
            samples: series
                .samples
                .iter()
                .map(|s| v1::Sample {
                    value: s.value,
                    timestamp: s.timestamp,
                })
                .collect(),
            exemplars: Vec::new(),
        });
    }
    Ok(v1::WriteRequest {
        timeseries,
        metadata: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_series as series;
    use proptest::prelude::*;

    #[test]
    fn symbols_are_interned_once_and_start_with_the_empty_string() {
        let mut builder = RequestBuilder::new();
        let samples = [v1::Sample {
            value: 1.0,
            timestamp: 5,
        }];
        builder.push_series([("__name__", "up"), ("job", "a")], &samples);
        builder.push_series([("__name__", "up"), ("job", "b")], &samples);
        let mut raw = Vec::new();
        builder.encode_into(&mut raw);
        let request = v2::Request::decode(raw.as_slice()).unwrap();
        assert_eq!(request.symbols, ["", "__name__", "up", "job", "a", "b"]);
        assert_eq!(request.timeseries[0].labels_refs, [1, 2, 3, 4]);
        assert_eq!(request.timeseries[1].labels_refs, [1, 2, 3, 5]);
        assert_eq!(request.timeseries[1].samples[0].timestamp, 5);
        assert_eq!(builder.symbol_count(), 6);

        // Reuse: the table starts over.
        builder.clear();
        builder.push_series([("__name__", "x")], &samples);
        let mut raw = Vec::new();
        builder.encode_into(&mut raw);
        let request = v2::Request::decode(raw.as_slice()).unwrap();
        assert_eq!(request.symbols, ["", "__name__", "x"]);
        assert_eq!(builder.series_count(), 1);
    }

    #[test]
    fn bad_references_are_errors() {
        let request = v2::Request {
            symbols: vec![String::new(), "a".into()],
            timeseries: vec![v2::TimeSeries {
                labels_refs: vec![1, 7],
                samples: vec![],
            }],
        };
        let body = compress(&request.encode_to_vec());
        assert!(matches!(
            decode_v2_request(&body, 1 << 20),
            Err(DecodeError::Protobuf(m)) if m.contains("beyond the 2 symbols")
        ));
    }

    fn arbitrary_request() -> impl Strategy<Value = v1::WriteRequest> {
        let label = ("[a-z_][a-z0-9_]{0,6}", "[a-zA-Z0-9 ._-]{1,6}");
        let sample = (any::<f64>(), any::<i64>());
        let one = (
            proptest::collection::btree_map(label.0, label.1, 0..5),
            proptest::collection::vec(sample, 0..4),
        );
        proptest::collection::vec(one, 0..6).prop_map(|series_list| v1::WriteRequest {
            timeseries: series_list
                .iter()
                .map(|(labels, samples)| {
                    let labels: Vec<(&str, &str)> = labels
                        .iter()
                        .map(|(n, v)| (n.as_str(), v.as_str()))
                        .collect();
                    series(&labels, samples)
                })
                .collect(),
            metadata: Vec::new(),
        })
    }

    fn same(a: &v1::WriteRequest, b: &v1::WriteRequest) -> bool {
        a.timeseries.len() == b.timeseries.len()
            && a.timeseries.iter().zip(&b.timeseries).all(|(x, y)| {
                x.labels == y.labels
                    && x.samples.len() == y.samples.len()
                    && x.samples.iter().zip(&y.samples).all(|(s, t)| {
                        s.timestamp == t.timestamp && s.value.to_bits() == t.value.to_bits()
                    })
            })
    }

    /// The symbol table of a compressed 2.0 body.
    fn v2_symbols(body: &[u8]) -> Vec<String> {
        let raw = decompress_capped(body, 1 << 20).unwrap();
        v2::Request::decode(raw.as_slice()).unwrap().symbols
    }

    #[test]
    fn a_corrupt_v1_body_is_a_protobuf_error() {
        let request = v1::WriteRequest {
            timeseries: vec![series(&[("__name__", "up")], &[(1.0, 1000)])],
            metadata: vec![],
        };
        let raw = request.encode_to_vec();
        let cut = compress(&raw[..raw.len() - 3]);
        assert!(matches!(
            transcode_v1_body(&cut, 1 << 20),
            Err(DecodeError::Protobuf(_))
        ));
    }

    proptest! {
        #[test]
        fn v1_to_v2_to_v1_round_trips(request in arbitrary_request()) {
            let decoded = decode_v2_request(&encode_v2_request(&request), 1 << 20).unwrap();
            prop_assert!(same(&decoded, &request), "{:?} != {:?}", decoded, request);
        }

        #[test]
        fn a_v1_body_transcodes_to_the_same_v2_request(request in arbitrary_request()) {
            // prost's 1.0 encoder leaves out a -0.0 value (the agent's own encoder keeps it).
            prop_assume!(request.timeseries.iter().flat_map(|s| &s.samples).all(|s| s.value.to_bits() != (-0.0f64).to_bits()));
            let v1_body = crate::encode_write_request(&request);
            let transcoded = transcode_v1_body(&v1_body, 1 << 20).unwrap();
            let decoded = decode_v2_request(&transcoded, 1 << 20).unwrap();
            prop_assert!(same(&decoded, &request), "{:?} != {:?}", decoded, request);
            // The same symbol table, in the same order, as encoding the request directly.
            prop_assert_eq!(v2_symbols(&transcoded), v2_symbols(&encode_v2_request(&request)));
        }

        #[test]
        fn v2_encoding_matches_prost(request in arbitrary_request()) {
            // prost leaves out a -0.0 value (it compares with 0.0); we keep its bits.
            prop_assume!(request.timeseries.iter().flat_map(|s| &s.samples).all(|s| s.value.to_bits() != (-0.0f64).to_bits()));
            // Our hand-written encoder and prost agree byte for byte on the same message.
            let mut builder = RequestBuilder::new();
            for s in &request.timeseries {
                builder.push_series(s.labels.iter().map(|l| (l.name.as_str(), l.value.as_str())), &s.samples);
            }
            let mut raw = Vec::new();
            builder.encode_into(&mut raw);
            let parsed = v2::Request::decode(raw.as_slice()).unwrap();
            prop_assert_eq!(parsed.encode_to_vec(), raw);
        }
    }
}
