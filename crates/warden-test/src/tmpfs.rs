//! A small tmpfs that a test fills to the brim, for the faults of a full disk. Mounting
//! needs root, as CI has; a test that cannot mount fails rather than passing unchecked.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `errno` of a write to a full filesystem.
pub const ENOSPC: i32 = 28;

/// A tmpfs of a given size mounted on a fresh directory, unmounted on drop.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`mount -o size=…`: `1m`, `8m`).
    pub fn mount(size: &str) -> Self {
        let dir = tempfile::TempDir::new().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mounting a tmpfs failed: this test needs root (as CI runs)"
        );
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file until the filesystem is full; its path, to delete when the test frees
    /// the disk again.
    pub fn fill(&self) -> PathBuf {
        let path = self.path().join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let block = vec![0u8; 4096];
        loop {
            match f.write_all(&block) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(ENOSPC) => break,
                Err(e) => panic!("filling the tmpfs: {e}"),
            }
        }
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}
