//! Codec throughput beside the peers, in one run: command parsing, EHLO and reply
//! parsing, the DATA decoder and the encoder. `docs/performance.md` has the figures.
// criterion_group! defines an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use smtp_benches::*;

/// How many times the 20-command session is repeated in the input.
const SESSIONS: usize = 50;

fn commands(c: &mut Criterion) {
    let buf = repeat(fixtures::COMMANDS, SESSIONS);
    let mut g = c.benchmark_group("commands");
    g.throughput(Throughput::Bytes(buf.len() as u64));
    g.bench_function("smtp-proto", |b| b.iter(|| commands_ours(black_box(&buf))));
    g.bench_function("stalwart", |b| {
        b.iter(|| commands_stalwart(black_box(&buf)))
    });
    g.finish();
}

fn ehlo(c: &mut Criterion) {
    let buf = fixtures::EHLO;
    let text = std::str::from_utf8(buf).expect("ASCII");
    let mut g = c.benchmark_group("ehlo");
    g.throughput(Throughput::Bytes(buf.len() as u64));
    g.bench_function("smtp-proto", |b| b.iter(|| ehlo_ours(black_box(buf))));
    g.bench_function("smtp-proto/via-reply", |b| {
        b.iter(|| ehlo_ours_via_reply(black_box(buf)))
    });
    g.bench_function("stalwart", |b| b.iter(|| ehlo_stalwart(black_box(buf))));
    g.bench_function("lettre", |b| b.iter(|| ehlo_lettre(black_box(text))));
    g.finish();
}

fn replies(c: &mut Criterion) {
    let buf = repeat(fixtures::REPLIES, 10);
    let split = split_replies(&buf);
    let mut g = c.benchmark_group("replies");
    g.throughput(Throughput::Bytes(buf.len() as u64));
    g.bench_function("smtp-proto", |b| b.iter(|| replies_ours(black_box(&buf))));
    g.bench_function("stalwart", |b| b.iter(|| replies_stalwart(black_box(&buf))));
    g.bench_function("lettre", |b| b.iter(|| replies_lettre(black_box(&split))));
    g.finish();
}

fn data_decode(c: &mut Criterion) {
    for (name, body) in [("body", fixtures::BODY), ("dots", fixtures::DOTS)] {
        let wire = stuffed(body);
        let mut out = Vec::with_capacity(wire.len());
        let mut g = c.benchmark_group(format!("data-decode/{name}"));
        g.throughput(Throughput::Bytes(wire.len() as u64));
        g.bench_function("smtp-proto", |b| {
            b.iter(|| {
                out.clear();
                data_ours(black_box(&wire), &mut out)
            })
        });
        g.bench_function("smtp-proto/zero-copy", |b| {
            b.iter(|| data_ours_zero_copy(black_box(&wire)))
        });
        g.bench_function("stalwart", |b| {
            b.iter(|| {
                out.clear();
                data_stalwart(black_box(&wire), &mut out)
            })
        });
        g.bench_function("memchr2", |b| b.iter(|| memchr2_floor(black_box(&wire))));
        g.bench_function("memchr", |b| b.iter(|| memchr_floor(black_box(&wire))));
        g.bench_function("memchr-count", |b| {
            b.iter(|| memchr_count(black_box(&wire)))
        });
        g.finish();
    }
}

fn data_encode(c: &mut Criterion) {
    for (name, body) in [("body", fixtures::BODY), ("dots", fixtures::DOTS)] {
        let mut out = Vec::with_capacity(2 * body.len());
        let mut g = c.benchmark_group(format!("data-encode/{name}"));
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function("smtp-proto", |b| {
            b.iter(|| {
                out.clear();
                encode_ours(black_box(body), &mut out);
                out.len()
            })
        });
        g.bench_function("memchr2", |b| b.iter(|| memchr2_floor(black_box(body))));
        g.finish();
    }
}

criterion_group!(benches, commands, ehlo, replies, data_decode, data_encode);
criterion_main!(benches);
