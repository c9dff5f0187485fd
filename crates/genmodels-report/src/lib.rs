//! # genmodels-report
//!
//! What people look at: PNG sample sheets ([`image_output`]: grids of images, labelled panels
//! side by side), charts ([`plot`]: grouped bar charts and line charts), drawn without any
//! font or system library on the machine, and progress bars ([`TerminalProgress`] for the
//! library's long work, [`TrainingProgress`] for training).

#![warn(missing_docs)]

pub mod image_output;
pub mod plot;
pub mod progress;

pub use image_output::{GridLayout, save_image_grid, save_labelled_panels};
pub use plot::{BarChart, LineChart, validation_chart};
pub use progress::{TerminalProgress, TrainingProgress};
