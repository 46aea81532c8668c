//! Checks a plugin library passes before it is loaded. It lies in the plugin directory, and a
//! symbolic link may not lead out of it. It and the directory are owned by the gateway's user
//! (or root) and not writable by group or others. Its SHA-256 matches the configured pin.
//!
//! The checks read the file through one open descriptor. On Linux the library is then loaded
//! through `/proc/self/fd/N` of that descriptor, so the bytes that were hashed are the bytes
//! that are loaded, even if someone replaces the file in between. That descriptor stays
//! open for the life of the process: the dynamic loader remembers a library by the name it was
//! opened with, so a reused descriptor number would make it return the earlier library.

use std::fs::{File, Metadata};
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// A library that passed every check, ready to load.
#[derive(Debug)]
pub struct VerifiedLibrary {
    /// Path shown in messages: the directory joined with the configured file name.
    pub shown_path: PathBuf,
    /// SHA-256 of the file, lowercase hex.
    pub sha256: String,
    canonical: PathBuf,
    file: File,
}

impl VerifiedLibrary {
    /// Returns the path to pass to the dynamic loader: `/proc/self/fd/N` of the checked
    /// descriptor, which is kept open for the life of the process, or the resolved path where
    /// `/proc` is not mounted.
    pub fn into_load_path(self) -> PathBuf {
        use std::os::fd::{AsRawFd, IntoRawFd};

        let path = PathBuf::from(format!("/proc/self/fd/{}", self.file.as_raw_fd()));
        if !path.exists() {
            return self.canonical;
        }
        // Never closed on purpose: see the module documentation.
        let _ = self.file.into_raw_fd();
        path
    }
}

/// A library that was not loaded, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("plugin library {} was not loaded: {reason}", path.display())]
pub struct Refusal {
    /// Library file.
    pub path: PathBuf,
    /// Problem and its fix.
    pub reason: String,
}

impl Refusal {
    /// Creates a refusal of `path`.
    pub fn new(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// Returns the effective user id of this process.
fn effective_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Checks owner and mode bits of a file or directory.
fn check_owner_and_mode(what: &str, path: &Path, metadata: &Metadata) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;

    let uid = effective_uid();
    if metadata.uid() != uid && metadata.uid() != 0 {
        return Err(format!(
            "{what} {} is owned by uid {}, not by the gateway's user (uid {uid}) or root; run \
             `chown {uid} {}`",
            path.display(),
            metadata.uid(),
            path.display()
        ));
    }
    let mode = metadata.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(format!(
            "{what} {} is writable by group or others (mode {mode:04o}), so another user could \
             replace it; run `chmod go-w {}`",
            path.display(),
            path.display()
        ));
    }
    Ok(())
}

/// Checks the plugin directory itself.
///
/// # Errors
/// Returns a refusal naming the directory when it cannot be read, is not a directory, or is
/// writable by other users.
pub fn check_directory(directory: &Path) -> Result<PathBuf, Refusal> {
    let refuse = |reason: String| Refusal::new(directory, reason);
    let canonical = directory.canonicalize().map_err(|error| {
        refuse(format!(
            "the plugin directory cannot be read ({error}); create it or fix plugins.directory"
        ))
    })?;
    let metadata = std::fs::metadata(&canonical)
        .map_err(|error| refuse(format!("the plugin directory cannot be read ({error})")))?;
    if !metadata.is_dir() {
        return Err(refuse("plugins.directory is not a directory".into()));
    }
    check_owner_and_mode("the plugin directory", &canonical, &metadata).map_err(refuse)?;
    Ok(canonical)
}

/// Runs every check on `file` inside `directory` and opens it for loading.
///
/// # Errors
/// Returns a [`Refusal`] naming the file and the reason: missing, a symbolic link that leaves
/// the directory, not a regular file, wrong owner, writable by others, or a SHA-256 that does
/// not match `pin`.
pub fn verify(directory: &Path, file: &str, pin: Option<&str>) -> Result<VerifiedLibrary, Refusal> {
    let shown_path = directory.join(file);
    let refuse = |reason: String| Refusal::new(&shown_path, reason);
    let canonical_directory = check_directory(directory)?;

    let link = std::fs::symlink_metadata(&shown_path)
        .map_err(|error| refuse(format!("the file cannot be read ({error})")))?;
    let canonical = shown_path
        .canonicalize()
        .map_err(|error| refuse(format!("the file cannot be resolved ({error})")))?;
    if !canonical.starts_with(&canonical_directory) {
        return Err(refuse(format!(
            "it is a symbolic link to {}, outside the plugin directory {}; copy the library \
             into the directory instead of linking to it",
            canonical.display(),
            canonical_directory.display()
        )));
    }
    if link.file_type().is_symlink() {
        tracing::debug!(file, target = %canonical.display(), "Plugin library is a link inside the plugin directory.");
    }

    let mut handle = File::open(&canonical)
        .map_err(|error| refuse(format!("the file cannot be opened ({error})")))?;
    let metadata = handle
        .metadata()
        .map_err(|error| refuse(format!("the file cannot be read ({error})")))?;
    if !metadata.is_file() {
        return Err(refuse("it is not a regular file".into()));
    }
    check_owner_and_mode("the file", &canonical, &metadata).map_err(refuse)?;

    let sha256 =
        hash(&mut handle).map_err(|error| refuse(format!("reading the file failed ({error})")))?;
    if let Some(pin) = pin {
        if !sha256.eq_ignore_ascii_case(pin) {
            return Err(refuse(format!(
                "its SHA-256 is {sha256}, but plugins.libraries[{file:?}].sha256 pins {pin}; if \
                 the new build is intended, put the output of `sha256sum {}` in the pin",
                shown_path.display()
            )));
        }
    }
    Ok(VerifiedLibrary {
        shown_path,
        sha256,
        canonical,
        file: handle,
    })
}

/// Returns the SHA-256 of everything readable from `file`, as lowercase hex.
pub fn hash(file: &mut File) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn directory() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temporary directory");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        dir
    }

    fn write(dir: &Path, name: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, b"not really a library").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        path
    }

    #[test]
    fn plain_file_passes() {
        let dir = directory();
        write(dir.path(), "libok.so", 0o644);
        let verified = verify(dir.path(), "libok.so", None).expect("passes");
        assert_eq!(verified.sha256.len(), 64);
        assert_eq!(verified.shown_path, dir.path().join("libok.so"));
    }

    #[test]
    fn matching_pin_passes() {
        let dir = directory();
        let path = write(dir.path(), "libok.so", 0o644);
        let digest = hash(&mut File::open(path).expect("open")).expect("hash");
        let upper = digest.to_ascii_uppercase();
        assert!(verify(dir.path(), "libok.so", Some(&upper)).is_ok());
    }

    #[test]
    fn wrong_pin_is_refused() {
        let dir = directory();
        write(dir.path(), "libok.so", 0o644);
        let refusal = verify(dir.path(), "libok.so", Some(&"0".repeat(64))).expect_err("refused");
        assert!(refusal.reason.contains("SHA-256"), "{}", refusal.reason);
        assert!(refusal.to_string().contains("libok.so"), "{refusal}");
    }

    #[test]
    fn group_writable_is_refused() {
        let dir = directory();
        write(dir.path(), "libloose.so", 0o664);
        let refusal = verify(dir.path(), "libloose.so", None).expect_err("refused");
        assert!(refusal.reason.contains("chmod go-w"), "{}", refusal.reason);
    }

    #[test]
    fn writable_directory_is_refused() {
        let dir = directory();
        write(dir.path(), "libok.so", 0o644);
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
            .expect("chmod");
        let refusal = verify(dir.path(), "libok.so", None).expect_err("refused");
        assert!(
            refusal.reason.contains("plugin directory"),
            "{}",
            refusal.reason
        );
    }

    #[test]
    fn link_leaving_directory_is_refused() {
        let outside = directory();
        let target = write(outside.path(), "libevil.so", 0o644);
        let dir = directory();
        std::os::unix::fs::symlink(&target, dir.path().join("libevil.so")).expect("symlink");
        let refusal = verify(dir.path(), "libevil.so", None).expect_err("refused");
        assert!(
            refusal.reason.contains("outside the plugin directory"),
            "{}",
            refusal.reason
        );
    }

    #[test]
    fn link_inside_directory_passes() {
        let dir = directory();
        write(dir.path(), "libportal-1.2.so", 0o644);
        std::os::unix::fs::symlink("libportal-1.2.so", dir.path().join("libportal.so"))
            .expect("symlink");
        assert!(verify(dir.path(), "libportal.so", None).is_ok());
    }

    #[test]
    fn missing_file_is_refused() {
        let dir = directory();
        let refusal = verify(dir.path(), "libnone.so", None).expect_err("refused");
        assert!(
            refusal.reason.contains("cannot be read"),
            "{}",
            refusal.reason
        );
    }

    #[test]
    fn foreign_owner_is_refused() {
        let dir = directory();
        let path = write(dir.path(), "libforeign.so", 0o644);
        // Only root can give a file away; as another user this case cannot be set up.
        if std::os::unix::fs::chown(&path, Some(65534), Some(65534)).is_err() {
            eprintln!("skipped: chown needs root");
            return;
        }
        let refusal = verify(dir.path(), "libforeign.so", None).expect_err("refused");
        assert!(
            refusal.reason.contains("owned by uid 65534"),
            "{}",
            refusal.reason
        );
    }
}
