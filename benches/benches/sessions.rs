//! Whole sessions: a pipelining client's bytes through the server machine, and the client
//! and server machines talking in memory. No peer has state machines to set beside these.
// criterion_group! defines an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use smtp_benches::*;

/// Messages per session.
const MESSAGES: usize = 4;

fn server(c: &mut Criterion) {
    let rounds = client_rounds(fixtures::BODY, MESSAGES);
    let config = server_config();
    let mut g = c.benchmark_group("server-session");
    g.throughput(Throughput::Bytes(
        rounds.iter().map(Vec::len).sum::<usize>() as u64,
    ));
    for read in [16 * 1024, 1024] {
        g.bench_function(format!("smtp-proto/read-{read}"), |b| {
            b.iter(|| server_session(&config, black_box(&rounds), read))
        });
    }
    g.finish();
}

fn paired(c: &mut Criterion) {
    let mut g = c.benchmark_group("paired-session");
    for (name, chunking) in [("data", false), ("bdat", true)] {
        let wire = paired_session(fixtures::BODY, MESSAGES, chunking);
        g.throughput(Throughput::Bytes(wire as u64));
        g.bench_function(format!("smtp-proto/{name}"), |b| {
            b.iter(|| paired_session(black_box(fixtures::BODY), MESSAGES, chunking))
        });
    }
    g.finish();
}

criterion_group!(benches, server, paired);
criterion_main!(benches);
