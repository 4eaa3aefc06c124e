//! Runs one benchmark's work in a loop, for a profiler:
//! `valgrind --tool=callgrind target/release/examples/profile commands 200`.
//! `docs/performance.md` lists the work names and what each measures.

use std::hint::black_box;

use smtp_benches::*;

fn main() {
    let mut args = std::env::args().skip(1);
    let what = args.next().unwrap_or_else(|| "commands".into());
    let n: usize = args.next().map_or(100, |n| n.parse().expect("a count"));
    let commands = repeat(fixtures::COMMANDS, 50);
    let session = command_session(50);
    let session_bytes = session.concat();
    let config = server_commands_config();
    let replies = repeat(fixtures::REPLIES, 10);
    let wire = stuffed(fixtures::BODY);
    let dots = stuffed(fixtures::DOTS);
    let mut out = Vec::with_capacity(2 * wire.len());
    let mut total = 0;
    for _ in 0..n {
        total += match what.as_str() {
            "commands" => commands_ours(black_box(&commands)),
            "commands-stalwart" => commands_stalwart(black_box(&commands)),
            "commands-1460" => commands_ours_reads(black_box(&commands), 1460),
            "commands-1460-stalwart" => commands_stalwart_reads(black_box(&commands), 1460),
            "commands-7" => commands_ours_reads(black_box(&commands), 7),
            "commands-7-stalwart" => commands_stalwart_reads(black_box(&commands), 7),
            "server-commands" => server_session(&config, black_box(&session), 1460),
            "server-commands-stalwart" => commands_stalwart_reads(black_box(&session_bytes), 1460),
            "ehlo" => ehlo_ours(black_box(fixtures::EHLO)).auth().count(),
            "ehlo-stalwart" => ehlo_stalwart(black_box(fixtures::EHLO)).size,
            "replies" => replies_ours(black_box(&replies)),
            "replies-stalwart" => replies_stalwart(black_box(&replies)),
            "data" => {
                out.clear();
                data_ours(black_box(&wire), &mut out)
            }
            "data-zero-copy" => data_ours_zero_copy(black_box(&wire)),
            "data-dots" => {
                out.clear();
                data_ours(black_box(&dots), &mut out)
            }
            "data-dots-zero-copy" => data_ours_zero_copy(black_box(&dots)),
            "data-stalwart" => {
                out.clear();
                data_stalwart(black_box(&wire), &mut out)
            }
            "data-dots-stalwart" => {
                out.clear();
                data_stalwart(black_box(&dots), &mut out)
            }
            other => panic!("unknown work {other}"),
        };
    }
    println!("{total}");
}
