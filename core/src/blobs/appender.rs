//! Appends a blob writer's batches on a thread of their own, so that a large file's next batch is
//! read and cut while the previous one is hashed, signed and stored.
//!
//! The writer hashes a batch's blocks before it hands the batch over, so the hashing of one batch
//! runs while the batch before it is written and synced (the commit's fsync is most of a large
//! import's time with `Durability::Full`).
//!
//! At most one batch is in flight: the writer hands over a full batch, takes back the buffers of
//! the batch before it (once that one is stored) and fills them again. Memory stays at two
//! batches. An error comes back with the next hand-over or with [`Appender::wait`].

use std::sync::mpsc;
use std::thread::JoinHandle;

use crate::crypto::Hash;
use crate::error::{Error, Result};
use crate::log::Log;

/// One batch: blocks back to back, where each ends, their leaf hashes, and the log length it must
/// start at.
pub(super) struct Batch {
    pub(super) data: Vec<u8>,
    pub(super) ends: Vec<usize>,
    pub(super) hashes: Vec<Hash>,
    pub(super) start: u64,
}

impl Batch {
    pub(super) fn blocks(&self) -> Vec<&[u8]> {
        let mut start = 0;
        self.ends
            .iter()
            .map(|&end| {
                let b = &self.data[start..end];
                start = end;
                b
            })
            .collect()
    }
}

/// What the thread sends back: the outcome and the emptied buffers.
struct Done {
    result: Result<()>,
    data: Vec<u8>,
    ends: Vec<usize>,
}

pub(super) struct Appender {
    jobs: Option<mpsc::SyncSender<Batch>>,
    done: mpsc::Receiver<Done>,
    thread: Option<JoinHandle<()>>,
    in_flight: bool,
}

impl Appender {
    pub(super) fn start(log: Log) -> Result<Appender> {
        let (jobs, job_rx) = mpsc::sync_channel::<Batch>(1);
        let (done_tx, done) = mpsc::sync_channel::<Done>(1);
        let thread = std::thread::Builder::new()
            .name("dat-blob-append".into())
            .spawn(move || {
                for mut batch in job_rx {
                    let result = append(&log, &batch);
                    batch.data.clear();
                    batch.ends.clear();
                    let done = Done {
                        result,
                        data: batch.data,
                        ends: batch.ends,
                    };
                    if done_tx.send(done).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Appender {
            jobs: Some(jobs),
            done,
            thread: Some(thread),
            in_flight: false,
        })
    }

    /// Hands `batch` over after the one in flight (if any) is stored; returns that one's emptied
    /// buffers for the next batch (empty ones the first time).
    pub(super) fn send(&mut self, batch: Batch) -> Result<(Vec<u8>, Vec<usize>)> {
        let spare = self.wait()?;
        let jobs = self.jobs.as_ref().ok_or_else(stopped)?;
        jobs.send(batch).map_err(|_| stopped())?;
        self.in_flight = true;
        Ok(spare)
    }

    /// Waits until the batch in flight (if any) is stored; returns its emptied buffers.
    pub(super) fn wait(&mut self) -> Result<(Vec<u8>, Vec<usize>)> {
        if !self.in_flight {
            return Ok((Vec::new(), Vec::new()));
        }
        self.in_flight = false;
        let done = self.done.recv().map_err(|_| stopped())?;
        done.result?;
        Ok((done.data, done.ends))
    }
}

impl Drop for Appender {
    /// Lets the batch in flight finish (the blob's write lock is held until it has) and stops
    /// the thread.
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The error of a blob writer that finds the log longer than its own appends made it.
pub(super) fn conflict() -> Error {
    Error::Conflict(
        "the blobs log was appended to outside this blob writer; write blobs through one `Blobs` \
         per log"
            .into(),
    )
}

fn append(log: &Log, batch: &Batch) -> Result<()> {
    if log.length() != batch.start {
        return Err(conflict());
    }
    let (length, _) = log.append_batch_hashed(&batch.blocks(), &batch.hashes)?;
    if length != batch.start + batch.ends.len() as u64 {
        return Err(conflict());
    }
    Ok(())
}

fn stopped() -> Error {
    Error::Io(std::io::Error::other("the blob append thread stopped"))
}
