//! File helpers: reading only regular files (a FIFO, device or folder is refused before a byte
//! is read), atomic writes (a crash never leaves half a file), and never overwriting user
//! files unless asked to.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

/// Largest text file easel reads whole: cards, CSVs, cost matrices, class lists (256 MiB).
pub const MAX_TEXT_BYTES: u64 = 256 << 20;

/// What a path that is not a regular file is, in words.
fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        return "a folder";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    "not a regular file"
}

fn check_regular(path: &Path, meta: &std::fs::Metadata) -> Result<()> {
    if meta.is_file() { Ok(()) } else { Err(Error::NotAFile { path: path.to_path_buf(), what: kind_of(meta) }) }
}

/// Open `path` for reading if it is a regular file (symbolic links followed); a folder, FIFO,
/// device or socket is an error before anything is read, and opening never blocks. Returns
/// the file and its length.
pub fn open_regular(path: &Path) -> Result<(File, u64)> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    check_regular(path, &meta)?;
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        // a FIFO swapped in after the check must not block the open
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path).map_err(|e| Error::io(path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    check_regular(path, &meta)?;
    Ok((file, meta.len()))
}

/// The bytes of the regular file `path`, refused when it holds more than `max_bytes`.
pub fn read_regular(path: &Path, max_bytes: u64) -> Result<Vec<u8>> {
    let (file, len) = open_regular(path)?;
    if len > max_bytes {
        return Err(Error::TooLarge { path: path.to_path_buf(), bytes: len, limit: max_bytes });
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(max_bytes + 1).read_to_end(&mut bytes).map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > max_bytes {
        return Err(Error::TooLarge { path: path.to_path_buf(), bytes: bytes.len() as u64, limit: max_bytes });
    }
    Ok(bytes)
}

/// The UTF-8 text of the regular file `path` (at most [`MAX_TEXT_BYTES`]).
pub fn read_text(path: &Path) -> Result<String> {
    let bytes = read_regular(path, MAX_TEXT_BYTES)?;
    String::from_utf8(bytes).map_err(|e| Error::Parse {
        path: path.to_path_buf(),
        line: 0,
        reason: format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
    })
}

/// Write `bytes` to `path` through a temporary file in the same folder and a rename, so a
/// reader sees the old file or the new one, never a torn one. Replaces `path`: for user
/// files use [`write_file`], which refuses without `force`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = parent_of(path);
    std::fs::create_dir_all(dir).map_err(|e| Error::write(dir, e))?;
    let tmp = stage_file(dir, bytes).map_err(|e| Error::write(path, e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::write(path, e)
    })
}

fn parent_of(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// A hidden temporary file in `dir` holding `bytes`, synced to disk.
fn stage_file(dir: &Path, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let tmp = dir.join(format!(".easel-new-{}-{}.tmp", std::process::id(), unique()));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(tmp)
}

/// `path` if nothing is there, else `stem-2.ext`, `stem-3.ext`, ...: a user's file is never
/// overwritten by an export.
pub fn unused_path(path: &Path) -> PathBuf {
    if !path.exists() {
        return path.to_path_buf();
    }
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let ext = path.extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default();
    (2..).map(|i| path.with_file_name(format!("{stem}-{i}{ext}"))).find(|p| !p.exists()).expect("an unused name exists")
}

/// Create `dir` (and parents) with a clear error.
pub fn ensure_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::write(dir, e))
}

/// Write `bytes` to `path` if nothing is there, else to `stem-2.ext`, `stem-3.ext`, ...; the
/// file appears whole (temporary file, then a hard link that fails rather than replace).
/// Returns the path written.
pub fn write_new(path: &Path, bytes: &[u8]) -> Result<PathBuf> {
    let dir = parent_of(path);
    std::fs::create_dir_all(dir).map_err(|e| Error::write(dir, e))?;
    let tmp = stage_file(dir, bytes).map_err(|e| Error::write(path, e))?;
    let mut target = path.to_path_buf();
    let result = loop {
        match link_new(&tmp, &target) {
            Ok(()) => break Ok(target),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => target = unused_path(path),
            Err(e) => break Err(Error::write(&target, e)),
        }
    };
    let _ = std::fs::remove_file(&tmp);
    result
}

/// Put the staged file `tmp` at `target` unless something is there: a hard link (which fails
/// rather than replace), or where the file system has no hard links, a rename after a look.
fn link_new(tmp: &Path, target: &Path) -> std::io::Result<()> {
    match std::fs::hard_link(tmp, target) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists && std::fs::symlink_metadata(target).is_err() => {
            let copy = tmp.with_extension("link");
            std::fs::copy(tmp, &copy)?;
            if std::fs::symlink_metadata(target).is_ok() {
                let _ = std::fs::remove_file(&copy);
                return Err(std::io::Error::from(std::io::ErrorKind::AlreadyExists));
            }
            std::fs::rename(&copy, target)
        }
        other => other,
    }
}

/// One file that replaces nothing without `force`: it appears whole, and without `force` an
/// existing file at `path` is an error and nothing is written.
pub fn write_file(path: &Path, bytes: &[u8], force: bool) -> Result<PathBuf> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).ok_or_else(|| Error::invalid(format!("{}: not a file name", path.display())))?;
    let mut written = write_files(parent_of(path), &[(name, bytes.to_vec())], force)?;
    Ok(written.remove(0))
}

/// Write several files as one new folder: they go into a hidden temporary folder beside `dir`
/// first, which is then renamed to `dir` (or `dir-2`, ... if that exists). A crash leaves no
/// half-written folder under the real name. Returns the folder written.
pub fn write_folder_new(dir: &Path, files: &[(String, Vec<u8>)]) -> Result<PathBuf> {
    let tmp = staged_folder(dir, files)?;
    let mut target = dir.to_path_buf();
    for _ in 0..1000 {
        if std::fs::symlink_metadata(&target).is_ok() {
            target = unused_path(dir);
            continue;
        }
        // rename onto a missing name; an empty folder created meanwhile would be replaced, so
        // check once more right before
        match std::fs::rename(&tmp, &target) {
            Ok(()) => return Ok(target),
            Err(_) if target.exists() => target = unused_path(dir),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(Error::write(&target, e));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    Err(Error::invalid(format!("{}: no free name for the output folder", dir.display())))
}

/// A hidden folder beside `dir` holding `files` (names may have sub-folders), synced.
fn staged_folder(dir: &Path, files: &[(String, Vec<u8>)]) -> Result<PathBuf> {
    let parent = parent_of(dir);
    std::fs::create_dir_all(parent).map_err(|e| Error::write(parent, e))?;
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "out".into());
    let tmp = parent.join(format!(".{name}.easel-tmp-{}-{}", std::process::id(), unique()));
    std::fs::create_dir(&tmp).map_err(|e| Error::write(&tmp, e))?;
    let filled = files.iter().try_for_each(|(f, bytes)| {
        let p = tmp.join(f);
        let made = p.parent().map(std::fs::create_dir_all).unwrap_or(Ok(()));
        made.and_then(|_| std::fs::OpenOptions::new().write(true).create_new(true).open(&p))
            .and_then(|mut h| h.write_all(bytes).and_then(|_| h.sync_all()))
            .map_err(|e| Error::write(dir.join(f), e))
    });
    if let Err(e) = filled {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    Ok(tmp)
}

/// A file name inside an output folder: relative, without `..`.
fn check_names(dir: &Path, files: &[(String, Vec<u8>)]) -> Result<()> {
    for (f, _) in files {
        let p = Path::new(f);
        if f.is_empty() || !p.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(Error::invalid(format!("{}: '{f}' is not a file name inside the output folder", dir.display())));
        }
    }
    Ok(())
}

/// Write files into `dir` as one result. Without `force`, an existing file of the same name is
/// an error and nothing is written. A new `dir` appears whole (a temporary folder renamed into
/// place); an existing one has its contents swapped in one step where the system allows
/// (Linux), so a crash leaves the old result or the new one, never a mix. Other files in `dir`
/// stay as they are.
pub fn write_files(dir: &Path, files: &[(String, Vec<u8>)], force: bool) -> Result<Vec<PathBuf>> {
    check_names(dir, files)?;
    let paths: Vec<PathBuf> = files.iter().map(|(f, _)| dir.join(f)).collect();
    if !force && let Some(p) = paths.iter().find(|p| std::fs::symlink_metadata(p).is_ok()) {
        return Err(Error::invalid(format!("{} already exists; pass --force to replace it", p.display())));
    }
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let tmp = staged_folder(dir, files)?;
            if std::fs::rename(&tmp, dir).is_ok() {
                return Ok(paths);
            }
            // the folder appeared meanwhile: write into it
            let _ = std::fs::remove_dir_all(&tmp);
        }
        Err(e) => return Err(Error::write(dir, e)),
        Ok(m) if !m.is_dir() && !dir.is_dir() => return Err(Error::invalid(format!("{} is not a folder", dir.display()))),
        Ok(_) => {}
    }
    if force && let Some(()) = swap_contents(dir, files)? {
        return Ok(paths);
    }
    commit_each(dir, files, force)?;
    Ok(paths)
}

/// Stage every file in `dir`, then link (no `force`) or rename (`force`) each into place; a
/// link that finds a file there undoes the ones made before it.
fn commit_each(dir: &Path, files: &[(String, Vec<u8>)], force: bool) -> Result<()> {
    let mut staged = Vec::new();
    let cleanup = |staged: &[(PathBuf, PathBuf)]| {
        for (t, _) in staged {
            let _ = std::fs::remove_file(t);
        }
    };
    for (f, bytes) in files {
        let target = dir.join(f);
        let parent = parent_of(&target).to_path_buf();
        let tmp = std::fs::create_dir_all(&parent).and_then(|_| stage_file(&parent, bytes)).map_err(|e| {
            cleanup(&staged);
            Error::write(&target, e)
        })?;
        staged.push((tmp, target));
    }
    let mut linked: Vec<&Path> = Vec::new();
    for (tmp, target) in &staged {
        let done = if force { std::fs::rename(tmp, target) } else { link_new(tmp, target) };
        if let Err(e) = done {
            if !force {
                for p in &linked {
                    let _ = std::fs::remove_file(p);
                }
            }
            cleanup(&staged);
            return Err(if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::invalid(format!("{} already exists; pass --force to replace it", target.display()))
            } else {
                Error::write(target, e)
            });
        }
        linked.push(target);
    }
    cleanup(&staged);
    Ok(())
}

/// Replace `files` in the existing folder `dir` in one step: a sibling folder gets the new
/// files plus hard links to every other file of `dir`, and the two folders are exchanged
/// atomically. `None` where that cannot be done (not Linux, sub-folders, special files, a
/// file system without hard links or exchange): the caller then commits file by file.
fn swap_contents(dir: &Path, files: &[(String, Vec<u8>)]) -> Result<Option<()>> {
    #[cfg(target_os = "linux")]
    {
        let is_link = std::fs::symlink_metadata(dir).map(|m| m.file_type().is_symlink()).unwrap_or(true);
        if is_link || files.iter().any(|(f, _)| f.contains('/')) {
            return Ok(None);
        }
        let Ok(entries) = std::fs::read_dir(dir) else { return Ok(None) };
        let mut others = Vec::new();
        for e in entries {
            let Ok(e) = e else { return Ok(None) };
            let name = e.file_name();
            if files.iter().any(|(f, _)| std::ffi::OsStr::new(f) == name.as_os_str()) {
                continue;
            }
            match e.file_type() {
                Ok(t) if t.is_file() || t.is_symlink() => others.push((name, t.is_symlink())),
                _ => return Ok(None),
            }
        }
        let tmp = staged_folder(dir, files)?;
        let linked = others.iter().try_for_each(|(name, is_link)| {
            let (from, to) = (dir.join(name), tmp.join(name));
            if *is_link { std::fs::read_link(&from).and_then(|t| std::os::unix::fs::symlink(t, &to)) } else { std::fs::hard_link(&from, &to) }
        });
        let perms = std::fs::metadata(dir).map(|m| m.permissions());
        if linked.is_err() || perms.and_then(|p| std::fs::set_permissions(&tmp, p)).is_err() || exchange(&tmp, dir).is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
            return Ok(None);
        }
        // `tmp` now holds the old contents: drop what was replaced or linked; a file that
        // appeared in the old folder meanwhile goes back, and anything else stays put
        for (f, _) in files {
            let _ = std::fs::remove_file(tmp.join(f));
        }
        for (name, _) in &others {
            let _ = std::fs::remove_file(tmp.join(name));
        }
        if let Ok(rest) = std::fs::read_dir(&tmp) {
            for e in rest.flatten() {
                let back = dir.join(e.file_name());
                if std::fs::symlink_metadata(&back).is_err() {
                    let _ = std::fs::rename(e.path(), back);
                }
            }
        }
        let _ = std::fs::remove_dir(&tmp);
        Ok(Some(()))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (dir, files);
        Ok(None)
    }
}

/// Swap two paths atomically (`renameat2` with `RENAME_EXCHANGE`).
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput));
    let (a, b) = (c(a)?, c(b)?);
    // SAFETY: both are valid NUL-terminated paths that live across the call.
    let rc = unsafe { libc::renameat2(libc::AT_FDCWD, a.as_ptr(), libc::AT_FDCWD, b.as_ptr(), libc::RENAME_EXCHANGE) };
    if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos() as u64).unwrap_or(0);
    (N.fetch_add(1, Ordering::Relaxed) << 32) ^ t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("easel-fsutil-{name}-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn folders_and_fifos_are_refused_before_reading() {
        let d = scratch("kinds");
        let e = read_regular(&d, 10).unwrap_err().to_string();
        assert!(e.contains("a folder"), "{e}");
        #[cfg(unix)]
        {
            let fifo = d.join("pipe");
            let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
            // SAFETY: a valid path.
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
            let e = read_regular(&fifo, 10).unwrap_err().to_string();
            assert!(e.contains("FIFO"), "{e}");
            let e = read_regular(Path::new("/dev/zero"), 10).unwrap_err().to_string();
            assert!(e.contains("device"), "{e}");
        }
        std::fs::write(d.join("big"), [0u8; 11]).unwrap();
        assert!(read_regular(&d.join("big"), 10).unwrap_err().to_string().contains("11 bytes"));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn write_files_replaces_nothing_without_force_and_keeps_other_files() {
        let d = scratch("files");
        let out = d.join("out");
        let one = vec![("a.txt".to_string(), b"1".to_vec()), ("b.txt".to_string(), b"1".to_vec())];
        write_files(&out, &one, false).unwrap();
        std::fs::write(out.join("mine.txt"), b"user").unwrap();
        let two = vec![("a.txt".to_string(), b"2".to_vec()), ("b.txt".to_string(), b"2".to_vec())];
        assert!(write_files(&out, &two, false).unwrap_err().to_string().contains("already exists"));
        assert_eq!(std::fs::read(out.join("a.txt")).unwrap(), b"1");
        write_files(&out, &two, true).unwrap();
        assert_eq!(std::fs::read(out.join("a.txt")).unwrap(), b"2");
        assert_eq!(std::fs::read(out.join("b.txt")).unwrap(), b"2");
        assert_eq!(std::fs::read(out.join("mine.txt")).unwrap(), b"user");
        let left: Vec<_> = std::fs::read_dir(&d).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(left.len(), 1, "no temporary folder is left: {left:?}");
        // a half-existing pair: nothing written
        std::fs::remove_file(out.join("b.txt")).unwrap();
        assert!(write_files(&out, &one, false).is_err());
        assert!(!out.join("b.txt").exists());
        assert!(write_file(&out.join("a.txt"), b"3", false).is_err());
        assert!(write_files(&out, &[("../x".into(), vec![])], true).is_err());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
