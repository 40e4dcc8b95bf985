//! Concurrency governance: one governor per NetSuite account, shared by every request.
//!
//! NetSuite rejects requests above the account's concurrency limit (429). The governor keeps a
//! *window* of permits ≤ the configured limit and adapts it AIMD-style: a 429 halves the window
//! (once per window generation, so a burst of 429s from one over-full window halves it once), and
//! every `increase_after` successes add one permit back, up to the limit.
//!
//! Within a process the window is a tokio `Semaphore` (FIFO, so waiters are served in order).
//! With several processes on one database, each request additionally leases a slot from a
//! [`PermitStore`], so the sum across processes never exceeds the account limit.

use crate::error::Error;
use async_trait::async_trait;
use heartsuite_core::Failure;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Cross-process permit leases. The PostgreSQL/SQLite implementation lives with the store
/// (`Store::acquire_permit` / `release_permit`); its lease TTL must exceed the client's request
/// timeout so a slot is never reclaimed while its request is still in flight.
#[async_trait]
pub trait PermitStore: Send + Sync + 'static {
    /// Takes one of `limit` slots of `pool` for `owner`; `None` when all are taken.
    async fn acquire(&self, pool: &str, limit: u32, owner: &str) -> Result<Option<u32>, Failure>;
    async fn release(&self, pool: &str, slot: u32, owner: &str) -> Result<(), Failure>;
}

/// An in-memory [`PermitStore`] with the same semantics as the database one (slot numbers,
/// owner-checked release). Useful for tests and as the reference behaviour.
#[derive(Debug, Default)]
pub struct LocalPermitStore {
    pools: Mutex<HashMap<String, Vec<Option<String>>>>,
}

#[async_trait]
impl PermitStore for LocalPermitStore {
    async fn acquire(&self, pool: &str, limit: u32, owner: &str) -> Result<Option<u32>, Failure> {
        let mut pools = self.pools.lock().map_err(|_| Failure::bug("permit store lock poisoned"))?;
        let slots = pools.entry(pool.to_string()).or_default();
        if slots.len() < limit as usize {
            slots.resize(limit as usize, None);
        }
        for (i, s) in slots.iter_mut().enumerate().take(limit as usize) {
            if s.is_none() {
                *s = Some(owner.to_string());
                return Ok(Some(i as u32));
            }
        }
        Ok(None)
    }

    async fn release(&self, pool: &str, slot: u32, owner: &str) -> Result<(), Failure> {
        let mut pools = self.pools.lock().map_err(|_| Failure::bug("permit store lock poisoned"))?;
        if let Some(s) = pools.get_mut(pool).and_then(|v| v.get_mut(slot as usize))
            && s.as_deref() == Some(owner)
        {
            *s = None;
        }
        Ok(())
    }
}

struct Window {
    /// Permits currently allowed (1..=limit).
    current: u32,
    /// Configured (or account-reported) ceiling.
    limit: u32,
    /// Permits to swallow on release because the window shrank while they were out.
    debt: u32,
    /// Bumped on every decrease; a 429 from a request started in an older generation is ignored.
    generation: u64,
    successes: u32,
}

/// Per-account concurrency governor. Cheap to share: wrap in `Arc`.
pub struct Governor {
    pool: String,
    owner: String,
    sem: Arc<Semaphore>,
    window: Mutex<Window>,
    increase_after: u32,
    in_flight: AtomicU32,
    store: Option<Arc<dyn PermitStore>>,
}

impl std::fmt::Debug for Governor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Governor")
            .field("pool", &self.pool)
            .field("window", &self.window())
            .field("limit", &self.limit())
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

/// What happened to the request a permit was used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    RateLimited,
    /// Any other failure: says nothing about capacity.
    Neutral,
}

impl Governor {
    /// `pool` names the account (e.g. `netsuite:1234567_SB1`); `increase_after` is the number of
    /// successes that earn one permit back after a decrease.
    pub fn new(pool: impl Into<String>, limit: u32, increase_after: u32) -> Self {
        let limit = limit.max(1);
        Self {
            pool: pool.into(),
            owner: default_owner(),
            sem: Arc::new(Semaphore::new(limit as usize)),
            window: Mutex::new(Window { current: limit, limit, debt: 0, generation: 0, successes: 0 }),
            increase_after: increase_after.max(1),
            in_flight: AtomicU32::new(0),
            store: None,
        }
    }

    /// Adds cross-process leases; `owner` identifies this process (host + pid is typical).
    pub fn with_store(mut self, store: Arc<dyn PermitStore>, owner: impl Into<String>) -> Self {
        self.store = Some(store);
        self.owner = owner.into();
        self
    }

    pub fn pool(&self) -> &str {
        &self.pool
    }
    pub fn window(&self) -> u32 {
        self.window.lock().map(|w| w.current).unwrap_or(1)
    }
    pub fn limit(&self) -> u32 {
        self.window.lock().map(|w| w.limit).unwrap_or(1)
    }
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Replaces the ceiling (e.g. with what `governanceLimits` reported); the window follows.
    pub fn set_limit(&self, limit: u32) {
        let limit = limit.max(1);
        let Ok(mut w) = self.window.lock() else { return };
        w.limit = limit;
        let target = limit;
        if target > w.current {
            for _ in w.current..target {
                grow_one(&self.sem, &mut w);
            }
        } else if target < w.current {
            shrink_to(&self.sem, &mut w, target);
        }
    }

    /// Waits for a permit (local window first, then the shared lease if configured).
    pub async fn acquire(self: &Arc<Self>) -> Result<Permit, Error> {
        let local = self
            .sem
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::Unexpected("governor closed".into()))?;
        let generation = self.window.lock().map(|w| w.generation).unwrap_or(0);
        let mut slot = None;
        if let Some(store) = &self.store {
            let mut delay = Duration::from_millis(10);
            loop {
                // The local window is the limit asked of the store: after a 429 this process
                // only takes low-numbered slots, leaving room for the others.
                let limit = self.window();
                match store.acquire(&self.pool, limit, &self.owner).await {
                    Ok(Some(s)) => {
                        slot = Some(s);
                        break;
                    }
                    Ok(None) => {
                        tokio::time::sleep(jitter(delay)).await;
                        delay = (delay * 2).min(Duration::from_millis(500));
                    }
                    Err(f) => {
                        self.release_local(local);
                        return Err(Error::Permits(f));
                    }
                }
            }
        }
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        Ok(Permit { gov: self.clone(), local: Some(local), slot, generation, finished: false })
    }

    fn release_local(&self, p: OwnedSemaphorePermit) {
        let Ok(mut w) = self.window.lock() else { return };
        if w.debt > 0 {
            w.debt -= 1;
            p.forget();
        } else {
            drop(p);
        }
    }

    fn record(&self, outcome: Outcome, generation: u64) {
        let Ok(mut w) = self.window.lock() else { return };
        match outcome {
            Outcome::Success => {
                if w.current < w.limit {
                    w.successes += 1;
                    if w.successes >= self.increase_after {
                        w.successes = 0;
                        grow_one(&self.sem, &mut w);
                    }
                }
            }
            Outcome::RateLimited => {
                if generation == w.generation {
                    let target = (w.current / 2).max(1);
                    shrink_to(&self.sem, &mut w, target);
                    w.generation += 1;
                    w.successes = 0;
                    tracing::warn!(pool = %self.pool, window = target, "NetSuite 429: halving concurrency window");
                }
            }
            Outcome::Neutral => {}
        }
    }
}

fn grow_one(sem: &Semaphore, w: &mut Window) {
    w.current += 1;
    if w.debt > 0 {
        w.debt -= 1;
    } else {
        sem.add_permits(1);
    }
}

fn shrink_to(sem: &Semaphore, w: &mut Window, target: u32) {
    let reduce = w.current.saturating_sub(target);
    w.current = target;
    // Idle permits go at once; the rest are swallowed as they come back.
    let forgotten = sem.forget_permits(reduce as usize) as u32;
    w.debt += reduce - forgotten;
}

fn jitter(d: Duration) -> Duration {
    use rand::Rng as _;
    let ms = d.as_millis() as u64;
    Duration::from_millis(rand::rng().random_range(ms / 2..=ms.max(1)))
}

fn default_owner() -> String {
    use rand::Rng as _;
    format!("pid{}-{:08x}", std::process::id(), rand::rng().random::<u32>())
}

/// One in-flight request's permission. Call [`Permit::finish`] with the outcome; a permit dropped
/// without it (the request future was cancelled) is released as `Neutral`.
pub struct Permit {
    gov: Arc<Governor>,
    local: Option<OwnedSemaphorePermit>,
    slot: Option<u32>,
    generation: u64,
    finished: bool,
}

impl Permit {
    pub fn slot(&self) -> Option<u32> {
        self.slot
    }

    pub async fn finish(mut self, outcome: Outcome) {
        self.finished = true;
        self.gov.record(outcome, self.generation);
        self.gov.in_flight.fetch_sub(1, Ordering::SeqCst);
        if let (Some(store), Some(slot)) = (self.gov.store.clone(), self.slot.take())
            && let Err(f) = store.release(&self.gov.pool, slot, &self.gov.owner).await
        {
            // The lease expires by itself; the slot is only lost until its TTL.
            tracing::warn!(pool = %self.gov.pool, slot, error = %f, "releasing NetSuite permit lease failed");
        }
        if let Some(p) = self.local.take() {
            self.gov.release_local(p);
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        self.gov.in_flight.fetch_sub(1, Ordering::SeqCst);
        if let Some(p) = self.local.take() {
            self.gov.release_local(p);
        }
        if let (Some(store), Some(slot)) = (self.gov.store.clone(), self.slot.take()) {
            let pool = self.gov.pool.clone();
            let owner = self.gov.owner.clone();
            if let Ok(h) = tokio::runtime::Handle::try_current() {
                h.spawn(async move {
                    let _ = store.release(&pool, slot, &owner).await;
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn halves_once_per_generation_and_climbs_back() {
        let g = Arc::new(Governor::new("netsuite:T", 8, 2));
        let permits: Vec<Permit> = futures_join(&g, 8).await;
        assert_eq!(g.in_flight(), 8);
        // All eight were admitted in generation 0; each sees a 429 but the window halves once.
        for p in permits {
            p.finish(Outcome::RateLimited).await;
        }
        assert_eq!(g.window(), 4);
        assert_eq!(g.sem.available_permits(), 4);
        // Two successes per step back up to the limit.
        for _ in 0..8 {
            g.acquire().await.unwrap().finish(Outcome::Success).await;
        }
        assert_eq!(g.window(), 8);
        assert_eq!(g.sem.available_permits(), 8);
    }

    #[tokio::test]
    async fn shrinking_while_permits_are_out_swallows_them_on_return() {
        let g = Arc::new(Governor::new("netsuite:T", 4, 100));
        let ps = futures_join(&g, 4).await;
        g.set_limit(2);
        assert_eq!(g.sem.available_permits(), 0);
        for p in ps {
            p.finish(Outcome::Success).await;
        }
        assert_eq!(g.sem.available_permits(), 2);
        assert_eq!(g.window(), 2);
    }

    #[tokio::test]
    async fn shared_store_bounds_two_governors_together() {
        let store: Arc<dyn PermitStore> = Arc::new(LocalPermitStore::default());
        let a = Arc::new(Governor::new("netsuite:T", 3, 10).with_store(store.clone(), "a"));
        let b = Arc::new(Governor::new("netsuite:T", 3, 10).with_store(store.clone(), "b"));
        let pa = futures_join(&a, 2).await;
        let pb = futures_join(&b, 1).await;
        // Three slots are leased in total; b's next acquire must wait for one to come back.
        let b2 = tokio::spawn({
            let b = b.clone();
            async move { b.acquire().await.map(|p| p.slot()) }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!b2.is_finished());
        let mut pa = pa.into_iter();
        let first = pa.next().unwrap();
        let freed = first.slot();
        first.finish(Outcome::Success).await;
        let got = b2.await.unwrap().unwrap();
        assert_eq!(got, freed);
        drop(pb);
    }

    async fn futures_join(g: &Arc<Governor>, n: usize) -> Vec<Permit> {
        let mut v = Vec::new();
        for _ in 0..n {
            v.push(g.acquire().await.unwrap());
        }
        v
    }
}
