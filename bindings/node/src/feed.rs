//! Streams of values from the core to JavaScript: a producer (a blocking thread or a task)
//! fills a bounded channel, and the native iterator's `next()` takes from it. The bound is the
//! back-pressure: a consumer that does not call `next()` stops the producer after `cap` items.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::error::{Result, js};
use crate::life::Life;

/// Starts a producer inside the runtime, given the channel's sending side.
pub(crate) type Starter<T> = Box<dyn FnOnce(mpsc::Sender<Result<T>>) + Send>;

enum State<T> {
    /// Not started: nothing is produced before the first `next()`.
    Idle(Starter<T>),
    Running(mpsc::Receiver<Result<T>>),
    /// The producer failed after items `next_batch()` returned: its error comes next.
    Failed(napi::Error),
    Done,
}

/// The consuming end of a bounded stream of `T`.
pub(crate) struct Feed<T> {
    state: tokio::sync::Mutex<State<T>>,
    cap: usize,
    life: Arc<Life>,
}

/// The producing end of a blocking producer.
pub(crate) struct Sink<T> {
    tx: mpsc::Sender<Result<T>>,
}

impl<T> Sink<T> {
    /// Hands one item over, waiting while the buffer is full; `false` once the consumer is gone.
    pub(crate) fn send(&self, item: T) -> bool {
        self.tx.blocking_send(Ok(item)).is_ok()
    }

    /// True once the consumer is gone (closed, or garbage-collected).
    pub(crate) fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

impl<T: Send + 'static> Feed<T> {
    /// A feed whose producer `start` launches at the first `next()`.
    pub(crate) fn new(life: Arc<Life>, cap: usize, start: Starter<T>) -> Self {
        Feed {
            state: tokio::sync::Mutex::new(State::Idle(start)),
            cap,
            life,
        }
    }

    /// A feed produced by `produce` on the blocking pool once `prepare` (opening what it reads,
    /// say) has resolved; an error of either is the stream's last item.
    pub(crate) fn blocking_after<X, P, F>(
        life: Arc<Life>,
        cap: usize,
        prepare: P,
        produce: F,
    ) -> Self
    where
        X: Send + 'static,
        P: Future<Output = Result<X>> + Send + 'static,
        F: FnOnce(X, &Sink<T>) -> dat_core::Result<()> + Send + 'static,
    {
        Self::new(
            life,
            cap,
            Box::new(move |tx| {
                napi::bindgen_prelude::spawn(async move {
                    match prepare.await {
                        Err(e) => {
                            let _ = tx.send(Err(e)).await;
                        }
                        Ok(x) => {
                            napi::bindgen_prelude::spawn_blocking(move || {
                                let sink = Sink { tx };
                                if let Err(e) = produce(x, &sink) {
                                    let _ = sink.tx.blocking_send(Err(js(e)));
                                }
                            });
                        }
                    }
                });
            }),
        )
    }

    /// A feed of the items of a list the core computes whole, once `prepare` has resolved.
    pub(crate) fn list_after<X, P, F>(life: Arc<Life>, prepare: P, compute: F) -> Self
    where
        X: Send + 'static,
        P: Future<Output = Result<X>> + Send + 'static,
        F: FnOnce(X) -> dat_core::Result<Vec<T>> + Send + 'static,
    {
        Self::blocking_after(life, 64, prepare, move |x, sink| {
            for item in compute(x)? {
                if !sink.send(item) {
                    break;
                }
            }
            Ok(())
        })
    }

    /// The next item; `None` at the end, or once the feed (or what it came from) is closed.
    pub(crate) async fn next(&self) -> Result<Option<T>> {
        Ok(self.next_batch(1).await?.pop())
    }

    /// The next item, waiting for it, and up to `max - 1` more already produced (so that a
    /// consumer slower than its producer takes more per call); empty at the end, or once the
    /// feed (or what it came from) is closed.
    pub(crate) async fn next_batch(&self, max: usize) -> Result<Vec<T>> {
        let mut st = self.state.lock().await;
        if self.life.is_closed() {
            *st = State::Done;
            return Ok(Vec::new());
        }
        if matches!(*st, State::Idle(_)) {
            let (tx, rx) = mpsc::channel(self.cap);
            if let State::Idle(start) = std::mem::replace(&mut *st, State::Running(rx)) {
                start(tx);
            }
        }
        if matches!(*st, State::Failed(_))
            && let State::Failed(e) = std::mem::replace(&mut *st, State::Done)
        {
            return Err(e);
        }
        let State::Running(rx) = &mut *st else {
            return Ok(Vec::new());
        };
        let item = tokio::select! {
            item = rx.recv() => item,
            () = self.life.wait() => None,
        };
        let mut batch = match item {
            Some(Ok(v)) => vec![v],
            Some(Err(e)) => {
                *st = State::Done;
                return Err(e);
            }
            None => {
                *st = State::Done;
                return Ok(Vec::new());
            }
        };
        while batch.len() < max {
            match rx.try_recv() {
                Ok(Ok(v)) => batch.push(v),
                Ok(Err(e)) => {
                    *st = State::Failed(e);
                    break;
                }
                // nothing more yet (or the end, which the next call finds)
                Err(_) => break,
            }
        }
        Ok(batch)
    }

    /// Ends the feed: its producer stops at its next item, and `next()` returns `None`.
    pub(crate) fn close(&self) {
        self.life.close();
        if let Ok(mut st) = self.state.try_lock() {
            *st = State::Done;
        }
    }
}
