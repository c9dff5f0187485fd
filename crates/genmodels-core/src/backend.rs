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
    /// GPUs through wgpu: Vulkan, Metal, DX12, or lavapipe on a CPU (feature `wgpu`), with
    /// burn's kernel fusion and autotuning.
    Wgpu,
    /// NVIDIA GPUs through CUDA (feature `cuda`), with burn's kernel fusion and autotuning.
    Cuda,
}

impl Backend {
    /// All backends, compiled in or not.
    pub const ALL: [Backend; 4] = [
        Backend::Flex,
        Backend::Ndarray,
        Backend::Wgpu,
        Backend::Cuda,
    ];

    /// The backend's name as the CLI spells it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Flex => "flex",
            Self::Ndarray => "ndarray",
            Self::Wgpu => "wgpu",
            Self::Cuda => "cuda",
        }
    }

    /// Whether the backend computes on a GPU (wgpu may run on lavapipe, a CPU driver: its
    /// memory is still not the process's own to measure).
    pub fn is_gpu(&self) -> bool {
        matches!(self, Self::Wgpu | Self::Cuda)
    }

    /// Whether this build includes the backend.
    pub fn is_compiled(&self) -> bool {
        match self {
            Self::Flex => cfg!(feature = "flex"),
            Self::Ndarray => cfg!(feature = "ndarray"),
            Self::Wgpu => cfg!(feature = "wgpu"),
            Self::Cuda => cfg!(feature = "cuda"),
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
    /// the GPU backends) when no device can be started, naming what was tried.
    pub fn device(&self) -> Result<Device> {
        match self {
            #[cfg(feature = "flex")]
            Self::Flex => Ok(Device::flex()),
            #[cfg(feature = "ndarray")]
            #[allow(deprecated)]
            // burn keeps ndarray working; we offer it for comparison
            Self::Ndarray => Ok(Device::ndarray()),
            #[cfg(feature = "wgpu")]
            Self::Wgpu => probe(
                self,
                Device::wgpu(burn::tensor::DeviceKind::DefaultDevice),
                "wgpu's default adapter (Vulkan, Metal or DX12) could not be started; install \
                 a GPU driver, or mesa-vulkan-drivers for a Vulkan device on the CPU",
            ),
            #[cfg(feature = "cuda")]
            Self::Cuda => probe(
                self,
                Device::cuda(0),
                "CUDA device 0 could not be started; install the NVIDIA driver (libcuda), check \
                 that CUDA_VISIBLE_DEVICES shows a GPU, or use wgpu or flex",
            ),
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

impl Backend {
    /// The devices numbered `indices` for data-parallel training (`--devices 0,1`): GPU `i`
    /// of a GPU backend (wgpu's `i`-th discrete GPU, CUDA device `i`), each started through
    /// the same probe as [`device`](Self::device). One index gives the backend's usual device
    /// when it is 0.
    ///
    /// # Errors
    /// [`GenError::InvalidConfig`] for no index, an index given twice, or more than one device
    /// of a CPU backend (flex and ndarray are one device that already uses every core);
    /// [`GenError::BackendUnavailable`] naming the device that did not start.
    pub fn devices(&self, indices: &[usize]) -> Result<Vec<Device>> {
        if indices.is_empty() {
            return Err(GenError::InvalidConfig("no device index given".into()));
        }
        if let Some(twice) = indices
            .iter()
            .enumerate()
            .find(|(i, index)| indices[..*i].contains(index))
        {
            return Err(GenError::InvalidConfig(format!(
                "device {} is given twice",
                twice.1
            )));
        }
        if indices == [0] {
            return Ok(vec![self.device()?]);
        }
        if !self.is_gpu() {
            return Err(GenError::InvalidConfig(format!(
                "{self} is one CPU device that already uses every core; data-parallel training \
                 over devices {indices:?} needs a GPU backend (--backend wgpu or cuda)"
            )));
        }
        indices.iter().map(|&i| self.numbered_device(i)).collect()
    }

    /// GPU `index` of a GPU backend, probed.
    fn numbered_device(&self, index: usize) -> Result<Device> {
        match self {
            #[cfg(feature = "wgpu")]
            Self::Wgpu => probe(
                self,
                Device::wgpu(burn::tensor::DeviceKind::DiscreteGpu(index)),
                &format!("wgpu's discrete GPU {index} could not be started"),
            ),
            #[cfg(feature = "cuda")]
            Self::Cuda => probe(
                self,
                Device::cuda(index),
                &format!("CUDA device {index} could not be started"),
            ),
            _ => {
                let _ = index;
                self.device()
            }
        }
    }
}

/// `device` if a one-value tensor round-trips through it. GPU runtimes start lazily and panic
/// when they cannot (no adapter, no device): the first operation is made here, and its panic
/// becomes a [`GenError::BackendUnavailable`] saying what was tried.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn probe(backend: &Backend, device: Device, tried: &str) -> Result<Device> {
    let probe = std::panic::catch_unwind(|| {
        burn::tensor::Tensor::<1>::ones([1], &device).into_scalar::<f32>()
    });
    match probe {
        Ok(value) if (value - 1.0).abs() < f32::EPSILON => Ok(device),
        Ok(value) => Err(GenError::BackendUnavailable {
            name: backend.name().into(),
            reason: format!("{tried}: a test tensor of ones read back as {value}"),
        }),
        Err(_) => Err(GenError::BackendUnavailable {
            name: backend.name().into(),
            reason: tried.into(),
        }),
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
            "cuda" => Ok(Self::Cuda),
            other => Err(GenError::BackendUnavailable {
                name: other.into(),
                reason: "unknown backend; choose flex, ndarray, wgpu or cuda".into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_backend_parses_by_its_name_and_others_are_typed_errors() {
        for backend in Backend::ALL {
            assert_eq!(backend.name().parse::<Backend>().unwrap(), backend);
            assert_eq!(
                backend
                    .to_string()
                    .to_uppercase()
                    .parse::<Backend>()
                    .unwrap(),
                backend
            );
        }
        let err = "tpu".parse::<Backend>().unwrap_err();
        assert!(
            matches!(&err, GenError::BackendUnavailable { name, reason }
                if name == "tpu" && reason.contains("flex, ndarray, wgpu or cuda")),
            "{err}"
        );
        assert!(Backend::Wgpu.is_gpu() && Backend::Cuda.is_gpu());
        assert!(!Backend::Flex.is_gpu() && !Backend::Ndarray.is_gpu());
    }

    #[test]
    fn data_parallel_devices_are_distinct_gpus() {
        let flex = Backend::Flex.devices(&[0]).unwrap();
        assert_eq!(flex, vec![Backend::Flex.device().unwrap()]);
        for (indices, expected) in [
            (&[][..], "no device index"),
            (&[0, 0][..], "device 0 is given twice"),
            (&[0, 1][..], "needs a GPU backend"),
        ] {
            let err = Backend::Flex.devices(indices).unwrap_err();
            assert!(
                matches!(&err, GenError::InvalidConfig(m) if m.contains(expected)),
                "{indices:?}: {err}"
            );
        }
        // No machine that runs these tests has 1,000 GPUs; the error names the device.
        for backend in Backend::compiled().into_iter().filter(Backend::is_gpu) {
            let err = backend.devices(&[0, 999]).unwrap_err();
            assert!(
                matches!(&err, GenError::BackendUnavailable { name, .. } if name == backend.name()),
                "{err}"
            );
        }
    }

    #[test]
    fn a_backend_left_out_of_the_build_names_its_feature() {
        for backend in Backend::ALL.into_iter().filter(|b| !b.is_compiled()) {
            let err = backend.device().unwrap_err();
            assert!(
                matches!(&err, GenError::BackendUnavailable { name, reason }
                    if name == backend.name()
                        && reason.contains(&format!("feature `{}`", backend.name()))),
                "{err}"
            );
        }
    }

    #[test]
    fn a_compiled_backend_gives_a_working_device_or_a_typed_error() {
        for backend in Backend::compiled() {
            match backend.device() {
                Ok(device) => {
                    let two = burn::tensor::Tensor::<1>::ones([2], &device).sum();
                    assert_eq!(two.into_scalar::<f32>(), 2.0, "{backend}");
                }
                // A GPU backend on a machine without its device (no panic reaches here).
                Err(GenError::BackendUnavailable { name, .. }) => {
                    assert!(backend.is_gpu() && name == backend.name())
                }
                Err(other) => panic!("{backend}: {other}"),
            }
        }
    }
}
