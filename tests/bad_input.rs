//! Bad input gives typed errors, never a panic or a silently wrong number.

mod common;

use genmodels::ae::AutoencoderConfig;
use genmodels::burn::tensor::{Device, Tensor};
use genmodels::prelude::*;
use genmodels::vae::VaeConfig;

use common::small_vae;

fn batch(shape: ImageShape, n: usize, value: f32) -> genmodels::Result<ImageBatch> {
    ImageBatch::from_host(vec![value; n * shape.dims()], shape, None, &Device::flex())
}

#[test]
fn wrong_image_size_or_channel_count_is_a_shape_error() {
    let device = Device::flex();
    let vae = small_vae().init(&device).unwrap();
    for shape in [ImageShape::new(1, 32, 32), ImageShape::new(3, 28, 28)] {
        let b = batch(shape, 2, 0.0).unwrap();
        let err = vae.loss(0, &b).unwrap_err();
        assert!(matches!(err, GenError::ShapeMismatch { .. }), "{err}");
        let err = vae
            .log_likelihood(&b, &LikelihoodOptions::default())
            .unwrap_err();
        assert!(matches!(err, GenError::ShapeMismatch { .. }), "{err}");
    }
    let ae = AutoencoderConfig::new().init(&device).unwrap();
    let err = ae
        .loss(0, &batch(ImageShape::new(1, 14, 14), 1, 0.0).unwrap())
        .unwrap_err();
    assert!(matches!(err, GenError::ShapeMismatch { .. }), "{err}");
}

#[test]
fn values_outside_the_unit_interval_or_nan_are_rejected() {
    for bad in [1.5f32, -0.1] {
        let err = batch(ImageShape::MNIST, 1, bad).unwrap_err();
        assert!(matches!(err, GenError::ValueOutOfRange { .. }), "{err}");
    }
    let err = batch(ImageShape::MNIST, 1, f32::NAN).unwrap_err();
    assert!(matches!(err, GenError::NonFiniteInput { .. }), "{err}");
    let mut t = vec![0.0f32; 784];
    t[5] = 2.0;
    let err = ImageBatch::from_tensor(
        Tensor::<1>::from_floats(t.as_slice(), &Device::flex()).reshape([1, 1, 28, 28]),
    )
    .unwrap_err();
    assert!(matches!(err, GenError::ValueOutOfRange { .. }), "{err}");
}

#[test]
fn grey_levels_have_no_bernoulli_likelihood() {
    let vae = small_vae().init(&Device::flex()).unwrap();
    let grey = batch(ImageShape::MNIST, 2, 0.5).unwrap();
    assert_eq!(grey.domain(), PixelDomain::UnitInterval);
    let err = vae
        .log_likelihood(&grey, &LikelihoodOptions::default())
        .unwrap_err();
    assert!(matches!(err, GenError::ValueOutOfRange { .. }), "{err}");
}

#[test]
fn empty_batches_and_zero_samples_are_errors() {
    let err = batch(ImageShape::MNIST, 0, 0.0).unwrap_err();
    assert!(matches!(err, GenError::EmptyData { .. }), "{err}");
    let vae = VaeConfig::new().init(&Device::flex()).unwrap();
    assert!(matches!(vae.sample(0, 0), Err(GenError::InvalidConfig(_))));
    let b = batch(ImageShape::MNIST, 1, 1.0).unwrap();
    let err = vae
        .log_likelihood(&b, &LikelihoodOptions::iwae(0))
        .unwrap_err();
    assert!(matches!(err, GenError::InvalidConfig(_)), "{err}");
}

#[test]
fn invalid_configs_are_rejected() {
    let device = Device::flex();
    assert!(VaeConfig::new().with_latent_dim(0).init(&device).is_err());
    assert!(VaeConfig::new().with_beta(f64::NAN).init(&device).is_err());
    assert!("tpu".parse::<Backend>().is_err());
}
