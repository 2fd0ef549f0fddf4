//! Reading a file that configuration names, without ever hanging on it.
//!
//! A path from the environment or a config file may name a FIFO, a terminal or
//! another device, where a plain `open` + `read` blocks without bound (or has side
//! effects). [`read`] looks before it opens: only a regular file is opened, with
//! `O_NONBLOCK | O_CLOEXEC`, checked again on the open descriptor (`fstat`, so a
//! file swapped in between is caught), capped in size, and only then read.
//! [`Require`] adds the checks for files whose owner matters (caches, files another
//! user could plant).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Conditions a file must meet on top of being a regular file no larger than the cap.
#[derive(Clone, Copy, Debug, Default)]
pub struct Require {
    /// Refuse a symlink as the last component of the path (`O_NOFOLLOW`).
    pub no_symlink: bool,
    /// Require the file to belong to the effective uid.
    pub owned_by_us: bool,
    /// Permission bits that must all be clear, e.g. `0o022` (nobody else may
    /// write) or `0o077` (nobody else may read or write).
    pub clear_mode_bits: u32,
}

impl Require {
    /// A file that only this user controls: no symlink, ours, not writable by
    /// group or others.
    pub const OURS: Require = Require {
        no_symlink: true,
        owned_by_us: true,
        clear_mode_bits: 0o022,
    };
    /// A private file: no symlink, ours, no group or other bits at all.
    pub const PRIVATE: Require = Require {
        no_symlink: true,
        owned_by_us: true,
        clear_mode_bits: 0o077,
    };
}

/// Why a file was not read. Displays as a phrase that completes "`<path>` …",
/// e.g. "is a FIFO (named pipe), not a regular file".
#[derive(Debug)]
pub enum ReadError {
    /// Opening or reading failed (e.g. `NotFound`, `PermissionDenied`).
    Io(io::Error),
    /// The path names something other than a regular file; the text says what,
    /// e.g. `a FIFO (named pipe)`.
    NotRegular(&'static str),
    /// The last component is a symlink, and [`Require::no_symlink`] was asked for.
    Symlink,
    /// The file belongs to another user (this uid).
    OtherOwner(u32),
    /// The file has some of [`Require::clear_mode_bits`] set (its permission bits).
    Mode(u32),
    /// The file is larger than the cap.
    TooLarge,
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "cannot be read ({e})"),
            ReadError::NotRegular(kind) => write!(f, "is {kind}, not a regular file"),
            ReadError::Symlink => f.write_str("is a symlink"),
            ReadError::OtherOwner(uid) => write!(f, "belongs to another user (uid {uid})"),
            ReadError::Mode(mode) => write!(f, "is open to other users (permissions {mode:04o})"),
            ReadError::TooLarge => f.write_str("is too large"),
        }
    }
}

/// The effective uid of this process.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// What is wrong with an existing directory that is to hold our files (a cache,
/// the credential store), as a phrase completing "`<dir>` …"; `None` when it is
/// fine: a directory (`meta` may come from following a symlink) that belongs to
/// the effective uid and that neither group nor others can write to. Such a
/// directory is never chmod'ed into shape: it may be `$HOME` or `/tmp`.
pub fn dir_problem(meta: &fs::Metadata) -> Option<String> {
    if !meta.is_dir() {
        Some("is not a directory".to_owned())
    } else if meta.uid() != euid() {
        Some(format!("belongs to another user (uid {})", meta.uid()))
    } else if meta.mode() & 0o022 != 0 {
        Some(format!(
            "is writable by other users (permissions {:04o})",
            meta.mode() & 0o7777
        ))
    } else {
        None
    }
}

/// What a non-regular file is, in words.
fn kind_of(t: fs::FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_symlink() {
        "a symlink"
    } else {
        "not a file"
    }
}

/// Checks `meta` against `req`: a regular file, and whatever `req` asks for.
fn check(meta: &fs::Metadata, req: Require) -> Result<(), ReadError> {
    let t = meta.file_type();
    if t.is_symlink() {
        return Err(ReadError::Symlink);
    }
    if !t.is_file() {
        return Err(ReadError::NotRegular(kind_of(t)));
    }
    if req.owned_by_us && meta.uid() != euid() {
        return Err(ReadError::OtherOwner(meta.uid()));
    }
    if meta.mode() & req.clear_mode_bits != 0 {
        return Err(ReadError::Mode(meta.mode() & 0o7777));
    }
    Ok(())
}

/// Reads the regular file at `path`, at most `max` bytes, after the checks of
/// `req`; also returns its metadata (from the open descriptor). Never blocks on a
/// FIFO or a device: those are refused before they are opened.
pub fn read_with_metadata(
    path: &Path,
    max: u64,
    req: Require,
) -> Result<(Vec<u8>, fs::Metadata), ReadError> {
    let before = if req.no_symlink {
        fs::symlink_metadata(path)
    } else {
        fs::metadata(path)
    }
    .map_err(ReadError::Io)?;
    check(&before, req)?;
    let mut flags = libc::O_NONBLOCK | libc::O_CLOEXEC;
    if req.no_symlink {
        flags |= libc::O_NOFOLLOW;
    }
    let f: File = OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) if req.no_symlink => ReadError::Symlink,
            _ => ReadError::Io(e),
        })?;
    // The path may have been swapped between the look and the open.
    let meta = f.metadata().map_err(ReadError::Io)?;
    check(&meta, req)?;
    if meta.len() > max {
        return Err(ReadError::TooLarge);
    }
    let mut buf = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    // A file that grows while being read still stops one byte past the cap.
    f.take(max.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(ReadError::Io)?;
    if buf.len() as u64 > max {
        return Err(ReadError::TooLarge);
    }
    Ok((buf, meta))
}

/// [`read_with_metadata`] without the metadata.
pub fn read(path: &Path, max: u64, req: Require) -> Result<Vec<u8>, ReadError> {
    read_with_metadata(path, max, req).map(|(b, _)| b)
}

/// A directory named by the variable `var` when it is set to an absolute path;
/// else `default`. A relative path would depend on where docker happens to run
/// the helper, so it is named on stderr and the default is used instead.
pub fn dir_from_env(var: &str, default: impl FnOnce() -> Option<PathBuf>) -> Option<PathBuf> {
    match std::env::var_os(var) {
        Some(d) if !d.is_empty() => {
            let p = PathBuf::from(&d);
            if p.is_absolute() {
                return Some(p);
            }
            let fallback = default();
            eprintln!(
                "docker-credential-gar: warning: {var}={} is a relative path, which would depend on where docker runs the helper; using {} (set an absolute path)",
                crate::http::sanitize(&d.to_string_lossy()),
                fallback
                    .as_ref()
                    .map_or("nothing".to_owned(), |f| f.display().to_string())
            );
            fallback
        }
        _ => default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::time::{Duration, Instant};

    fn mkfifo(p: &Path) {
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: c is a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }

    #[test]
    fn a_fifo_is_refused_at_once_without_a_writer() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("fifo");
        mkfifo(&p);
        let started = Instant::now();
        let e = read(&p, 1024, Require::default()).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(
            matches!(e, ReadError::NotRegular("a FIFO (named pipe)")),
            "{e:?}"
        );
        assert_eq!(e.to_string(), "is a FIFO (named pipe), not a regular file");
        // Through a symlink too (when symlinks are allowed).
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        assert!(matches!(
            read(&link, 1024, Require::default()),
            Err(ReadError::NotRegular(_))
        ));
    }

    #[test]
    fn directories_and_devices_are_not_regular_files() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(matches!(
            read(tmp.path(), 1024, Require::default()),
            Err(ReadError::NotRegular("a directory"))
        ));
        assert!(matches!(
            read(Path::new("/dev/null"), 1024, Require::default()),
            Err(ReadError::NotRegular("a character device"))
        ));
    }

    #[test]
    fn size_cap_and_contents() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("f");
        fs::write(&p, b"12345").unwrap();
        assert_eq!(read(&p, 5, Require::default()).unwrap(), b"12345");
        assert!(matches!(
            read(&p, 4, Require::default()),
            Err(ReadError::TooLarge)
        ));
        let missing = read(&tmp.path().join("none"), 5, Require::default()).unwrap_err();
        assert!(
            matches!(&missing, ReadError::Io(e) if e.kind() == io::ErrorKind::NotFound),
            "{missing:?}"
        );
    }

    #[test]
    fn ownership_mode_and_symlink_requirements() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("f");
        fs::write(&p, b"x").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(read(&p, 5, Require::OURS).unwrap(), b"x");
        assert!(matches!(
            read(&p, 5, Require::PRIVATE),
            Err(ReadError::Mode(0o644))
        ));
        fs::set_permissions(&p, fs::Permissions::from_mode(0o666)).unwrap();
        assert!(matches!(
            read(&p, 5, Require::OURS),
            Err(ReadError::Mode(0o666))
        ));
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        assert!(matches!(
            read(&link, 5, Require::OURS),
            Err(ReadError::Symlink)
        ));
        assert_eq!(read(&link, 5, Require::default()).unwrap(), b"x");
        if euid() == 0 {
            std::os::unix::fs::chown(&p, Some(65534), Some(65534)).unwrap();
            assert!(matches!(
                read(&p, 5, Require::OURS),
                Err(ReadError::OtherOwner(65534))
            ));
        }
    }
}
