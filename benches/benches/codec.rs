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

/// The same session arriving in reads of 1460 octets (an Ethernet segment) and of 7.
fn commands_in_reads(c: &mut Criterion) {
    let buf = repeat(fixtures::COMMANDS, SESSIONS);
    for read in [1460, 7] {
        let mut g = c.benchmark_group(format!("commands-reads/{read}"));
        g.throughput(Throughput::Bytes(buf.len() as u64));
        g.bench_function("smtp-proto", |b| {
            b.iter(|| commands_ours_reads(black_box(&buf), read))
        });
        g.bench_function("stalwart", |b| {
            b.iter(|| commands_stalwart_reads(black_box(&buf), read))
        });
        g.finish();
    }
}

/// The server machine (every decision accepted, replies drained) reading a pipelined
/// session of commands without a message, in 1460-octet reads, beside Stalwart's
/// `RequestReceiver` parsing the same bytes (it has no machine around it).
fn server_commands(c: &mut Criterion) {
    let session = command_session(SESSIONS);
    let bytes = session.concat();
    let config = server_commands_config();
    let mut g = c.benchmark_group("server-commands");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("smtp-proto/server", |b| {
        b.iter(|| server_session(&config, black_box(&session), 1460))
    });
    g.bench_function("smtp-proto/decoder", |b| {
        b.iter(|| commands_ours_reads(black_box(&bytes), 1460))
    });
    g.bench_function("stalwart", |b| {
        b.iter(|| commands_stalwart_reads(black_box(&bytes), 1460))
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
        // What the copying rows spend in memcpy alone: machine-dependent (see the DATA
        // section of docs/performance.md).
        g.bench_function("copy", |b| {
            b.iter(|| {
                out.clear();
                out.extend_from_slice(black_box(&wire));
                out.len()
            })
        });
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

criterion_group!(
    benches,
    commands,
    commands_in_reads,
    server_commands,
    ehlo,
    replies,
    data_decode,
    data_encode
);
criterion_main!(benches);
