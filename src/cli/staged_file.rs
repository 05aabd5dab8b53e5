//! A file written under a temporary name in the directory of its final path, synced, then put
//! in place with one rename: a reader sees the old file or the whole new one, never half, and
//! a crash leaves at most a stray temporary file (removed when the writer gives up).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The temporary file; removed on drop unless installed.
#[derive(Debug)]
pub struct StagedFile {
    path: PathBuf,
    installed: bool,
}

/// The directory a path is in (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

impl StagedFile {
    /// Creates an empty file, mode 0600, beside `target` (`.NAME.tmp-PID-N`).
    pub fn create(target: &Path) -> io::Result<Self> {
        let name = target.file_name().ok_or_else(|| io::Error::other("the path names no file"))?;
        let dir = parent_dir(target);
        for n in 0..100 {
            let mut temp = std::ffi::OsString::from(".");
            temp.push(name);
            temp.push(format!(".tmp-{}-{n}", std::process::id()));
            let path = dir.join(temp);
            match OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path) {
                Ok(_) => return Ok(Self { path, installed: false }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(io::ErrorKind::AlreadyExists, "no free temporary name"))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes the file's contents to the disk.
    pub fn sync(&self) -> io::Result<()> {
        File::open(&self.path)?.sync_all()
    }

    /// Puts the file at `target`, replacing what is there only when `replace` is set (an
    /// existing `target` is otherwise an `AlreadyExists` error, decided atomically by `link`),
    /// then syncs the directory so that the new name survives a crash.
    pub fn install(mut self, target: &Path, replace: bool) -> io::Result<()> {
        if replace {
            std::fs::rename(&self.path, target)?;
        } else {
            std::fs::hard_link(&self.path, target)?;
            std::fs::remove_file(&self.path)?;
        }
        self.installed = true;
        sync_dir(parent_dir(target))
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        if !self.installed {
            // Nothing better to do with an error here: the file is a leftover with a name
            // that says so.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Makes the renames and links done in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn installs_private_and_refuses_to_replace_unless_asked() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("copy.db");
        let staged = StagedFile::create(&target).unwrap();
        std::fs::write(staged.path(), "one").unwrap();
        staged.install(&target, false).unwrap();
        assert_eq!(std::fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o600);

        let staged = StagedFile::create(&target).unwrap();
        std::fs::write(staged.path(), "two").unwrap();
        let err = staged.install(&target, false).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "one");

        let staged = StagedFile::create(&target).unwrap();
        std::fs::write(staged.path(), "three").unwrap();
        staged.install(&target, true).unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "three");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "a temporary file was left");
    }
}
