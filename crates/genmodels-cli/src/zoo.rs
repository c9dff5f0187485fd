//! `genmodels zoo`: the trained models shipped with the repository.

use std::path::PathBuf;

use anyhow::Context;
use genmodels::Backend;
use genmodels::zoo::{self, PackOptions, PackedModel};

use crate::DataArgs;
use crate::data::load_mnist;

#[derive(clap::Subcommand, Debug, Clone)]
pub enum ZooCommand {
    /// List the zoo's models with their precision, size, epochs and test likelihoods.
    List {
        /// The zoo [default: the repository's `zoo/`, or $GENMODELS_ZOO].
        #[arg(long)]
        zoo: Option<PathBuf>,
    },
    /// Pack the models of a `converged` comparison (`genmodels compare --budget converged
    /// --out DIR`) into the zoo: each best epoch's weights, at half precision where that
    /// moves no test likelihood by 0.05 nats or more, with its training record and curve.
    Pack {
        /// The comparison's output folder.
        #[arg(long)]
        from: PathBuf,
        /// The zoo to write [default: the repository's `zoo/`, or $GENMODELS_ZOO].
        #[arg(long)]
        zoo: Option<PathBuf>,
        /// Only these models (comma-separated).
        #[arg(long, value_delimiter = ',')]
        only: Option<Vec<String>>,
        /// The seed the comparison ran with.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[command(flatten)]
        data: DataArgs,
    },
}

impl ZooCommand {
    /// The backend the command runs on.
    pub fn backend(&self) -> Backend {
        match self {
            Self::List { .. } => Backend::default(),
            Self::Pack { data, .. } => data.backend,
        }
    }
}

pub fn zoo(command: &ZooCommand) -> anyhow::Result<()> {
    match command {
        ZooCommand::List { zoo } => {
            let dir = zoo.clone().unwrap_or_else(zoo::default_dir);
            let readme = zoo::check_dir(&dir)?.join("README.md");
            let text = std::fs::read_to_string(&readme)
                .with_context(|| format!("reading {}", readme.display()))?;
            print!("{text}");
            Ok(())
        }
        ZooCommand::Pack {
            from,
            zoo,
            only,
            seed,
            data,
        } => {
            let options = PackOptions {
                compared: from.clone(),
                zoo: zoo.clone().unwrap_or_else(zoo::default_dir),
                backend: data.backend,
                seed: *seed,
                only: only.clone(),
            };
            let packed = zoo::pack(&options, &load_mnist(data)?)?;
            for PackedModel {
                name,
                precision,
                weights_bytes,
                largest_change_nats,
                ..
            } in &packed
            {
                let change = largest_change_nats.map_or_else(String::new, |c| {
                    format!(", test likelihood moved {c:.4} nats")
                });
                println!(
                    "{name}: {:.2} MB at {precision}{change}",
                    *weights_bytes as f64 / 1e6
                );
            }
            println!("wrote {}", options.zoo.display());
            Ok(())
        }
    }
}
