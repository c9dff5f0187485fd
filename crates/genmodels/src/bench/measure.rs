//! Measuring throughput and memory: what `genmodels bench` and the criterion benches share.
//!
//! [`measure`] runs an operation a few times untimed (kernel compilation, allocator warm-up),
//! then times `repetitions` runs, waiting for the device to finish before the clock stops.
//! [`PeakMemory`] records the largest resident memory over a stretch of work.

use std::time::Instant;

use genmodels_core::burn::tensor::Device;
use serde::{Deserialize, Serialize};

use genmodels_core::error::{GenError, Result};

/// What one measurement found.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// Wall-clock seconds of all timed runs together.
    pub seconds: f64,
    /// Images processed per second over the timed runs.
    pub images_per_second: f64,
}

/// Runs `operation` `warm_up` times, then `repetitions` times timed, each run handling
/// `images_per_run` images, and waits for `device` after the timed runs.
///
/// # Errors
/// [`GenError::InvalidConfig`] for zero repetitions; the operation's own errors; backend
/// errors while waiting for the device.
pub fn measure(
    device: &Device,
    warm_up: usize,
    repetitions: usize,
    images_per_run: usize,
    mut operation: impl FnMut() -> Result<()> + Send,
) -> Result<Measurement> {
    if repetitions == 0 {
        return Err(GenError::InvalidConfig(
            "a measurement needs at least one timed repetition".into(),
        ));
    }
    let seconds = genmodels_kernels::on_compute_threads(device, || {
        for _ in 0..warm_up {
            operation()?;
        }
        sync(device)?;
        let started = Instant::now();
        for _ in 0..repetitions {
            operation()?;
        }
        sync(device)?;
        Ok::<f64, GenError>(started.elapsed().as_secs_f64())
    })?;
    Ok(Measurement {
        seconds,
        images_per_second: (repetitions * images_per_run) as f64 / seconds,
    })
}

/// Waits until `device` has finished every queued operation.
///
/// # Errors
/// [`GenError::Backend`] when the backend reports a failure.
pub fn sync(device: &Device) -> Result<()> {
    device
        .sync()
        .map_err(|e| GenError::Backend(format!("{e:?}")))
}

/// The peak memory of a stretch of work, above the memory in use at its start.
///
/// Where the process runs on [`genmodels_kernels::Allocator`] (the genmodels binaries), this is
/// the peak of live heap bytes, counted exactly by the allocator. Otherwise it is the peak
/// resident set from Linux's `/proc/self`: writing `5` to `clear_refs` resets the high-water
/// mark `VmHWM`, which then records the largest resident set until it is read (the PyTorch
/// reference in `benches/reference/` measures its side so). Resident memory misses growth that
/// reuses memory an allocator kept from earlier work, hence the counter where there is one.
#[derive(Debug, Clone, Copy)]
pub struct PeakMemory {
    start: Option<(Source, u64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    #[cfg(feature = "mimalloc")]
    HeapCounter,
    ResidentSet,
}

impl PeakMemory {
    /// Starts counting: resets the high-water mark and notes the memory in use now.
    pub fn start() -> Self {
        #[cfg(feature = "mimalloc")]
        if genmodels_kernels::allocator::is_installed() {
            genmodels_kernels::allocator::reset_peak();
            return Self {
                start: Some((
                    Source::HeapCounter,
                    genmodels_kernels::allocator::live_bytes() as u64,
                )),
            };
        }
        Self::resident_set()
    }

    /// Counts the resident set, whatever the allocator.
    fn resident_set() -> Self {
        let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
        Self {
            start: reset
                .then(|| status_kib("VmRSS:"))
                .flatten()
                .map(|kib| (Source::ResidentSet, kib * 1024)),
        }
    }

    /// The peak memory since [`start`](Self::start) above the memory in use then, in bytes;
    /// `None` where it cannot be measured.
    pub fn peak_above_start(&self) -> Option<u64> {
        let (source, start) = self.start?;
        let peak = match source {
            #[cfg(feature = "mimalloc")]
            Source::HeapCounter => genmodels_kernels::allocator::peak_live_bytes() as u64,
            Source::ResidentSet => status_kib("VmHWM:")? * 1024,
        };
        Some(peak.saturating_sub(start))
    }
}

/// A `kB` field of `/proc/self/status`.
fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with(field))?;
    line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Set in the child process that `peak_memory_sees_a_large_allocation_that_is_freed_again`
    /// starts to measure alone.
    const ALONE: &str = "GENMODELS_PEAK_MEMORY_TEST_ALONE";

    #[test]
    fn peak_memory_sees_a_large_allocation_that_is_freed_again() {
        // The resident high-water mark is one per process, and the bench tests running beside
        // this one reset it: the measurement runs in a child process that runs this test alone.
        if std::env::var_os(ALONE).is_none() {
            let name = module_path!()
                .split_once("::")
                .map_or(module_path!(), |(_, rest)| rest)
                .to_owned()
                + "::peak_memory_sees_a_large_allocation_that_is_freed_again";
            let child = std::process::Command::new(std::env::current_exe().unwrap())
                .args([name.as_str(), "--exact", "--test-threads=1", "--nocapture"])
                .env(ALONE, "1")
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&child.stdout);
            assert!(
                child.status.success() && stdout.contains("1 passed"),
                "the child measurement failed:\n{stdout}\n{}",
                String::from_utf8_lossy(&child.stderr)
            );
            return;
        }
        // The test binary's allocator is the system one: the resident set is what there is.
        let memory = PeakMemory::resident_set();
        if memory.start.is_none() {
            return; // not Linux: nothing to measure
        }
        // 256 MiB, touched so that it is resident, then dropped before the reading.
        let block = vec![1u8; 256 << 20];
        std::hint::black_box(&block);
        drop(block);
        let peak = memory.peak_above_start().unwrap();
        assert!(
            peak >= 200 << 20,
            "peak {peak} bytes misses a 256 MiB block"
        );
    }

    #[test]
    fn measure_counts_images_over_the_timed_runs_only() {
        let device = Device::default();
        let mut runs = 0;
        let measurement = measure(&device, 2, 3, 10, || {
            runs += 1;
            std::thread::sleep(std::time::Duration::from_millis(5));
            Ok(())
        })
        .unwrap();
        assert_eq!(runs, 5);
        assert!(measurement.seconds >= 0.015);
        let expected = 30.0 / measurement.seconds;
        assert!((measurement.images_per_second - expected).abs() < 1e-9);
        assert!(measure(&device, 0, 0, 1, || Ok(())).is_err());
    }
}
