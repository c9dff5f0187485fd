//! What the flex kernels ([`crate::tap_conv`], [`crate::batch_norm`],
//! [`crate::distributions`]) and [`crate::backend::on_compute_threads`] share: whether a
//! device is flex, and moving `f32` values in and out of flex tensors.

use burn::backend::DispatchDevice;
use burn::backend::flex::FlexTensor;
use burn::tensor::{DType, Device, Shape, TensorData};
use std::borrow::Cow;

/// Whether `device` (with or without autodiff) is a flex device.
pub(crate) fn is_flex(device: &Device) -> bool {
    matches!(
        device.clone().inner().as_dispatch(),
        DispatchDevice::Flex(_)
    )
}

/// Whether a kernel applies: `device` is flex and every tensor is `f32`, the only float type
/// the kernels handle.
pub(crate) fn is_flex_f32(device: &Device, dtypes: &[DType]) -> bool {
    is_flex(device) && dtypes.iter().all(|&dtype| dtype == DType::F32)
}

/// The values of an `f32` flex tensor in row-major order, copied only where its layout is not
/// already contiguous.
pub(crate) fn values(tensor: &FlexTensor) -> Cow<'_, [f32]> {
    match tensor.as_slice::<f32>() {
        Some(values) => Cow::Borrowed(values),
        None => Cow::Owned(
            tensor
                .to_contiguous()
                .as_slice::<f32>()
                .expect("a contiguous copy is contiguous")
                .to_vec(),
        ),
    }
}

/// An `f32` flex tensor of `values` in row-major order.
pub(crate) fn flex_tensor(values: Vec<f32>, shape: impl Into<Shape>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape.into()))
}
