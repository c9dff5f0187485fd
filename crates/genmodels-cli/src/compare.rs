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
    /// One CPU minute of training per model, then its evaluation: 12 minutes of training for
    /// the fourteen models.
    Quick,
    /// Paper-scale presets and 30 minutes per model: for a GPU.
    Full,
    /// Every model trained to convergence by its registry recipe: the zoo's budget (hours on
    /// 2 cores from scratch).
    Converged,
}

impl From<BudgetArg> for Budget {
    fn from(budget: BudgetArg) -> Self {
        match budget {
            BudgetArg::Tiny => Budget::Tiny,
            BudgetArg::Quick => Budget::Quick,
            BudgetArg::Full => Budget::Full,
            BudgetArg::Converged => Budget::Converged,
        }
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct CompareArgs {
    /// How much training and how many samples per model. Without it (and without
    /// --retrain), the trained models of the zoo are evaluated: the `converged` budget, no
    /// training.
    #[arg(long, value_enum)]
    pub budget: Option<BudgetArg>,
    /// The zoo to evaluate [default: the repository's `zoo/`, or $GENMODELS_ZOO].
    #[arg(long, conflicts_with_all = ["budget", "retrain"])]
    pub zoo: Option<PathBuf>,
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
    /// diagonal-bilstm, bernoulli-mixture, vae, ddpm, dcgan, dcgan-hinge, ae; the grey track's
    /// pixelcnn-256, vae-grey, ddpm-256, gaussian-mixture).
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
    let (budget, zoo) = match (args.budget, args.retrain) {
        (Some(budget), _) => (budget.into(), None),
        (None, true) => anyhow::bail!(
            "--retrain trains the models again: name the budget (`--budget converged` \
             reproduces the zoo, `--budget quick` is the one-minute experiment)"
        ),
        (None, false) => {
            let zoo = args.zoo.clone().unwrap_or_else(genmodels::zoo::default_dir);
            (Budget::Converged, Some(genmodels::zoo::check_dir(&zoo)?))
        }
    };
    let options = CompareOptions {
        budget,
        out: args.out.clone(),
        backend: args.data.backend,
        zoo,
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
