//! Group commit for the inbox: webhook handlers hand their event to one writer task, which takes
//! everything waiting (up to a bound) and commits it in a single transaction, then answers each
//! handler. Under load one fsync covers hundreds of events; with no load the batch is one event
//! and nothing waits.

use crate::EngineError;
use heartsuite_store::{DynStore, IngestItem, Ingested};
use std::sync::Arc;
use tokio::sync::{Notify, mpsc, oneshot};

struct Request {
    item: IngestItem,
    reply: oneshot::Sender<Result<Ingested, String>>,
}

#[derive(Clone)]
pub struct InboxWriter {
    tx: mpsc::Sender<Request>,
}

impl InboxWriter {
    /// `max_batch` bounds one transaction; `queue` bounds how many handlers may wait (beyond it,
    /// handlers wait for room: back-pressure reaches the sender instead of memory growing).
    /// `committed` is notified after each commit so idle workers wake at once.
    pub fn spawn(store: DynStore, max_batch: usize, queue: usize, committed: Arc<Notify>) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<Request>(queue.max(1));
        let max_batch = max_batch.max(1);
        let handle = tokio::spawn(async move {
            let mut batch: Vec<Request> = Vec::with_capacity(max_batch);
            while rx.recv_many(&mut batch, max_batch).await > 0 {
                let items: Vec<IngestItem> = batch.iter().map(|r| r.item.clone()).collect();
                match store.ingest(&items).await {
                    Ok(results) => {
                        for (req, res) in batch.drain(..).zip(results) {
                            let _ = req.reply.send(Ok(res));
                        }
                        committed.notify_waiters();
                    }
                    Err(e) => {
                        tracing::error!(error = %e, events = batch.len(), "inbox commit failed");
                        for req in batch.drain(..) {
                            let _ = req.reply.send(Err(e.to_string()));
                        }
                    }
                }
            }
        });
        (Self { tx }, handle)
    }

    /// Returns only after the event (and its jobs) are committed.
    pub async fn submit(&self, item: IngestItem) -> Result<Ingested, EngineError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Request { item, reply }).await.map_err(|_| EngineError::WriterStopped)?;
        match rx.await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(EngineError::Invalid(format!("the inbox could not commit: {e}"))),
            Err(_) => Err(EngineError::WriterStopped),
        }
    }
}
