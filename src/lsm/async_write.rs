//! Writes for async callers: a future that resolves when the write is applied
//! (and durable, for sync writes), on top of the blocking core.
//!
//! One committer thread takes every queued request, commits them as one group
//! through the same group-commit path as blocking writers, and wakes each
//! future. Requests that arrive during its fsync form the next group.

use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;

use super::batch::WriteBatch;
use super::core::Shared;
use super::error::{Error, Result, shared_result};

const MAX_REQUESTS_PER_GROUP: usize = 1024;

#[derive(Default)]
struct Completion {
    slot: Mutex<(Option<Result<()>>, Option<Waker>)>,
}

impl Completion {
    fn complete(&self, r: Result<()>) {
        let waker = {
            let mut s = self.slot.lock().unwrap_or_else(|e| e.into_inner());
            s.0 = Some(r);
            s.1.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// Resolves to the result of an asynchronous write.
pub struct WriteFuture {
    done: Arc<Completion>,
}

impl WriteFuture {
    pub(crate) fn failed(e: Error) -> Self {
        let done = Arc::new(Completion::default());
        done.complete(Err(e));
        WriteFuture { done }
    }
}

impl Future for WriteFuture {
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let mut s = self.done.slot.lock().unwrap_or_else(|e| e.into_inner());
        match s.0.take() {
            Some(r) => Poll::Ready(r),
            None => {
                s.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

struct Request {
    batch: WriteBatch,
    sync: bool,
    done: Arc<Completion>,
}

/// Starts its thread on first use, so users of the blocking API pay nothing.
pub(crate) struct Committer {
    shared: Arc<Shared>,
    inner: Mutex<Option<(Sender<Request>, JoinHandle<()>)>>,
}

impl Committer {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Committer {
            shared,
            inner: Mutex::new(None),
        }
    }

    pub(crate) fn submit(&self, batch: WriteBatch, sync: bool) -> WriteFuture {
        let done = Arc::new(Completion::default());
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.is_none() {
            let (tx, rx) = mpsc::channel();
            let shared = self.shared.clone();
            match std::thread::Builder::new()
                .name("lsm-async".into())
                .spawn(move || run(&shared, &rx))
            {
                Ok(h) => *inner = Some((tx, h)),
                Err(e) => return WriteFuture::failed(Error::io(&self.shared.dir, e)),
            }
        }
        let sent = inner.as_ref().map(|(tx, _)| {
            tx.send(Request {
                batch,
                sync,
                done: done.clone(),
            })
        });
        if !matches!(sent, Some(Ok(()))) {
            done.complete(Err(Error::Closed));
        }
        WriteFuture { done }
    }

    /// Stops the thread after it has committed everything already queued.
    pub(crate) fn stop(&self) {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((tx, handle)) = inner {
            drop(tx);
            let _ = handle.join();
        }
    }
}

fn run(shared: &Shared, rx: &Receiver<Request>) {
    // A request taken that would have made its group too large starts the next one.
    let mut carried: Option<Request> = None;
    while let Some(first) = carried.take().or_else(|| rx.recv().ok()) {
        let mut bytes = first.batch.rep.len();
        let mut group = vec![first];
        while group.len() < MAX_REQUESTS_PER_GROUP {
            match rx.try_recv() {
                Ok(r) if bytes + r.batch.rep.len() > shared.opts.max_group_bytes => {
                    carried = Some(r);
                    break;
                }
                Ok(r) => {
                    bytes += r.batch.rep.len();
                    group.push(r);
                }
                Err(_) => break,
            }
        }
        let sync = group.iter().any(|r| r.sync);
        let batches = group
            .iter_mut()
            .map(|r| std::mem::take(&mut r.batch))
            .collect();
        let result = shared.write(batches, sync, false);
        for r in &group {
            r.done.complete(shared_result(&result));
        }
    }
}
