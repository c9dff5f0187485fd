//! The likelihood curve: the test log-likelihood recorded while training.

use burn::tensor::Device;

use super::{CurveOptions, CurvePoint};
use crate::batch::{ImageBatch, ImageDataset, ImageShape};
use crate::error::{GenError, Result};
use crate::evaluation::evaluate_log_likelihood;
use crate::model::GenerativeModel;

/// The points of [`TrainerConfig::likelihood_curve`] as training records them.
pub(crate) struct LikelihoodCurve<'a> {
    options: Option<&'a CurveOptions>,
    test: Option<Subset<'a>>,
    pub(crate) points: Vec<CurvePoint>,
    next_at: f64,
}

impl<'a> LikelihoodCurve<'a> {
    pub(crate) fn new(
        options: Option<&'a CurveOptions>,
        test: Option<&'a dyn ImageDataset>,
    ) -> Self {
        let test = options.zip(test).map(|(o, data)| Subset {
            data,
            len: o.test_images.min(data.len()),
        });
        Self {
            options,
            test,
            points: Vec::new(),
            next_at: 0.0,
        }
    }

    pub(crate) fn due(&self, train_seconds: f64) -> bool {
        self.test.is_some() && train_seconds >= self.next_at
    }

    pub(crate) fn last_steps(&self) -> Option<usize> {
        self.points.last().map(|p| p.steps)
    }

    /// Evaluates the model in its inference form; a model without a likelihood stops the curve.
    pub(crate) fn record<M: GenerativeModel>(
        &mut self,
        model: &M,
        train_seconds: f64,
        steps: usize,
        device: &Device,
    ) -> Result<()> {
        let (Some(options), Some(test)) = (self.options, &self.test) else {
            return Ok(());
        };
        let inference = model.clone().valid().fork(device);
        let started = std::time::Instant::now();
        match evaluate_log_likelihood(&inference, test, &options.options, 100, device) {
            Ok(ll) => {
                let cost = started.elapsed().as_secs_f64();
                self.points.push(CurvePoint {
                    train_seconds,
                    steps,
                    nll_nats: ll.mean_nll_nats(),
                    bits_per_dim: ll.nll_bits_per_dim(),
                    kind: ll.kind.to_string(),
                });
                let spacing = options.max_share.map_or(options.every_seconds, |share| {
                    options.every_seconds.max(cost / share)
                });
                self.next_at = train_seconds + spacing;
                Ok(())
            }
            Err(GenError::LikelihoodNotAvailable { .. }) => {
                self.test = None;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

/// The first `len` images of a data set.
struct Subset<'a> {
    data: &'a dyn ImageDataset,
    len: usize,
}

impl ImageDataset for Subset<'_> {
    fn len(&self) -> usize {
        self.len
    }

    fn image_shape(&self) -> ImageShape {
        self.data.image_shape()
    }

    fn batch(&self, indices: &[usize], epoch: usize, device: &Device) -> Result<ImageBatch> {
        if let Some(&i) = indices.iter().find(|&&i| i >= self.len) {
            return Err(GenError::InvalidConfig(format!(
                "image {i} is outside the first {} images",
                self.len
            )));
        }
        self.data.batch(indices, epoch, device)
    }
}
