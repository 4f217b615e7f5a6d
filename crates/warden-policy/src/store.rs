//! The live policy set and its hot reload.
//!
//! This module owns which [`PolicySet`] is in effect. A reload builds a whole new set off to
//! the side and swaps it in with one pointer store, so a request sees the old set or the new
//! one, never a mix; a reload that fails leaves the last good set in effect. It must not
//! decide anything itself, and never holds the lock that readers take while parsing.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, SystemTime};

use crate::set::{policy_files, PolicySet};
use crate::PolicyError;

/// The policy directory and the set currently in effect.
#[derive(Debug)]
pub struct PolicyStore {
    dir: PathBuf,
    current: RwLock<Arc<PolicySet>>,
    /// Held for a whole reload, so that two reloads (the watcher's and an operator's) cannot
    /// finish out of order and leave the older read of the directory in effect.
    reloading: Mutex<()>,
}

impl PolicyStore {
    /// Loads `dir`. Unlike a reload, the first load must succeed: there is no earlier set
    /// to fall back on, and starting with none would deny everything without saying why.
    pub fn open(dir: PathBuf) -> Result<Arc<Self>, PolicyError> {
        let set = PolicySet::load_dir(&dir)?;
        tracing::info!(dir = %dir.display(), policies = set.len(), "policies loaded");
        Ok(Arc::new(Self {
            dir,
            current: RwLock::new(Arc::new(set)),
            reloading: Mutex::new(()),
        }))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The set in effect now. Callers decide on the returned `Arc`, outside any lock.
    pub fn current(&self) -> Arc<PolicySet> {
        // The lock guards one `Arc` that is replaced whole, so a panic elsewhere while it
        // was held cannot have left it half-written: recovering from poison is sound.
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Loads the directory again and puts the result in effect if any file changed.
    /// Returns whether it did. On error the last good set stays in effect.
    pub fn reload(&self) -> Result<bool, PolicyError> {
        // Guards no data, only the order of reloads: poison is harmless.
        let _reloading = self
            .reloading
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let new = match PolicySet::load_dir(&self.dir) {
            Ok(new) => new,
            Err(error) => {
                tracing::warn!(
                    dir = %self.dir.display(),
                    %error,
                    "policy reload failed; the last good policies stay in effect"
                );
                return Err(error);
            }
        };
        if new.same_sources(&self.current()) {
            return Ok(false);
        }
        tracing::info!(dir = %self.dir.display(), policies = new.len(), "policies reloaded");
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(new);
        Ok(true)
    }

    /// Polls the directory every `every` and reloads when a policy file is added, removed
    /// or modified (name, size or modification time). The thread ends once the store has
    /// been dropped; a failed reload is logged by [`PolicyStore::reload`] and retried only
    /// when the files change again, so a broken file is reported once, not every tick.
    pub fn spawn_watcher(self: &Arc<Self>, every: Duration) -> JoinHandle<()> {
        let store = Arc::downgrade(self);
        let dir = self.dir.clone();
        thread::spawn(move || {
            // `None` forces a reload on the first tick, which catches a change made between
            // `open` and this thread's start (a no-op when nothing changed).
            let mut last: Option<Stamp> = None;
            loop {
                thread::sleep(every);
                let Some(store) = store.upgrade() else {
                    return;
                };
                let now = Stamp::of(&dir);
                if last.as_ref() != Some(&now) {
                    last = Some(now);
                    // The error is already logged, and the last good set stays in effect.
                    let _ = store.reload();
                }
            }
        })
    }
}

/// What polling compares: each policy file's name, size and modification time, or the error
/// that listing the directory gave. Cheap (metadata only) and catches every ordinary edit;
/// a rewrite keeping both size and a nanosecond timestamp would go unseen until the next.
#[derive(Debug, PartialEq, Eq)]
enum Stamp {
    Files(Vec<(PathBuf, u64, Option<SystemTime>)>),
    Unreadable(String),
}

impl Stamp {
    fn of(dir: &Path) -> Self {
        let files = match policy_files(dir) {
            Ok(files) => files,
            Err(e) => return Self::Unreadable(e.to_string()),
        };
        let mut stamped = Vec::with_capacity(files.len());
        for path in files {
            match fs::metadata(&path) {
                Ok(meta) => stamped.push((path, meta.len(), meta.modified().ok())),
                Err(e) => return Self::Unreadable(e.to_string()),
            }
        }
        Self::Files(stamped)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail by panicking")]

    use super::*;

    #[test]
    fn stamp_sees_added_changed_and_removed_files() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.cedar");
        let empty = Stamp::of(dir.path());
        fs::write(&a, "permit (principal, action, resource);").unwrap();
        fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        let one = Stamp::of(dir.path());
        assert_ne!(empty, one);
        fs::write(&a, "forbid (principal, action, resource);;").unwrap();
        assert_ne!(one, Stamp::of(dir.path()));
        fs::remove_file(&a).unwrap();
        assert_eq!(empty, Stamp::of(dir.path()));
        assert!(matches!(
            Stamp::of(&dir.path().join("missing")),
            Stamp::Unreadable(_)
        ));
    }
}
