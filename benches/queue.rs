//! Disk queue throughput: append + take + ack of one record per iteration, in payload MB/s.

#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use slo_gateway::agent::queue::{DiskQueue, QueueOptions};

fn append_take_ack(c: &mut Criterion) {
    let mut group = c.benchmark_group("queue_append_take_ack");
    for (size, fsync) in [(4 << 10, false), (64 << 10, false), (4 << 10, true)] {
        let dir = tempfile::tempdir().unwrap();
        let opts = QueueOptions {
            fsync,
            ..QueueOptions::default()
        };
        let (mut q, _) = DiskQueue::open(dir.path(), opts).unwrap();
        let payload = vec![0x5au8; size];
        group.throughput(Throughput::Bytes(size as u64));
        let name = if fsync { "fsync" } else { "no_fsync" };
        group.bench_function(BenchmarkId::new(name, format!("{}KiB", size >> 10)), |b| {
            b.iter(|| {
                let id = q.append(0, &payload).unwrap();
                let recs = q.take(1).unwrap();
                black_box(&recs[0].payload);
                q.ack(id).unwrap();
            });
        });
    }
    group.finish();
}

criterion_group!(benches, append_take_ack);
criterion_main!(benches);
