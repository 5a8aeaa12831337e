#!/usr/bin/env python3
"""Writes the committed seed corpus of the `remote_write` fuzz target: snappy-block-compressed
`prometheus.WriteRequest` bodies, shaped like what the agent sends (and a few that the receiver
refuses), into `fuzz/seeds/remote_write/`.

Dependency-free on purpose (protobuf and snappy are encoded by hand): run it from anywhere with
`python3 fuzz/seeds/gen_remote_write.py`. The output is deterministic; rerun it after changing it and
commit the result.
"""

import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "remote_write")


# --- protobuf --------------------------------------------------------------------------------


def varint(n):
    n &= (1 << 64) - 1  # int64 fields are sent as their two's complement
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(tag, wire, payload):
    key = varint((tag << 3) | wire)
    if wire == 2:
        return key + varint(len(payload)) + payload
    return key + payload


def string(tag, s):
    return field(tag, 2, s.encode() if isinstance(s, str) else s)


def label(name, value):
    return string(1, name) + string(2, value)


def sample(value, ts):
    # double value = 1 (fixed64), int64 timestamp = 2 (varint); prost omits zero defaults.
    out = b""
    if value != 0.0 or struct.pack("<d", value) != b"\0" * 8:
        out += field(1, 1, struct.pack("<d", value))
    if ts:
        out += field(2, 0, varint(ts))
    return out


def stale_sample(ts):
    return field(1, 1, struct.pack("<Q", 0x7FF0000000000002)) + field(2, 0, varint(ts))


def series(labels, samples, exemplars=()):
    out = b"".join(field(1, 2, label(n, v)) for n, v in labels)
    out += b"".join(field(2, 2, s) for s in samples)
    for ex_labels, value, ts in exemplars:
        ex = b"".join(field(1, 2, label(n, v)) for n, v in ex_labels)
        ex += field(2, 1, struct.pack("<d", value)) + field(3, 0, varint(ts))
        out += field(3, 2, ex)
    return out


def write_request(timeseries, metadata=()):
    out = b"".join(field(1, 2, ts) for ts in timeseries)
    for kind, family, help_, unit in metadata:
        md = field(1, 0, varint(kind)) + string(2, family) + string(4, help_) + string(5, unit)
        out += field(3, 2, md)
    return out


# --- snappy block format -----------------------------------------------------------------------


def _literal(data):
    n = len(data) - 1
    if n < 60:
        return bytes([n << 2]) + data
    if n < 256:
        return bytes([60 << 2, n]) + data
    return bytes([61 << 2]) + struct.pack("<H", n) + data


def _copy(offset, length):
    out = b""
    while length > 0:
        # 1-byte-offset copies for short, near matches; 2-byte-offset copies otherwise.
        if 4 <= length <= 11 and offset < 2048:
            return out + bytes([1 | ((length - 4) << 2) | ((offset >> 8) << 5), offset & 0xFF])
        n = min(length, 64)
        if length - n in (1, 2, 3):  # leave a remainder a copy can still express
            n = length - 4
        out += bytes([2 | ((n - 1) << 2)]) + struct.pack("<H", offset)
        length -= n
    return out


def snappy_compress(raw):
    """Greedy compressor (4-byte hash matches, offsets < 64 KiB): valid, not optimal."""
    out = bytearray(varint(len(raw)))
    table = {}
    i = lit = 0
    while i + 4 <= len(raw):
        key = raw[i : i + 4]
        cand = table.get(key)
        table[key] = i
        if cand is not None and i - cand < 65536:
            length = 4
            while i + length < len(raw) and raw[cand + length] == raw[i + length]:
                length += 1
            if lit < i:
                out += _literal(raw[lit:i])
            out += _copy(i - cand, length)
            i += length
            lit = i
        else:
            i += 1
    if lit < len(raw):
        out += _literal(raw[lit:])
    return bytes(out)


def snappy_decompress(body):
    """Reference decoder, only to check the compressor above."""
    n = shift = pos = 0
    while True:
        b = body[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            break
    out = bytearray()
    while pos < len(body):
        tag = body[pos]
        pos += 1
        kind = tag & 3
        if kind == 0:
            length = (tag >> 2) + 1
            if length > 60:
                extra = length - 60
                length = int.from_bytes(body[pos : pos + extra], "little") + 1
                pos += extra
            out += body[pos : pos + length]
            pos += length
            continue
        if kind == 1:
            length = ((tag >> 2) & 7) + 4
            offset = ((tag >> 5) << 8) | body[pos]
            pos += 1
        else:
            length = (tag >> 2) + 1
            offset = struct.unpack_from("<H", body, pos)[0]
            pos += 2
        for _ in range(length):
            out.append(out[-offset])
    assert len(out) == n
    return bytes(out)


# --- bodies -----------------------------------------------------------------------------------

NOW = 1732500000000


def gardener_specs(seed, shoots, samples_per_series=1):
    """(sorted labels, [(value, ts)]) per series, as an agent in a Gardener seed sends them."""
    out = []
    for i in range(shoots):
        cluster = f"shoot--project{i % 3}--cluster{i}"
        common = [("cluster", cluster), ("job", "shoot-prometheus"), ("project", f"project{i % 3}")]
        for kind in ("seed", "shoot", "vpn"):
            labels = sorted([("__name__", "shoot:availability"), ("kind", kind), ("seed", seed)] + common)
            out.append((labels, [(1.0, NOW + k * 30000) for k in range(samples_per_series)]))
        labels = sorted([("__name__", "shoot:apiserver_latency:percentage"), ("seed", seed)] + common)
        out.append((labels, [(0.0123 * (i + 1), NOW)]))
        for code, n in (("200", 123456.0), ("500", 17.0)):
            labels = sorted(
                [("__name__", "apiserver_request_total"), ("code", code), ("verb", "GET")] + common
            )
            out.append((labels, [(n + i, NOW)]))
    return out


def gardener(seed, shoots, samples_per_series=1):
    return [
        series(labels, [sample(v, ts) for v, ts in samples])
        for labels, samples in gardener_specs(seed, shoots, samples_per_series)
    ]


def v2_request(specs):
    """`io.prometheus.write.v2.Request`: symbols (4, first ""), series (5) with packed
    labels_refs (1) and samples (2)."""
    symbols = {"": 0}

    def ref(text):
        return symbols.setdefault(text, len(symbols))

    body = b""
    for labels, samples in specs:
        refs = b"".join(varint(ref(n)) + varint(ref(v)) for n, v in labels)
        ts = field(1, 2, refs) if refs else b""
        ts += b"".join(field(2, 2, sample(v, t)) for v, t in samples)
        body += field(5, 2, ts)
    return b"".join(string(4, text) for text in symbols) + body


BODIES = {
    # What an agent sends: sorted labels, one scrape's samples, identity label present.
    "agent_batch_3_shoots": write_request(gardener("fuzz", 3)),
    # Another seed's identity (overwritten or refused), several samples per series.
    "agent_batch_foreign_seed": write_request(gardener("aws-eu1", 1, samples_per_series=4)),
    # Edge values: stale marker, NaN, infinities, negative and zero timestamps, empty label values
    # (stripped), exemplars (cleared) and metadata (ignored).
    "edge_values": write_request(
        [
            series(
                [("__name__", "up"), ("instance", ""), ("job", "x")],
                [sample(0.0, -5), sample(float("nan"), 0), stale_sample(7)],
            ),
            series(
                [("__name__", "temp:celsius"), ("zone", "é✓")],
                [sample(float("inf"), NOW), sample(float("-inf"), NOW + 1)],
                exemplars=[([("trace_id", "abc123")], 0.5, NOW)],
            ),
        ],
        metadata=[(1, "up", "Whether the target was up.", "")],
    ),
    # Series the receiver refuses: unsorted, duplicate, bad names, no samples, out of order.
    "invalid_series": write_request(
        [
            series([("job", "x"), ("__name__", "up")], [sample(1.0, NOW)]),
            series([("__name__", "up"), ("a", "1"), ("a", "2")], [sample(1.0, NOW)]),
            series([("__name__", "bad-name")], [sample(1.0, NOW)]),
            series([("1bad", "v"), ("__name__", "up")], [sample(1.0, NOW)]),
            series([("__name__", "up")], []),
            series([("__name__", "up")], [sample(1.0, NOW), sample(2.0, NOW)]),
            series([("job", "x")], [sample(1.0, NOW)]),
            series([("__name__", "up"), ("zzz", "v" * 3000)], [sample(1.0, NOW)]),
        ]
    ),
    "empty_request": write_request([]),
    # The same agent batch as Remote Write 2.0 (the target reads every input both ways).
    "agent_batch_v2": v2_request(gardener_specs("fuzz", 3)),
    # 2.0 with a reserved label, an empty value, a foreign seed and an unsorted series.
    "v2_mixed": v2_request(
        [
            ([("__name__", "up"), ("__tenant__", "x")], [(1.0, NOW)]),
            ([("__name__", "up"), ("instance", ""), ("seed", "aws-eu1")], [(1.0, NOW)]),
            ([("job", "x"), ("__name__", "up")], [(1.0, NOW)]),
        ]
    ),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, raw in BODIES.items():
        body = snappy_compress(raw)
        assert snappy_decompress(body) == raw, name
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(body)
    # The encoding `wire_bytes_match_the_proto_field_numbers` in src/remote_write/codec.rs checks.
    expected = bytes([0x0A, 21, 0x0A, 6, 0x0A, 1, 97, 0x12, 1, 98, 0x12, 11, 0x09, 0, 0, 0, 0, 0, 0, 0xF0, 0x3F, 0x10, 2])
    assert write_request([series([("a", "b")], [sample(1.0, 2)])]) == expected


if __name__ == "__main__":
    main()
