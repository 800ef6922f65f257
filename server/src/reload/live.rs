//! A value that readers take a cheap copy of and a reload replaces whole.

use std::sync::{PoisonError, RwLock};

/// The current value of a reloadable setting. Readers clone it out (an
/// `Arc` or another cheap handle) and drop the lock at once, so a reload
/// waits for no call and no call waits for a reload longer than a clone;
/// a call keeps the value it took for as long as it runs.
#[derive(Debug, Default)]
pub(crate) struct Live<T>(RwLock<T>);

impl<T: Clone> Live<T> {
    /// Starts with `value`.
    pub(crate) fn new(value: T) -> Self {
        Self(RwLock::new(value))
    }

    /// The current value. A writer that panicked mid-replace cannot leave
    /// it half written (the replace is one assignment), so a poisoned lock
    /// is read anyway rather than failing every call.
    pub(crate) fn load(&self) -> T {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the value; calls that took the old one keep it.
    pub(crate) fn replace(&self, value: T) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = value;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::Live;

    #[test]
    fn a_reader_keeps_what_it_took() {
        let live = Live::new(Arc::new(1));
        let taken = live.load();
        live.replace(Arc::new(2));
        assert_eq!((*taken, *live.load()), (1, 2));
    }
}
