//! The library thread that runs completion callbacks (`dat_done_cb`).
//!
//! One thread, "dat-callback", started on first use, runs them one at a time in the order their
//! ranges completed. It is neither a runtime worker nor the thread that completed the range (a
//! connection task, or the caller's own thread inside `dat_pump_receive`), so a callback may block
//! or call any libdat function without stalling replication or re-entering a lock.

use std::sync::Mutex;
use std::sync::mpsc::{Sender, channel};

type Job = Box<dyn FnOnce() + Send>;

static QUEUE: Mutex<Option<Sender<Job>>> = Mutex::new(None);

/// Runs `job` on the callback thread.
pub(crate) fn dispatch(job: Job) {
    let mut queue = QUEUE.lock().unwrap_or_else(|p| p.into_inner());
    let job = match queue.as_ref() {
        None => job,
        Some(q) => match q.send(job) {
            Ok(()) => return,
            // the thread is gone (it cannot be, short of a failure to start it): start a new one
            Err(e) => e.0,
        },
    };
    let (tx, rx) = channel::<Job>();
    let started = std::thread::Builder::new()
        .name("dat-callback".into())
        .spawn(move || {
            while let Ok(job) = rx.recv() {
                // a panic inside libdat's part of a job must not end the thread
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            }
        });
    match started {
        Ok(_) => {
            let _ = tx.send(job);
            *queue = Some(tx);
        }
        // no thread can be started: run it here rather than lose it
        Err(_) => {
            drop(queue);
            job();
        }
    }
}
