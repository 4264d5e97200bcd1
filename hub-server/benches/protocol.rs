//! Throughput of the compact protocol on JSON handoffs of 4 KB and 32 KB: CAEP pack/unpack
//! (json and dictionary encodings), lossless_auto compress/decompress (zstd envelope), and
//! canonical JSON hashing. Run: `cargo bench -p hub-server --bench protocol`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hub_server::protocol::caep::{self, PackMode, PackOptions, PayloadFormat};
use hub_server::protocol::canonical;
use hub_server::protocol::codec::{self, Mode, Policy};
use serde_json::json;

/// A JSON handoff of about `bytes` bytes, like a worker's task summary list.
fn handoff(bytes: usize) -> String {
    let mut items = Vec::new();
    let mut i = 0;
    loop {
        items.push(json!({
            "task_id": i,
            "status": if i % 3 == 0 { "done" } else { "in_progress" },
            "summary": format!("Refactored module {i}: moved parsing into its own function and added tests"),
            "evidence": [format!("commit:{:07x}", i * 7919), format!("test:module_{i}")],
            "confidence": 0.9,
        }));
        let text = json!({"handoff": items}).to_string();
        if text.len() >= bytes {
            return text;
        }
        i += 1;
    }
}

fn bench(c: &mut Criterion) {
    for size in [4096usize, 32768] {
        let payload = handoff(size);
        let mut group = c.benchmark_group(format!("protocol_{}k", size / 1024));
        group.throughput(Throughput::Bytes(payload.len() as u64));
        for (label, mode) in [
            ("json", PackMode::Json),
            ("dictionary", PackMode::Dictionary),
        ] {
            let options = PackOptions {
                format: PayloadFormat::Json,
                mode,
                min_payload_chars: 0,
                min_gain_pct: 0.0,
                now_ms: 1_700_000_000_000,
            };
            group.bench_with_input(BenchmarkId::new("pack", label), &payload, |b, p| {
                b.iter(|| caep::pack(p, &options).unwrap())
            });
            let packet = caep::pack(&payload, &options).unwrap().packet_json;
            group.bench_with_input(BenchmarkId::new("unpack", label), &packet, |b, p| {
                b.iter(|| caep::unpack(p).unwrap())
            });
        }
        let policy = Policy::default();
        group.bench_with_input(
            BenchmarkId::new("compress", "lossless_auto"),
            &payload,
            |b, p| b.iter(|| codec::compress(Mode::LosslessAuto, p, &policy)),
        );
        let stored = codec::compress(Mode::LosslessAuto, &payload, &policy).stored;
        group.bench_with_input(
            BenchmarkId::new("decompress", "lossless_auto"),
            &stored,
            |b, s| b.iter(|| codec::decode(s)),
        );
        group.bench_with_input(BenchmarkId::new("canonical", "hash"), &payload, |b, p| {
            b.iter(|| hub_server::protocol::sha256_hex(&canonical::canonicalize_text(p).unwrap()))
        });
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(std::time::Duration::from_millis(300))
        .measurement_time(std::time::Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
