//! Running work on flex's compute threads.

use burn::tensor::Device;

/// Runs `work` on one of flex's compute threads (rayon's pool) when `device` is a flex
/// device, and on the calling thread otherwise.
///
/// flex runs its parallel kernels on rayon's pool. Called from outside it, each
/// parallel operation hands its work to the pool and puts the caller to sleep until it is
/// done: on a 2-core machine three threads then share two cores, with a sleep and a wake-up
/// per operation. From inside the pool the caller is itself one of the workers.
///
/// genmodels' own likelihood, sampling, evaluation and training paths call this themselves;
/// user code does not need to.
pub fn on_compute_threads<R: Send>(device: &Device, work: impl FnOnce() -> R + Send) -> R {
    #[cfg(feature = "flex")]
    if is_flex(device) {
        return rayon::scope(|_| work());
    }
    let _ = device;
    work()
}

/// Whether `device` (with or without autodiff) is a flex device.
#[cfg(feature = "flex")]
pub(crate) fn is_flex(device: &Device) -> bool {
    use burn::backend::DispatchDevice;
    matches!(
        device.clone().inner().as_dispatch(),
        DispatchDevice::Flex(_)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Tensor;

    #[cfg(feature = "flex")]
    #[test]
    fn flex_work_runs_on_a_compute_thread_and_returns_its_result() {
        assert_eq!(rayon::current_thread_index(), None);
        let (inside, sum) = on_compute_threads(&Device::flex().autodiff(), || {
            let on_pool = rayon::current_thread_index().is_some();
            let x: Tensor<1> = Tensor::arange(0..1000, &Device::flex()).float();
            (on_pool, x.sum().into_scalar::<f32>())
        });
        assert!(inside, "the work ran on the calling thread");
        assert_eq!(sum, 499_500.0);
        // Nested calls run in place.
        let nested = on_compute_threads(&Device::flex(), || {
            let outer = rayon::current_thread_index();
            on_compute_threads(&Device::flex(), || rayon::current_thread_index() == outer)
        });
        assert!(nested);
    }
}
