//! The receiver's decode path: a decompressed Remote Write request (1.0 or 2.0) in, a re-encoded
//! 1.0 request of the admissible series out, in one pass and without building the request.
//!
//! Labels are borrowed from the decompressed buffer into a scratch list that is reused for every
//! series; each series is validated, its identity label pinned in that list, its samples older
//! than the acceptance window dropped, and it is then written straight into the output buffer
//! (`prometheus.WriteRequest`, field 1 per series). Nothing is allocated per series or per label.
//! The output keeps one [`SeriesSpan`] per series, so a caller can forward any subset of the
//! series (when the upstream refuses a request, to isolate the series it refuses) without
//! re-encoding.
//!
//! **Cost model.** Decoding is bounded while it runs, not afterwards: every element read (series,
//! label, sample, exemplar, histogram, metadata, unknown field, 2.0 symbol and label reference)
//! is charged the bytes it adds to the output, and at least [`MIN_ELEMENT_COST`] bytes (half of
//! that for a 2.0 label reference), even when it is empty or dropped. Decoding stops with
//! [`RewriteError::TooCostly`] as soon as the charges pass `max_cost`, and with
//! [`RewriteError::TooManySeries`] at the first series past `max_series`. So the output is never
//! larger than `max_cost`, scratch memory is bounded by it, and the time spent is linear in what
//! was charged: a body of empty series is refused after reading `max_series` of them.
//!
//! Remote Write 2.0: the `symbols`
//! table (field 4, first entry `""`) may come anywhere in the message, so it is collected in a
//! first pass; `labels_refs` are accepted packed or unpacked. Histograms and exemplars are not
//! forwarded (Prometheus 2.42's 1.0 receiver is the upstream): they are counted as refused, which
//! makes the request a partial write (400 per both specs).

use std::fmt::Write as _;

use super::headers::Protocol;
use super::validate::{
    compare_bytes, validate_labels, validate_timestamps, Refusal, SeriesError, ValidationLimits,
};
use super::wire::{
    len_field_size, put_len_key, put_varint, varint_len, Reader, WireError, WireType,
};

/// Least cost of any element read, in bytes, however small it is on the wire.
pub const MIN_ELEMENT_COST: usize = 16;

/// What a rewrite admits and how it pins identity.
#[derive(Debug, Clone)]
pub struct RewriteSettings<'a> {
    /// The message the body carries.
    pub protocol: Protocol,
    /// Per-series limits.
    pub limits: ValidationLimits,
    /// Most series (elements, empty ones included) in one request.
    pub max_series: usize,
    /// Most cost, bytes (see the module docs).
    pub max_cost: usize,
    /// Samples with an earlier timestamp (ms) are dropped and counted as `too_old`;
    /// `i64::MIN` keeps all.
    pub oldest_timestamp_ms: i64,
    /// Now, ms since the epoch (for the future grace).
    pub now_ms: i64,
    /// Label pinned on every series.
    pub identity_label: &'a str,
    /// Its value: the seed of the client certificate.
    pub identity_value: &'a str,
    /// Refuse the whole request when a series carries another value (instead of overwriting it).
    pub reject_other_identity: bool,
}

/// Why a whole request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RewriteError {
    /// Not a valid protobuf message of the announced kind.
    #[error("invalid protobuf {message}: {detail}")]
    Malformed {
        /// Which message.
        message: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// More series than allowed.
    #[error("more than {limit} series in one request")]
    TooManySeries {
        /// Limit in force.
        limit: usize,
    },
    /// Decoding would cost more than allowed.
    #[error(
        "request too large to decode: its elements cost more than {limit} bytes \
         (each counted at its re-encoded size, at least {MIN_ELEMENT_COST} bytes)"
    )]
    TooCostly {
        /// Limit in force.
        limit: usize,
    },
    /// A series names another seed while the identity mode is `reject`.
    #[error("series carries {label}={claimed:?} but the client certificate is seed {actual:?}")]
    OtherIdentity {
        /// The identity label.
        label: String,
        /// What the series claimed.
        claimed: String,
        /// The certificate's seed.
        actual: String,
    },
}

fn malformed(message: &'static str) -> impl Fn(WireError) -> RewriteError {
    move |e| RewriteError::Malformed {
        message,
        detail: e.to_string(),
    }
}

/// Where one admitted series sits in [`Rewritten::body`]: `start..end` is a complete
/// `WriteRequest.timeseries` field, `labels_start..samples_start` its label fields (the series'
/// identity, pinned label included) and `samples_start..end` its sample fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesSpan {
    /// First byte of the field.
    pub start: usize,
    /// First byte of the first label field.
    pub labels_start: usize,
    /// First byte of the first sample field.
    pub samples_start: usize,
    /// One past the last byte.
    pub end: usize,
    /// Samples written.
    pub samples: u32,
}

impl SeriesSpan {
    /// The label fields of this series in `body`.
    pub fn label_bytes<'b>(&self, body: &'b [u8]) -> &'b [u8] {
        &body[self.labels_start..self.samples_start]
    }
}

/// Samples (or histograms, exemplars) refused, by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Refusals {
    /// `(reason, count)` in the order reasons first occurred.
    pub by_reason: Vec<(Refusal, u64)>,
    /// Description of the first refusal, for the response.
    pub first: Option<String>,
}

impl Refusals {
    /// Counts `count` refused for `reason`; `describe` is called for the first refusal only.
    pub fn add(&mut self, reason: Refusal, count: u64, describe: impl FnOnce() -> String) {
        if self.first.is_none() {
            self.first = Some(describe());
        }
        match self.by_reason.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, n)) => *n += count,
            None => self.by_reason.push((reason, count)),
        }
    }

    /// Whether nothing was refused.
    pub fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    /// Everything refused, all reasons together.
    pub fn total(&self) -> u64 {
        self.by_reason.iter().map(|(_, n)| n).sum()
    }
}

/// The admitted series re-encoded as one `prometheus.WriteRequest`, and what was refused.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rewritten {
    /// Uncompressed `prometheus.WriteRequest` of the admitted series, in input order.
    pub body: Vec<u8>,
    /// One span per admitted series.
    pub series: Vec<SeriesSpan>,
    /// Samples in the request (float samples; histogram samples and exemplars are counted in
    /// `refused`).
    pub received_samples: u64,
    /// Samples written to `body`.
    pub admitted_samples: u64,
    /// Everything refused, by reason.
    pub refused: Refusals,
}

impl Rewritten {
    /// Removes the series at `positions` (sorted, in [`Rewritten::series`]) from the body, in
    /// place; returns the samples removed.
    pub fn remove_series(&mut self, positions: &[usize]) -> u64 {
        let mut removed = positions.iter().peekable();
        let mut kept = Vec::with_capacity(self.series.len().saturating_sub(positions.len()));
        let mut write = 0;
        let mut removed_samples = 0;
        for (i, span) in self.series.iter().enumerate() {
            if removed.next_if_eq(&&i).is_some() {
                removed_samples += u64::from(span.samples);
                continue;
            }
            let shift = span.start - write;
            self.body.copy_within(span.start..span.end, write);
            write += span.end - span.start;
            kept.push(SeriesSpan {
                start: span.start - shift,
                labels_start: span.labels_start - shift,
                samples_start: span.samples_start - shift,
                end: span.end - shift,
                samples: span.samples,
            });
        }
        self.body.truncate(write);
        self.series = kept;
        self.admitted_samples -= removed_samples;
        removed_samples
    }
}

/// Rewrites the decompressed request `decoded` under `settings` (see the module docs).
pub fn rewrite(decoded: &[u8], settings: &RewriteSettings<'_>) -> Result<Rewritten, RewriteError> {
    let mut out = Rewritten::default();
    rewrite_into(decoded, settings, &mut out)?;
    Ok(out)
}

/// [`rewrite`] into `out`, reusing its allocations (a receiver keeps a few `Rewritten` to spare
/// the allocator and the page faults of a fresh output buffer per request). `out` is cleared
/// first; on error its contents are unspecified.
pub fn rewrite_into(
    decoded: &[u8],
    settings: &RewriteSettings<'_>,
    out: &mut Rewritten,
) -> Result<(), RewriteError> {
    out.body.clear();
    out.series.clear();
    out.received_samples = 0;
    out.admitted_samples = 0;
    out.refused = Refusals::default();
    // 1.0 output is the input plus the identity label on every series; 2.0 input is smaller than
    // its 1.0 form (interned strings), often by half.
    let estimate = match settings.protocol {
        Protocol::V1 => decoded.len() + decoded.len() / 8,
        Protocol::V2 => decoded.len().saturating_mul(2),
    };
    out.body.reserve(estimate.min(settings.max_cost));
    let mut rewriter = Rewriter {
        settings,
        cost: 0,
        series_seen: 0,
        labels: Vec::with_capacity(settings.limits.max_labels_per_series + 1),
        labels_as_sent: Vec::with_capacity(settings.limits.max_labels_per_series + 1),
        series_message: &[],
        samples: Vec::new(),
        refs: Vec::new(),
        series: SeriesCounts::default(),
        out,
    };
    match settings.protocol {
        Protocol::V1 => rewriter.v1(decoded),
        Protocol::V2 => rewriter.v2(decoded),
    }
}

/// The bytes of a `prometheus.WriteRequest` holding only `spans` of `body`.
pub fn subset_body(body: &[u8], spans: &[SeriesSpan]) -> Vec<u8> {
    let mut out = Vec::with_capacity(spans.iter().map(|s| s.end - s.start).sum());
    for span in spans {
        out.extend_from_slice(&body[span.start..span.end]);
    }
    out
}

/// What one series had besides labels and samples.
#[derive(Debug, Default, Clone, Copy)]
struct SeriesCounts {
    /// Labels with a non-empty value, including those beyond the scratch list.
    labels: usize,
    histograms: u64,
    exemplars: u64,
    invalid_utf8: bool,
}

#[derive(Debug)]
struct Rewriter<'a, 'o> {
    settings: &'a RewriteSettings<'a>,
    cost: usize,
    series_seen: usize,
    /// The current series' labels, borrowed from the input (scratch, reused). Values are known
    /// to be UTF-8; names are checked by validation.
    labels: Vec<(&'a [u8], &'a [u8])>,
    /// Per entry of `labels`: where its field lies in `series_message` when the bytes as sent
    /// are exactly its re-encoding (then they are copied, adjacent ones at once), or
    /// [`NOT_AS_SENT`].
    labels_as_sent: Vec<(u32, u32)>,
    /// The 1.0 series message being read (empty for 2.0).
    series_message: &'a [u8],
    /// The current series' samples as (value bits, timestamp ms) (scratch, reused).
    samples: Vec<(u64, i64)>,
    /// The current 2.0 series' label references (scratch, reused).
    refs: Vec<u64>,
    series: SeriesCounts,
    out: &'o mut Rewritten,
}

/// Marks a label whose field as sent is not its re-encoding (or that was not sent as such).
const NOT_AS_SENT: (u32, u32) = (0, 0);

/// Largest encoding of one sample field: key, length, double, timestamp key and varint.
const SAMPLE_FIELD_MAX: usize = 2 + 9 + 11;

impl<'a> Rewriter<'a, '_> {
    /// Charges `bytes`, at least [`MIN_ELEMENT_COST`].
    #[inline]
    fn charge(&mut self, bytes: usize) -> Result<(), RewriteError> {
        self.charge_exact(bytes.max(MIN_ELEMENT_COST))
    }

    #[inline]
    fn charge_exact(&mut self, bytes: usize) -> Result<(), RewriteError> {
        self.cost = self.cost.saturating_add(bytes);
        if self.cost > self.settings.max_cost {
            return Err(RewriteError::TooCostly {
                limit: self.settings.max_cost,
            });
        }
        Ok(())
    }

    /// Counts and charges the start of a series: its field header and pinned label.
    fn begin_series(&mut self) -> Result<(), RewriteError> {
        self.series_seen += 1;
        if self.series_seen > self.settings.max_series {
            return Err(RewriteError::TooManySeries {
                limit: self.settings.max_series,
            });
        }
        let pinned = label_field_size(
            self.settings.identity_label.len(),
            self.settings.identity_value.len(),
        );
        self.charge(6 + pinned)?;
        self.labels.clear();
        self.labels_as_sent.clear();
        self.series_message = &[];
        self.samples.clear();
        self.series = SeriesCounts::default();
        Ok(())
    }

    /// Records a label of the current series (`value` known to be UTF-8); empty values are
    /// dropped (Prometheus treats them as absent and `/federate` emits `instance=""`).
    #[inline]
    fn add_label(&mut self, name: &'a [u8], value: &'a [u8], as_sent: (u32, u32)) {
        if value.is_empty() {
            return;
        }
        self.series.labels += 1;
        // Beyond the limit the series is refused anyway; only the count matters.
        if self.labels.len() < self.settings.limits.max_labels_per_series {
            self.labels.push((name, value));
            self.labels_as_sent.push(as_sent);
        }
    }

    fn v1(&mut self, buf: &'a [u8]) -> Result<(), RewriteError> {
        let mut reader = Reader::new(buf);
        let err = malformed("WriteRequest");
        while let Some((field, wire_type)) = reader.field().map_err(&err)? {
            if field == 1 {
                reader.expect(wire_type, WireType::Len).map_err(&err)?;
                let series = reader.bytes().map_err(&err)?;
                self.begin_series()?;
                self.v1_series(series)?;
            } else {
                // Metadata (3) and anything unknown: not forwarded, still charged.
                reader.skip(wire_type).map_err(&err)?;
                self.charge(0)?;
            }
        }
        Ok(())
    }

    fn v1_series(&mut self, buf: &'a [u8]) -> Result<(), RewriteError> {
        self.series_message = buf;
        let mut reader = Reader::new(buf);
        let err = malformed("TimeSeries");
        loop {
            let field_start = reader.position();
            let Some((field, wire_type)) = reader.field().map_err(&err)? else {
                break;
            };
            match field {
                1 => {
                    reader.expect(wire_type, WireType::Len).map_err(&err)?;
                    let message = reader.bytes().map_err(&err)?;
                    let (name, value, canonical) = v1_label(message)?;
                    self.charge(label_field_size(name.len(), value.len()))?;
                    // Key and length one byte each, the label as re-encoded: copy it as sent.
                    let field_end = reader.position();
                    let as_sent = if canonical && field_end - field_start == message.len() + 2 {
                        (field_start as u32, field_end as u32)
                    } else {
                        NOT_AS_SENT
                    };
                    // A valid name is ASCII (checked by validation); values may be any UTF-8.
                    if value.is_ascii() || std::str::from_utf8(value).is_ok() {
                        self.add_label(name, value, as_sent);
                    } else {
                        self.series.invalid_utf8 = true;
                    }
                }
                2 => self.read_sample(&mut reader, wire_type, "Sample", &err)?,
                _ => self.skip_field(&mut reader, wire_type, field, (4, 3), &err)?,
            }
        }
        self.finish_series()
    }

    /// Reads a `samples` field (the same in both versions) of the current series.
    fn read_sample(
        &mut self,
        reader: &mut Reader<'a>,
        wire_type: WireType,
        message: &'static str,
        err: &impl Fn(WireError) -> RewriteError,
    ) -> Result<(), RewriteError> {
        reader.expect(wire_type, WireType::Len).map_err(err)?;
        let sample = sample(reader.bytes().map_err(err)?, message)?;
        self.charge(SAMPLE_FIELD_MAX)?;
        self.samples.push(sample);
        Ok(())
    }

    /// Skips a series field that is not forwarded, charging it and counting it when it is the
    /// `(histograms, exemplars)` field of the version read.
    fn skip_field(
        &mut self,
        reader: &mut Reader<'a>,
        wire_type: WireType,
        field: u32,
        (histograms, exemplars): (u32, u32),
        err: &impl Fn(WireError) -> RewriteError,
    ) -> Result<(), RewriteError> {
        reader.skip(wire_type).map_err(err)?;
        self.charge(0)?;
        if field == histograms {
            self.series.histograms += 1;
        } else if field == exemplars {
            self.series.exemplars += 1;
        }
        Ok(())
    }

    fn v2(&mut self, buf: &'a [u8]) -> Result<(), RewriteError> {
        let err = malformed("io.prometheus.write.v2.Request");
        // Pass 1: the symbols table, wherever it is in the message.
        let mut symbols: Vec<&'a [u8]> = Vec::new();
        let mut reader = Reader::new(buf);
        while let Some((field, wire_type)) = reader.field().map_err(&err)? {
            match field {
                4 => {
                    reader.expect(wire_type, WireType::Len).map_err(&err)?;
                    let symbol = reader.bytes().map_err(&err)?;
                    self.charge(0)?;
                    // Checked once here, so label references need no check.
                    if !symbol.is_ascii() && std::str::from_utf8(symbol).is_err() {
                        return Err(RewriteError::Malformed {
                            message: "io.prometheus.write.v2.Request",
                            detail: format!("symbol {} is not valid UTF-8", symbols.len()),
                        });
                    }
                    symbols.push(symbol);
                }
                5 => reader.skip(wire_type).map_err(&err)?,
                _ => {
                    reader.skip(wire_type).map_err(&err)?;
                    self.charge(0)?;
                }
            }
        }
        if symbols.first().is_some_and(|s| !s.is_empty()) {
            return Err(RewriteError::Malformed {
                message: "io.prometheus.write.v2.Request",
                detail: "the first symbol must be the empty string".into(),
            });
        }
        // Pass 2: the series.
        let mut reader = Reader::new(buf);
        while let Some((field, wire_type)) = reader.field().map_err(&err)? {
            if field == 5 {
                reader.expect(wire_type, WireType::Len).map_err(&err)?;
                let series = reader.bytes().map_err(&err)?;
                self.begin_series()?;
                self.v2_series(series, &symbols)?;
            } else {
                reader.skip(wire_type).map_err(&err)?;
            }
        }
        Ok(())
    }

    fn v2_series(&mut self, buf: &'a [u8], symbols: &[&'a [u8]]) -> Result<(), RewriteError> {
        let err = malformed("io.prometheus.write.v2.TimeSeries");
        self.refs.clear();
        let mut reader = Reader::new(buf);
        while let Some((field, wire_type)) = reader.field().map_err(&err)? {
            match (field, wire_type) {
                (1, WireType::Len) => {
                    let mut packed = Reader::new(reader.bytes().map_err(&err)?);
                    while !packed.is_at_end() {
                        let reference = packed.varint().map_err(&err)?;
                        self.charge_exact(MIN_ELEMENT_COST / 2)?;
                        self.refs.push(reference);
                    }
                }
                (1, WireType::Varint) => {
                    let reference = reader.varint().map_err(&err)?;
                    self.charge_exact(MIN_ELEMENT_COST / 2)?;
                    self.refs.push(reference);
                }
                (1, _) => {
                    return Err(RewriteError::Malformed {
                        message: "io.prometheus.write.v2.TimeSeries",
                        detail: "labels_refs with a wrong wire type".into(),
                    })
                }
                // `start_timestamp` (3) has no place in 1.0 and is dropped.
                (2, _) => self.read_sample(
                    &mut reader,
                    wire_type,
                    "io.prometheus.write.v2.Sample",
                    &err,
                )?,
                _ => self.skip_field(&mut reader, wire_type, field, (3, 4), &err)?,
            }
        }
        if !self.refs.len().is_multiple_of(2) {
            return Err(RewriteError::Malformed {
                message: "io.prometheus.write.v2.TimeSeries",
                detail: "labels_refs has an odd number of entries".into(),
            });
        }
        let refs = std::mem::take(&mut self.refs);
        for pair in refs.chunks_exact(2) {
            let symbol = |reference: u64| {
                usize::try_from(reference)
                    .ok()
                    .and_then(|i| symbols.get(i).copied())
                    .ok_or_else(|| RewriteError::Malformed {
                        message: "io.prometheus.write.v2.TimeSeries",
                        detail: format!(
                            "label reference {reference} beyond the {} symbols",
                            symbols.len()
                        ),
                    })
            };
            let (name, value) = (symbol(pair[0])?, symbol(pair[1])?);
            // The two references were charged half the minimum each; the rest is output size.
            self.charge_exact(
                label_field_size(name.len(), value.len()).saturating_sub(MIN_ELEMENT_COST),
            )?;
            self.add_label(name, value, NOT_AS_SENT);
        }
        self.refs = refs;
        self.finish_series()
    }

    /// Validates, pins and writes the current series, or counts why not.
    fn finish_series(&mut self) -> Result<(), RewriteError> {
        let samples = self.samples.len() as u64;
        self.out.received_samples += samples;
        let SeriesCounts {
            histograms,
            exemplars,
            ..
        } = self.series;
        let refused = &mut self.out.refused;
        if histograms > 0 {
            refused.add(Refusal::NativeHistogram, histograms, || {
                "native histogram samples are not forwarded (the SLO Prometheus takes Remote Write 1.0 float samples)".into()
            });
        }
        if exemplars > 0 {
            refused.add(Refusal::Exemplar, exemplars, || {
                "exemplars are not forwarded".into()
            });
        }
        if samples == 0 && histograms > 0 {
            return Ok(());
        }
        match self.admit()? {
            Ok(first_kept) => {
                if first_kept < self.samples.len() {
                    self.emit(first_kept);
                }
            }
            Err(error) => self.out.refused.add(error.reason(), samples, || {
                format!("invalid series: {error}")
            }),
        }
        Ok(())
    }

    /// Checks the current series and pins its identity label. `Ok(Ok(i))`: admissible, samples
    /// from index `i` on are inside the acceptance window (the older ones are counted here).
    fn admit(&mut self) -> Result<Result<usize, SeriesError>, RewriteError> {
        let settings = self.settings;
        let limits = &settings.limits;
        if self.series.invalid_utf8 {
            return Ok(Err(SeriesError::InvalidUtf8));
        }
        if self.series.labels > limits.max_labels_per_series {
            return Ok(Err(SeriesError::TooManyLabels {
                count: self.series.labels,
                limit: limits.max_labels_per_series,
            }));
        }
        let name = match validate_labels(&self.labels, limits) {
            Ok(name) => name,
            Err(error) => return Ok(Err(error)),
        };
        if let Err(error) = validate_timestamps(
            name,
            self.samples.iter().map(|&(_, ts)| ts),
            limits,
            settings.now_ms,
        ) {
            return Ok(Err(error));
        }
        let label = settings.identity_label.as_bytes();
        let seed = settings.identity_value.as_bytes();
        match self
            .labels
            .binary_search_by(|(n, _)| compare_bytes(n, label))
        {
            Ok(i) if self.labels[i].1 != seed => {
                if settings.reject_other_identity {
                    return Err(RewriteError::OtherIdentity {
                        label: settings.identity_label.to_string(),
                        claimed: String::from_utf8_lossy(self.labels[i].1).into_owned(),
                        actual: settings.identity_value.to_string(),
                    });
                }
                self.labels[i].1 = seed;
                self.labels_as_sent[i] = NOT_AS_SENT;
            }
            Ok(_) => {}
            Err(i) => {
                if self.labels.len() >= limits.max_labels_per_series {
                    return Ok(Err(SeriesError::TooManyLabels {
                        count: self.labels.len() + 1,
                        limit: limits.max_labels_per_series,
                    }));
                }
                self.labels.insert(i, (label, seed));
                self.labels_as_sent.insert(i, NOT_AS_SENT);
            }
        }
        let first_kept = self
            .samples
            .partition_point(|&(_, ts)| ts < settings.oldest_timestamp_ms);
        if first_kept > 0 {
            let (oldest, newest) = (self.samples[0].1, self.samples[first_kept - 1].1);
            self.out
                .refused
                .add(Refusal::TooOld, first_kept as u64, || {
                    let mut text = format!(
                        "{first_kept} sample(s) of {} at {oldest}",
                        String::from_utf8_lossy(name)
                    );
                    if newest != oldest {
                        let _ = write!(text, "..{newest}");
                    }
                    let _ = write!(
                        text,
                        " ms are older than the oldest accepted timestamp {} ms (limits.max_sample_age)",
                        settings.oldest_timestamp_ms
                    );
                    text
                });
        }
        Ok(Ok(first_kept))
    }

    /// Writes the current series (labels as pinned, samples from `first_kept` on) to the output.
    fn emit(&mut self, first_kept: usize) {
        let samples = &self.samples[first_kept..];
        let labels_size: usize = self
            .labels
            .iter()
            .map(|(n, v)| label_field_size(n.len(), v.len()))
            .sum();
        let samples_size: usize = samples.iter().map(|&(v, t)| sample_field_size(v, t)).sum();
        let out = &mut self.out.body;
        let start = out.len();
        put_len_key(out, 1, labels_size + samples_size);
        let labels_start = out.len();
        // Runs of labels whose fields lie next to each other as sent are copied at once.
        let mut run = (0usize, 0usize);
        for (&(name, value), &(sent_start, sent_end)) in
            self.labels.iter().zip(&self.labels_as_sent)
        {
            let (sent_start, sent_end) = (sent_start as usize, sent_end as usize);
            if sent_end != 0 && run.1 != 0 && run.1 == sent_start {
                run.1 = sent_end;
                continue;
            }
            out.extend_from_slice(&self.series_message[run.0..run.1]);
            if sent_end != 0 {
                run = (sent_start, sent_end);
                continue;
            }
            run = (0, 0);
            put_len_key(
                out,
                1,
                len_field_size(name.len()) + len_field_size(value.len()),
            );
            put_len_key(out, 1, name.len());
            out.extend_from_slice(name);
            put_len_key(out, 2, value.len());
            out.extend_from_slice(value);
        }
        out.extend_from_slice(&self.series_message[run.0..run.1]);
        let samples_start = out.len();
        for &(value_bits, timestamp) in samples {
            put_sample(out, value_bits, timestamp);
        }
        self.out.series.push(SeriesSpan {
            start,
            labels_start,
            samples_start,
            end: out.len(),
            samples: samples.len() as u32,
        });
        self.out.admitted_samples += samples.len() as u64;
    }
}

/// `(name, value, canonical)` of a `prometheus.Label`; `canonical`: the bytes are exactly the
/// label's re-encoding (name, then value, one-byte lengths, nothing else).
fn v1_label(buf: &[u8]) -> Result<(&[u8], &[u8], bool), RewriteError> {
    // Fast path: the encoding every sender produces (name, then value, one-byte lengths).
    if let [0x0a, name_len, rest @ ..] = buf {
        let n = usize::from(*name_len);
        if n < 0x80 && rest.len() >= n + 2 && rest[n] == 0x12 {
            let value_len = rest[n + 1];
            if value_len < 0x80 && usize::from(value_len) == rest.len() - n - 2 {
                return Ok((&rest[..n], &rest[n + 2..], true));
            }
        }
    }
    let err = malformed("Label");
    let (mut name, mut value): (&[u8], &[u8]) = (&[], &[]);
    let mut reader = Reader::new(buf);
    while let Some((field, wire_type)) = reader.field().map_err(&err)? {
        match field {
            1 | 2 => {
                reader.expect(wire_type, WireType::Len).map_err(&err)?;
                let bytes = reader.bytes().map_err(&err)?;
                if field == 1 {
                    name = bytes;
                } else {
                    value = bytes;
                }
            }
            _ => reader.skip(wire_type).map_err(&err)?,
        }
    }
    Ok((name, value, false))
}

/// `(value bits, timestamp)` of a `prometheus.Sample` or `io.prometheus.write.v2.Sample`.
fn sample(buf: &[u8], message: &'static str) -> Result<(u64, i64), RewriteError> {
    let err = malformed(message);
    let (mut value_bits, mut timestamp) = (0u64, 0i64);
    let mut reader = Reader::new(buf);
    while let Some((field, wire_type)) = reader.field().map_err(&err)? {
        match field {
            1 => {
                reader.expect(wire_type, WireType::Fixed64).map_err(&err)?;
                value_bits = reader.fixed64().map_err(&err)?;
            }
            2 => {
                reader.expect(wire_type, WireType::Varint).map_err(&err)?;
                // int64 is the two's complement of the varint.
                timestamp = reader.varint().map_err(&err)? as i64;
            }
            _ => reader.skip(wire_type).map_err(&err)?,
        }
    }
    Ok((value_bits, timestamp))
}

/// Bytes of a `TimeSeries.labels` field holding a label of these lengths.
#[inline]
pub(crate) fn label_field_size(name_len: usize, value_len: usize) -> usize {
    len_field_size(len_field_size(name_len) + len_field_size(value_len))
}

/// Bytes of a `TimeSeries.samples` field (proto3: zero values are left out, as prost does; a
/// negative zero is kept).
#[inline]
fn sample_field_size(value_bits: u64, timestamp: i64) -> usize {
    len_field_size(sample_size(value_bits, timestamp))
}

/// Bytes of an encoded sample message (1.0 and 2.0 agree on fields 1 and 2).
#[inline]
pub(crate) fn sample_size(value_bits: u64, timestamp: i64) -> usize {
    (if value_bits != 0 { 9 } else { 0 })
        + (if timestamp != 0 {
            1 + varint_len(timestamp as u64)
        } else {
            0
        })
}

/// Appends a `samples` field (field 2 in both versions' `TimeSeries`).
#[inline]
pub(crate) fn put_sample(out: &mut Vec<u8>, value_bits: u64, timestamp: i64) {
    put_len_key(out, 2, sample_size(value_bits, timestamp));
    if value_bits != 0 {
        out.push((1 << 3) | 1);
        out.extend_from_slice(&value_bits.to_le_bytes());
    }
    if timestamp != 0 {
        out.push(2 << 3);
        put_varint(out, timestamp as u64);
    }
}

#[cfg(test)]
#[path = "rewrite_tests.rs"]
mod tests;
