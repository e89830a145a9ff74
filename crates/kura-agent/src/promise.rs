//! A value that one thread fills in and others wait for (file content computed by a
//! worker, waited for by the directory that lists the file and by its hard links).

use std::sync::{Arc, Condvar, Mutex};

/// A write-once slot.
pub(crate) struct Promise<T> {
    inner: Arc<(Mutex<Option<T>>, Condvar)>,
}

impl<T> Clone for Promise<T> {
    fn clone(&self) -> Self {
        Promise {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T: Clone> Promise<T> {
    pub(crate) fn new() -> Self {
        Promise {
            inner: Arc::new((Mutex::new(None), Condvar::new())),
        }
    }

    /// A promise already kept.
    pub(crate) fn ready(value: T) -> Self {
        let p = Self::new();
        p.set(value);
        p
    }

    pub(crate) fn set(&self, value: T) {
        let (lock, cv) = &*self.inner;
        *lock.lock().expect("promise lock") = Some(value);
        cv.notify_all();
    }

    pub(crate) fn wait(&self) -> T {
        let (lock, cv) = &*self.inner;
        let mut guard = lock.lock().expect("promise lock");
        loop {
            if let Some(v) = guard.as_ref() {
                return v.clone();
            }
            guard = cv.wait(guard).expect("promise lock");
        }
    }
}
