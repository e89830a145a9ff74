//! Upload sessions owned by a process (local vaults). Each open session holds an exclusive
//! `flock` on `sessions/<id>.lock` beside the catalog. The kernel drops the lock when the
//! process ends, however it ends (`kill -9` too), so GC tells a live session from one a
//! killed run left behind at once, without waiting for an expiry and without trusting
//! pids, which are reused.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::path::PathBuf;
use std::sync::Mutex;

use rustix::fs::{FlockOperation, flock};

use crate::{Result, StoreError};

pub(crate) struct SessionLocks {
    dir: PathBuf,
    /// The locks of this process's open sessions: closing a file releases its lock.
    held: Mutex<HashMap<String, File>>,
}

impl SessionLocks {
    pub(crate) fn new(dir: PathBuf) -> Self {
        SessionLocks {
            dir,
            held: Mutex::new(HashMap::new()),
        }
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.lock"))
    }

    /// Takes the lock of a new session. Called before its catalog row exists, so a row
    /// without a locked file always belongs to a process that is gone.
    pub(crate) fn acquire(&self, id: &str) -> Result<()> {
        let fail = |e: std::io::Error| {
            let msg = format!("cannot lock the upload session in {}: {e}", self.dir.display());
            match e.kind() {
                std::io::ErrorKind::StorageFull => StoreError::NoSpace(msg),
                _ => StoreError::Storage(msg),
            }
        };
        std::fs::create_dir_all(&self.dir).map_err(fail)?;
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(self.path(id))
            .map_err(fail)?;
        flock(&file, FlockOperation::NonBlockingLockExclusive).map_err(|e| fail(e.into()))?;
        self.held
            .lock()
            .expect("session locks")
            .insert(id.to_string(), file);
        Ok(())
    }

    /// Ends a session of this process: its lock file goes, then the lock.
    pub(crate) fn release(&self, id: &str) {
        if let Some(file) = self.held.lock().expect("session locks").remove(id) {
            let _ = std::fs::remove_file(self.path(id));
            drop(file);
        }
    }

    /// Whether the process that opened session `id` is gone: its lock file is missing or
    /// nobody holds the lock. Then the file is removed too.
    pub(crate) fn is_abandoned(&self, id: &str) -> bool {
        if self.held.lock().expect("session locks").contains_key(id) {
            return false;
        }
        let Ok(file) = File::open(self.path(id)) else {
            return true;
        };
        // A lock is per open file, so this fails while any process, this one included,
        // holds the session's lock.
        if flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
            return false;
        }
        let _ = std::fs::remove_file(self.path(id));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_is_live_and_a_dropped_one_abandoned() {
        let dir = tempfile::tempdir().unwrap();
        let mine = SessionLocks::new(dir.path().join("sessions"));
        let other = SessionLocks::new(dir.path().join("sessions"));
        mine.acquire("a").unwrap();
        assert!(!mine.is_abandoned("a"));
        // Another opener of the same vault (another process, as far as flock goes).
        assert!(!other.is_abandoned("a"));
        // Dropped without a release, as by a killed process: the file stays, unlocked.
        let file = mine.held.lock().unwrap().remove("a").unwrap();
        drop(file);
        assert!(other.is_abandoned("a"));
        assert!(!dir.path().join("sessions/a.lock").exists());
        assert!(other.is_abandoned("never-locked"));
        mine.acquire("b").unwrap();
        mine.release("b");
        assert!(!dir.path().join("sessions/b.lock").exists());
    }
}
