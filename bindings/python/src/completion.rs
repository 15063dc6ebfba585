//! The outcome of a long operation (a prioritized range, a download), shared by whoever waits
//! for it: blocking `wait(timeout)`, `await`, and callbacks.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use pyo3::prelude::*;

use crate::errors::{Error, Result};
use crate::runtime::{self, dispatch};

/// How a Python callback is called when the operation ends.
enum Waiter {
    /// `callback(error)`: `None` on success.
    Callback(Py<PyAny>),
    /// `done(value, error)` of an asyncio bridge; `value` is `value_of()` on success.
    Bridge(Py<PyAny>),
}

type Outcome = std::result::Result<(), Arc<dat_core::Error>>;

#[derive(Default)]
struct State {
    outcome: Option<Outcome>,
    waiters: Vec<Waiter>,
}

/// A one-shot outcome with waiters.
#[derive(Default)]
pub struct Completion {
    state: Mutex<State>,
    changed: Condvar,
}

impl Completion {
    pub fn new() -> Arc<Completion> {
        Arc::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the outcome (the first one counts) and calls the waiters on the callback thread.
    /// Never calls into Python on the calling thread (a runtime worker, say).
    pub fn complete(self: &Arc<Self>, outcome: dat_core::Result<()>, value: ValueFn) {
        let mut s = self.lock();
        if s.outcome.is_some() {
            return;
        }
        let outcome = outcome.map_err(Arc::new);
        s.outcome = Some(outcome.clone());
        let waiters = std::mem::take(&mut s.waiters);
        drop(s);
        self.changed.notify_all();
        for w in waiters {
            let (outcome, value) = (outcome.clone(), value.clone());
            dispatch(move |py| call(py, w, &outcome, &value));
        }
    }

    /// The outcome so far.
    pub fn outcome(&self) -> Option<Outcome> {
        self.lock().outcome.clone()
    }

    /// Calls `callback(error)` when the operation ends (soon, if it has).
    pub fn on_done(&self, callback: Py<PyAny>, value: ValueFn) {
        self.add(Waiter::Callback(callback), value);
    }

    /// Calls `done(value, error)` when the operation ends (the `register` of an awaitable).
    pub fn on_done_bridge(&self, done: Py<PyAny>, value: ValueFn) {
        self.add(Waiter::Bridge(done), value);
    }

    fn add(&self, w: Waiter, value: ValueFn) {
        let mut s = self.lock();
        match s.outcome.clone() {
            None => s.waiters.push(w),
            Some(outcome) => {
                drop(s);
                dispatch(move |py| call(py, w, &outcome, &value));
            }
        }
    }

    /// Waits (GIL released, Ctrl-C honoured) for the outcome, for at most `timeout`.
    pub fn wait(&self, py: Python<'_>, timeout: Option<Duration>, what: &str) -> Result<()> {
        let deadline = runtime::deadline(timeout);
        loop {
            let Some(slice) = runtime::next_slice(deadline) else {
                return Err(Error::Core(dat_core::Error::Timeout(format!(
                    "{what} was not complete after {:?}",
                    timeout.unwrap_or_default()
                ))));
            };
            let outcome = py.detach(|| {
                let s = self.lock();
                let (s, _) = self
                    .changed
                    .wait_timeout_while(s, slice, |s| s.outcome.is_none())
                    .unwrap_or_else(|p| p.into_inner());
                s.outcome.clone()
            });
            match outcome {
                Some(Ok(())) => return Ok(()),
                Some(Err(e)) => return Err(Error::Shared(e)),
                None => py.check_signals()?,
            }
        }
    }
}

/// Makes the value an awaitable resolves to (the range itself, a block count, ...).
pub type ValueFn = Arc<dyn Fn(Python<'_>) -> Py<PyAny> + Send + Sync>;

/// A value function that always gives `None`.
pub fn none() -> ValueFn {
    Arc::new(|py| py.None())
}

fn call(py: Python<'_>, w: Waiter, outcome: &Outcome, value: &ValueFn) {
    let error = match outcome {
        Ok(()) => None,
        Err(e) => Some(Error::Shared(e.clone())),
    };
    match w {
        Waiter::Callback(cb) => {
            let err = match error {
                None => py.None(),
                Some(e) => PyErr::from(e).into_value(py).into_any(),
            };
            runtime::call_reporting(py, &cb, (err,));
        }
        Waiter::Bridge(done) => {
            let args = match error {
                None => (value(py), py.None()),
                Some(e) => (py.None(), PyErr::from(e).into_value(py).into_any()),
            };
            runtime::call_reporting(py, &done, args);
        }
    }
}
