//! `genmodels compare`: the comparison of explicit, approximate and implicit density models.

use std::path::PathBuf;

use anyhow::Context;
use clap::ValueEnum;
use genmodels::compare::{self, Budget, CompareOptions};

use crate::DataArgs;
use crate::data::load_mnist;

/// How much work the comparison does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BudgetArg {
    /// A few steps per model: checks the pipeline in about a minute (numbers mean nothing).
    Tiny,
    /// Two CPU minutes of training per model: under 30 minutes on 2 cores with flex.
    Quick,
    /// Paper-scale presets and 30 minutes per model: for a GPU.
    Full,
}

impl From<BudgetArg> for Budget {
    fn from(budget: BudgetArg) -> Self {
        match budget {
            BudgetArg::Tiny => Budget::Tiny,
            BudgetArg::Quick => Budget::Quick,
            BudgetArg::Full => Budget::Full,
        }
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct CompareArgs {
    /// How much training and how many samples per model.
    #[arg(long, value_enum, default_value = "quick")]
    pub budget: BudgetArg,
    /// Output directory: results.md/.json/.csv, samples.png, nll_vs_time.png, and each
    /// model's checkpoint under models/.
    #[arg(long, default_value = "runs/compare")]
    pub out: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
    /// Train every model again, even where a finished checkpoint of this budget exists.
    #[arg(long)]
    pub retrain: bool,
    /// Only these models (comma-separated: pixelcnn, gated-pixelcnn, row-lstm,
    /// diagonal-bilstm, bernoulli-mixture, vae, dcgan, dcgan-hinge, ae).
    #[arg(long, value_delimiter = ',')]
    pub only: Option<Vec<String>>,
    /// Seed of initialisation, data order and sampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

pub fn compare(args: &CompareArgs) -> anyhow::Result<()> {
    let mnist = load_mnist(&args.data)?;
    let data_description = match &args.data.data_dir {
        Some(dir) => format!("IDX files in {}", dir.display()),
        None => "the bundled MNIST sample".to_string(),
    };
    let options = CompareOptions {
        budget: args.budget.into(),
        out: args.out.clone(),
        backend: args.data.backend,
        retrain: args.retrain,
        seed: args.seed,
        only: args.only.clone(),
        command: format!(
            "genmodels {}",
            std::env::args().skip(1).collect::<Vec<_>>().join(" ")
        ),
        data_description,
    };
    let results = compare::run(&options, &mnist).context("the comparison failed")?;
    let table = std::fs::read_to_string(args.out.join("results.md"))
        .with_context(|| format!("reading {}", args.out.join("results.md").display()))?;
    println!("{table}");
    eprintln!(
        "compared {} rows in {:.1} min; files in {}",
        results.rows.len(),
        results.total_seconds / 60.0,
        args.out.display()
    );
    Ok(())
}
