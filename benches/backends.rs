//! Criterion benchmarks of every model's default preset on every compiled backend: a training
//! step (forward, backward, optimiser), log-likelihood evaluation, and sampling (naive and
//! cached where both exist), batch 32 on 28×28 (`genmodels::bench` builds each one).
//!
//! ```text
//! cargo bench -p genmodels --bench backends                       # everything (hours: naive sampling)
//! cargo bench -p genmodels --bench backends -- 'pixelcnn/flex'    # one model on one backend
//! cargo bench -p genmodels --bench backends -- 'train_step'       # one operation everywhere
//! ```
//!
//! Criterion reports time per run and, as the throughput, images/s ("elem/s"). A run is one
//! batch; naive sampling of 32 images takes about a minute on a 2-core CPU, so its groups
//! take about ten. `genmodels bench` gives the same figures in one quick pass.

use std::time::Duration;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use genmodels::Backend;
use genmodels::bench::{BenchModel, BenchOp, Benchmark};
use genmodels::kernels::on_compute_threads;

// The same allocator as the CLI and the examples; see docs/architecture.md, "Allocation".
#[global_allocator]
static ALLOCATOR: genmodels::kernels::Allocator = genmodels::kernels::Allocator;

const BATCH: usize = 32;
const IMAGE_SIZE: usize = 28;

fn backends(c: &mut Criterion) {
    for model in BenchModel::all() {
        for backend in Backend::compiled() {
            let mut group = c.benchmark_group(format!("{model}/{backend}"));
            group
                .throughput(Throughput::Elements(BATCH as u64))
                .sampling_mode(SamplingMode::Flat)
                .sample_size(10)
                .warm_up_time(Duration::from_secs(2))
                .measurement_time(Duration::from_secs(10));
            // The trainer's loop builds its model per run and times its own steps:
            // `genmodels bench --op train_loop` measures it.
            let ops = BenchOp::ALL
                .into_iter()
                .filter(|&op| model.supports(op) && op != BenchOp::TrainLoop);
            for op in ops {
                let id = format!("{model}/{backend}/{op}");
                let mut bench = match Benchmark::prepare(model, op, backend, BATCH, IMAGE_SIZE) {
                    Ok(bench) => bench,
                    Err(e) => {
                        eprintln!("{id}: skipped: {e}");
                        continue;
                    }
                };
                let device = backend.device().expect("a compiled backend has a device");
                group.bench_function(op.name(), |b| {
                    // As the trainer runs: on flex's compute threads (one hand-over per run).
                    b.iter(|| {
                        if let Err(e) = on_compute_threads(&device, || bench.run_once()) {
                            panic!("{id}: {e}");
                        }
                    })
                });
            }
            group.finish();
        }
    }
}

criterion_group!(benches, backends);
criterion_main!(benches);
