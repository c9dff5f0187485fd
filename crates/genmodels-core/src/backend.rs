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
