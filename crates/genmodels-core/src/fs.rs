//! Crash-safe file writes, and a lock that keeps two processes out of one folder.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{GenError, Result};

/// Writes `bytes` to `path` atomically: a temporary file in the same directory is written,
/// flushed to disk and renamed over `path`. A crash at any point leaves either the old file
/// or the new one, never a torn mix.
///
/// # Errors
/// [`GenError::Io`] naming the path that failed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    // Through a symbolic link, replace the file it points to and keep the link (renaming over
    // the link would replace it with a plain file).
    let resolved;
    let path = match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            let target = fs::read_link(path).map_err(|e| GenError::io(path, e))?;
            resolved = path.parent().unwrap_or(Path::new("")).join(target);
            resolved.as_path()
        }
        _ => path,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| GenError::io(dir, e))?;
    let file_name = path
        .file_name()
        .ok_or_else(|| GenError::io(path, std::io::Error::other("path has no file name")))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        // Persist the rename itself; not every platform can open a directory, so best effort.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        GenError::io(path, e)
    })
}

/// Whether `name` is a temporary file [`write_atomic`] leaves behind when its process is
/// killed between writing and renaming: `.NAME.tmp-PID`.
fn is_atomic_write_leftover(name: &str) -> bool {
    name.starts_with('.')
        && name.rsplit_once(".tmp-").is_some_and(|(stem, pid)| {
            stem.len() > 1 && !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit())
        })
}

/// An exclusive claim on a folder for as long as it lives: a second claim, from another
/// process or this one, is refused with [`GenError::FolderInUse`] naming the holder. The
/// operating system releases it when the holder exits, however it exits (a `kill -9`
/// included), so a stale lock never blocks a folder.
///
/// The claim is a lock on the file `.genmodels.lock` in the folder, which holds the holder's
/// description; the file stays behind, unlocked, when the claim ends.
#[derive(Debug)]
pub struct FolderLock {
    _file: File,
    folder: PathBuf,
}

impl FolderLock {
    /// The lock file's name inside the folder.
    pub const FILE: &'static str = ".genmodels.lock";

    /// Claims `folder` (created if missing) for `holder` (e.g. the command line), then
    /// removes the temporary files that writes killed halfway left in it: with the claim
    /// held, no other process is writing there.
    ///
    /// # Errors
    /// [`GenError::FolderInUse`] when another claim holds it; [`GenError::Io`] when the
    /// folder or its lock file cannot be created.
    pub fn acquire(folder: &Path, holder: &str) -> Result<Self> {
        fs::create_dir_all(folder).map_err(|e| GenError::io(folder, e))?;
        let path = folder.join(Self::FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| GenError::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = fs::read_to_string(&path).unwrap_or_default();
                return Err(GenError::FolderInUse {
                    path: folder.to_path_buf(),
                    holder: holder.trim().to_string(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(GenError::io(&path, e)),
        }
        let description = format!("process {}: {holder}", std::process::id());
        file.set_len(0)
            .and_then(|()| file.write_all(description.as_bytes()))
            .map_err(|e| GenError::io(&path, e))?;
        if let Ok(entries) = fs::read_dir(folder) {
            for entry in entries.flatten() {
                if is_atomic_write_leftover(&entry.file_name().to_string_lossy()) {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        Ok(Self {
            _file: file,
            folder: folder.to_path_buf(),
        })
    }

    /// The folder it holds.
    pub fn folder(&self) -> &Path {
        &self.folder
    }
}

/// Serialises `value` as pretty JSON and writes it atomically.
///
/// # Errors
/// [`GenError::Io`] on write failure.
pub fn write_json_atomic<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| GenError::Json {
        path: path.into(),
        error: e,
    })?;
    write_atomic(path, text.as_bytes())
}

/// Reads and parses a JSON file.
///
/// # Errors
/// [`GenError::Io`] when unreadable, [`GenError::Json`] when it does not parse as `T`.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = fs::read_to_string(path).map_err(|e| GenError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| GenError::Json {
        path: path.into(),
        error: e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_content_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.bin");
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn a_folder_lock_refuses_a_second_holder_until_released_and_clears_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("run");
        fs::create_dir(&folder).unwrap();
        let leftover = folder.join(".weights-00000010.bpk.tmp-4242");
        let kept = [".hidden", "notes.tmp-12", ".a.tmp-", "weights-00000010.bpk"];
        fs::write(&leftover, b"torn").unwrap();
        for name in kept {
            fs::write(folder.join(name), b"mine").unwrap();
        }
        let first = FolderLock::acquire(&folder, "train vae").unwrap();
        assert!(
            !leftover.exists(),
            "a killed write's temporary file is removed"
        );
        for name in kept {
            assert_eq!(
                fs::read(folder.join(name)).unwrap(),
                b"mine",
                "{name} is kept"
            );
        }
        match FolderLock::acquire(&folder, "train ae") {
            Err(GenError::FolderInUse { path, holder }) => {
                assert_eq!(path, folder);
                assert!(holder.contains("train vae"), "{holder}");
                assert!(holder.contains(&std::process::id().to_string()), "{holder}");
            }
            other => panic!("expected the folder to be in use, got {other:?}"),
        }
        drop(first);
        let again = FolderLock::acquire(&folder, "train ae").unwrap();
        assert_eq!(again.folder(), folder);
    }

    #[cfg(unix)]
    #[test]
    fn writing_through_a_symbolic_link_replaces_its_target_and_keeps_the_link() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("kept").join("samples.png");
        fs::create_dir(target.parent().unwrap()).unwrap();
        fs::write(&target, b"old").unwrap();
        let link = dir.path().join("link.png");
        std::os::unix::fs::symlink("kept/samples.png", &link).unwrap();
        write_atomic(&link, b"new").unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read(&target).unwrap(), b"new");
    }

    #[test]
    fn failed_write_keeps_the_previous_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keep.bin");
        write_atomic(&path, b"good").unwrap();
        // A directory where the temporary file should go makes the write fail.
        let blocker = dir
            .path()
            .join(format!(".keep.bin.tmp-{}", std::process::id()));
        fs::create_dir(&blocker).unwrap();
        assert!(write_atomic(&path, b"bad").is_err());
        assert_eq!(fs::read(&path).unwrap(), b"good");
    }
}
