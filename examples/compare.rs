//! The comparison of explicit, approximate and implicit density models: trains PixelCNN,
//! Gated PixelCNN, Row LSTM, Diagonal BiLSTM, a Bernoulli mixture, a VAE, two DCGANs and an
//! autoencoder on the same digits, scores them all on the same test split, and writes
//! `results.md`, `results.json`, `results.csv`, `samples.png` and `nll_vs_time.png`.
//!
//! ```text
//! cargo run --release --example compare -- --budget quick --out runs/compare
//! ```
//!
//! Options: `--budget tiny|quick|full` (default quick), `--out DIR` (default
//! `runs/compare`), `--data-dir DIR` (MNIST IDX files; default the bundled 10k digits),
//! `--backend flex|ndarray|wgpu`, `--retrain`, `--only a,b` (model names), `--seed N`.
//! The same program is `genmodels compare`.

use std::path::PathBuf;

use genmodels::Backend;
use genmodels::compare::{self, Budget, CompareOptions};
use genmodels::data::Mnist;

#[global_allocator]
static ALLOCATOR: genmodels::kernels::Allocator = genmodels::kernels::Allocator;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut budget = Budget::Quick;
    let mut out = PathBuf::from("runs/compare");
    let mut data_dir: Option<PathBuf> = None;
    let mut backend = Backend::Flex;
    let mut retrain = false;
    let mut only = None;
    let mut seed = 0;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--budget" => budget = value()?.parse()?,
            "--out" => out = value()?.into(),
            "--data-dir" => data_dir = Some(value()?.into()),
            "--backend" => backend = value()?.parse()?,
            "--retrain" => retrain = true,
            "--only" => only = Some(value()?.split(',').map(String::from).collect()),
            "--seed" => seed = value()?.parse()?,
            other => return Err(format!("unknown option `{other}`").into()),
        }
    }
    // burn restores optimiser state onto `Device::default()`; pin that to the chosen backend.
    // SAFETY: no other thread exists yet.
    unsafe { std::env::set_var("BURN_DEVICE", backend.name()) };
    let (mnist, data_description) = match &data_dir {
        Some(dir) => (
            Mnist::from_dir(dir)?,
            format!("IDX files in {}", dir.display()),
        ),
        None => (Mnist::bundled()?, "the bundled MNIST sample".to_string()),
    };
    let options = CompareOptions {
        budget,
        out: out.clone(),
        backend,
        zoo: None,
        retrain,
        seed,
        only,
        command: format!(
            "cargo run --release --example compare -- {}",
            std::env::args().skip(1).collect::<Vec<_>>().join(" ")
        ),
        data_description,
    };
    let results = compare::run(&options, &mnist)?;
    println!("{}", std::fs::read_to_string(out.join("results.md"))?);
    eprintln!(
        "compared {} rows in {:.1} min; files in {}",
        results.rows.len(),
        results.total_seconds / 60.0,
        out.display()
    );
    Ok(())
}
