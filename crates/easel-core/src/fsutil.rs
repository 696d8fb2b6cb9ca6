//! File helpers: atomic writes (a crash never leaves half a file) and never overwriting user files.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Write `bytes` to `path` through a temporary file in the same folder and a rename, so a
/// reader sees the old file or the new one, never a torn one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::write(dir, e))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "out".into());
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::write(path, e));
    }
    Ok(())
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
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::write(dir, e))?;
    let tmp = dir.join(format!(".easel-new-{}-{}.tmp", std::process::id(), unique()));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::write(path, e));
    }
    let mut target = path.to_path_buf();
    let result = loop {
        match std::fs::hard_link(&tmp, &target) {
            Ok(()) => break Ok(target),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => target = unused_path(path),
            Err(e) => break Err(Error::write(&target, e)),
        }
    };
    let _ = std::fs::remove_file(&tmp);
    result
}

/// Write several files as one new folder: they go into a hidden temporary folder beside `dir`
/// first, which is then renamed to `dir` (or `dir-2`, ... if that exists). A crash leaves no
/// half-written folder under the real name. Returns the folder written.
pub fn write_folder_new(dir: &Path, files: &[(String, Vec<u8>)]) -> Result<PathBuf> {
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| Error::write(parent, e))?;
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "out".into());
    let tmp = parent.join(format!(".{name}.easel-tmp-{}-{}", std::process::id(), unique()));
    std::fs::create_dir(&tmp).map_err(|e| Error::write(&tmp, e))?;
    let filled = files.iter().try_for_each(|(f, bytes)| {
        let p = tmp.join(f);
        std::fs::File::create(&p).and_then(|mut h| h.write_all(bytes).and_then(|_| h.sync_all())).map_err(|e| Error::write(&p, e))
    });
    if let Err(e) = filled {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let mut target = dir.to_path_buf();
    for _ in 0..1000 {
        if target.exists() {
            target = unused_path(dir);
            continue;
        }
        // rename onto a missing name; an empty folder created meanwhile would be replaced, so
        // check once more right before
        match std::fs::rename(&tmp, &target) {
            Ok(()) => return Ok(target),
            Err(e) if target.exists() => {
                let _ = e;
                target = unused_path(dir);
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(Error::write(&target, e));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    Err(Error::invalid(format!("{}: no free name for the output folder", dir.display())))
}

/// Write files into `dir` (created if needed). Without `force`, an existing file of the same
/// name is an error and nothing is written; each file appears whole.
pub fn write_files(dir: &Path, files: &[(String, Vec<u8>)], force: bool) -> Result<Vec<PathBuf>> {
    let paths: Vec<PathBuf> = files.iter().map(|(f, _)| dir.join(f)).collect();
    if !force && let Some(p) = paths.iter().find(|p| p.exists()) {
        return Err(Error::invalid(format!("{} already exists; pass --force to replace it", p.display())));
    }
    ensure_dir(dir)?;
    for (p, (_, bytes)) in paths.iter().zip(files) {
        write_atomic(p, bytes)?;
    }
    Ok(paths)
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos() as u64).unwrap_or(0);
    (N.fetch_add(1, Ordering::Relaxed) << 32) ^ t
}
