//! Choosing a compute backend by name at run time.

use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use std::str::FromStr;

use crate::error::{GenError, Result};

/// A compute backend. Each is a cargo feature of `genmodels-core` (and of the facade).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Burn's pure-Rust CPU backend (feature `flex`, the default).
    #[default]
    Flex,
    /// The ndarray CPU backend (feature `ndarray`; deprecated by burn, still working).
    Ndarray,
    /// GPUs through wgpu: Vulkan, Metal, DX12, or lavapipe on a CPU (feature `wgpu`).
    Wgpu,
}

impl Backend {
    /// All backends, compiled in or not.
    pub const ALL: [Backend; 3] = [Backend::Flex, Backend::Ndarray, Backend::Wgpu];

    /// The backend's name as the CLI spells it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Flex => "flex",
            Self::Ndarray => "ndarray",
            Self::Wgpu => "wgpu",
        }
    }

    /// Whether this build includes the backend.
    pub fn is_compiled(&self) -> bool {
        match self {
            Self::Flex => cfg!(feature = "flex"),
            Self::Ndarray => cfg!(feature = "ndarray"),
            Self::Wgpu => cfg!(feature = "wgpu"),
        }
    }

    /// The backends this build includes.
    pub fn compiled() -> Vec<Backend> {
        Self::ALL.into_iter().filter(|b| b.is_compiled()).collect()
    }

    /// The inference device of this backend (no autodiff). Call `.autodiff()` on it to train.
    ///
    /// # Errors
    /// [`GenError::BackendUnavailable`] when the backend's feature is not compiled in, or (for
    /// wgpu) when no adapter can be started.
    pub fn device(&self) -> Result<Device> {
        match self {
            #[cfg(feature = "flex")]
            Self::Flex => Ok(Device::flex()),
            #[cfg(feature = "ndarray")]
            #[allow(deprecated)]
            // burn keeps ndarray working; we offer it for comparison
            Self::Ndarray => Ok(Device::ndarray()),
            #[cfg(feature = "wgpu")]
            Self::Wgpu => {
                let device = Device::wgpu(burn::tensor::DeviceKind::DefaultDevice);
                // wgpu starts lazily and panics when no adapter exists; find out here.
                let probe = std::panic::catch_unwind(|| {
                    burn::tensor::Tensor::<1>::ones([1], &device).into_scalar::<f32>()
                });
                match probe {
                    Ok(value) if (value - 1.0).abs() < f32::EPSILON => Ok(device),
                    _ => Err(GenError::BackendUnavailable {
                        name: "wgpu".into(),
                        reason: "no GPU adapter could be started; install a GPU driver, or \
                                 mesa-vulkan-drivers for a Vulkan device on the CPU"
                            .into(),
                    }),
                }
            }
            #[allow(unreachable_patterns)]
            other => Err(GenError::BackendUnavailable {
                name: other.name().into(),
                reason: format!(
                    "this build does not include it; enable the cargo feature `{}`",
                    other.name()
                ),
            }),
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = GenError;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "flex" => Ok(Self::Flex),
            "ndarray" => Ok(Self::Ndarray),
            "wgpu" => Ok(Self::Wgpu),
            other => Err(GenError::BackendUnavailable {
                name: other.into(),
                reason: "unknown backend; choose flex, ndarray or wgpu".into(),
            }),
        }
    }
}

/// Runs `work` on one of flex's compute threads (rayon's pool) when `device` is a flex
/// device, and on the calling thread otherwise.
///
/// flex runs its parallel kernels on rayon's pool. Called from outside it, each
/// parallel operation hands its work to the pool and puts the caller to sleep until it is
/// done: on a 2-core machine three threads then share two cores, with a sleep and a wake-up
/// per operation. From inside the pool the caller is itself one of the workers.
pub fn on_compute_threads<R: Send>(device: &Device, work: impl FnOnce() -> R + Send) -> R {
    #[cfg(feature = "flex")]
    if crate::flex_support::is_flex(device) {
        return rayon::scope(|_| work());
    }
    let _ = device;
    work()
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
