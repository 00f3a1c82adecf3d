//! Parsing and normalising image references: done for every container of every workload on
//! every automation pass.

use criterion::{Criterion, criterion_group, criterion_main};
use flux_core::ImageRef;
use std::hint::black_box;

fn parse(c: &mut Criterion) {
    let refs = [
        "nginx",
        "nginx:1.25-alpine",
        "ghcr.io/fluxcd/flux:1.21.0",
        "127.0.0.1:5000/team/app:1.0.0",
        "quay.io/team/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    ];
    c.bench_function("parse+canonical 5 refs", |b| {
        b.iter(|| {
            for r in refs {
                let parsed: ImageRef = black_box(r).parse().expect("valid");
                black_box(parsed.canonical());
            }
        })
    });
}

criterion_group!(benches, parse);
criterion_main!(benches);
