//! A per-thread pool of copy buffers.
//!
//! DESIGN.md principle 3: an idle connection holds no user-space buffer.
//! Code that copies borrows a buffer for the copy and gives it back, so the
//! memory in use follows the number of connections *moving data*, not the
//! number open. Buffers are `tune.bufsize`-independent 16 KiB blocks (the
//! size of a TLS record, and HAProxy's default buffer).

use std::cell::RefCell;

/// Size of one copy buffer.
pub const BUF_SIZE: usize = 16 * 1024;
/// Buffers kept per thread when returned; more are freed. Small on purpose:
/// a burst of copies must not leave megabytes cached (measured: 256 per
/// thread added ~2 KiB to every one of 4,000 idle WebSockets).
const KEEP_PER_THREAD: usize = 16;

thread_local! {
    static POOL: RefCell<Vec<Box<[u8]>>> = const { RefCell::new(Vec::new()) };
}

/// A buffer borrowed from the pool, returned on drop.
pub struct PooledBuf(Option<Box<[u8]>>);

impl PooledBuf {
    pub fn take() -> PooledBuf {
        let buf = POOL
            .with(|p| p.borrow_mut().pop())
            .unwrap_or_else(|| vec![0u8; BUF_SIZE].into_boxed_slice());
        PooledBuf(Some(buf))
    }
}

impl AsRef<[u8]> for PooledBuf {
    fn as_ref(&self) -> &[u8] {
        self.0.as_deref().unwrap_or(&[])
    }
}

impl AsMut<[u8]> for PooledBuf {
    fn as_mut(&mut self) -> &mut [u8] {
        self.0.as_deref_mut().unwrap_or(&mut [])
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        if let Some(buf) = self.0.take() {
            POOL.with(|p| {
                let mut p = p.borrow_mut();
                if p.len() < KEEP_PER_THREAD {
                    p.push(buf);
                }
            });
        }
    }
}
