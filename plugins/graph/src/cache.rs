//! Inventory reads reused for a short time, so that the listing pages, `observe` and `place`
//! of one reconcile pass read Graph once instead of once per call. The Windows 365 provider
//! keeps Cloud PCs and group members here, the physical provider managed devices.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;
use vdi_contracts::ProviderResult;

/// Values read from Graph, by key. A value is reused until it is older than the time to live,
/// or until [`ReadCache::invalidate`] is called after the provider's own writes.
#[derive(Debug)]
pub struct ReadCache<T> {
    ttl: Duration,
    /// Bumped by [`ReadCache::invalidate`]; a value read under an older generation is stale.
    generation: AtomicU64,
    entries: Mutex<HashMap<String, Entry<T>>>,
}

#[derive(Debug)]
struct Entry<T> {
    value: Arc<T>,
    read_at: Instant,
    generation: u64,
}

impl<T> ReadCache<T> {
    /// Creates an empty cache; a `ttl` of zero reads Graph on every call.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            generation: AtomicU64::new(0),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Returns the value of `key` while it is fresh, and otherwise reads it with `read` and
    /// keeps it. Callers wait for one read at a time, so concurrent passes share it.
    ///
    /// # Errors
    /// Returns the error of `read`; nothing is kept then.
    pub async fn get_or_read<F, Fut>(&self, key: &str, read: F) -> ProviderResult<Arc<T>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = ProviderResult<T>>,
    {
        let mut entries = self.entries.lock().await;
        // Read before the Graph read starts, so a write that ends during it makes the value
        // stale at once.
        let generation = self.generation.load(Ordering::Acquire);
        if let Some(entry) = entries.get(key) {
            if entry.generation == generation && entry.read_at.elapsed() < self.ttl {
                return Ok(entry.value.clone());
            }
        }
        let value = Arc::new(read().await?);
        let entry = Entry {
            value: value.clone(),
            read_at: Instant::now(),
            generation,
        };
        entries.insert(key.to_owned(), entry);
        Ok(value)
    }

    /// Makes every kept value stale, so the next call of each key reads Graph again.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    async fn read(cache: &ReadCache<usize>, reads: &AtomicUsize) -> usize {
        let value = cache
            .get_or_read("k", || async {
                Ok(reads.fetch_add(1, Ordering::SeqCst) + 1)
            })
            .await
            .expect("read");
        *value
    }

    #[tokio::test(start_paused = true)]
    async fn value_is_reused_until_ttl() {
        let cache = ReadCache::new(Duration::from_secs(15));
        let reads = AtomicUsize::new(0);
        assert_eq!(read(&cache, &reads).await, 1);
        tokio::time::advance(Duration::from_secs(14)).await;
        assert_eq!(read(&cache, &reads).await, 1);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(read(&cache, &reads).await, 2);
    }

    #[tokio::test]
    async fn invalidate_forces_a_read() {
        let cache = ReadCache::new(Duration::from_secs(15));
        let reads = AtomicUsize::new(0);
        assert_eq!(read(&cache, &reads).await, 1);
        cache.invalidate();
        assert_eq!(read(&cache, &reads).await, 2);
        assert_eq!(read(&cache, &reads).await, 2);
    }

    #[tokio::test]
    async fn zero_ttl_always_reads() {
        let cache = ReadCache::new(Duration::ZERO);
        let reads = AtomicUsize::new(0);
        assert_eq!(read(&cache, &reads).await, 1);
        assert_eq!(read(&cache, &reads).await, 2);
    }

    #[tokio::test]
    async fn failed_read_is_not_kept() {
        let cache: ReadCache<usize> = ReadCache::new(Duration::from_secs(15));
        let failed = cache
            .get_or_read("k", || async {
                Err(vdi_contracts::ProviderError::internal("Graph is down"))
            })
            .await;
        assert!(failed.is_err());
        let reads = AtomicUsize::new(0);
        assert_eq!(read(&cache, &reads).await, 1);
    }
}
