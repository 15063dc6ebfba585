//! libdat's Node addon (`require('libdat')`): the native half of the npm package in this folder.
//!
//! Every class here wraps a `dat-core` object and only converts types, maps errors and bridges
//! async: calls that may block (LMDB commits, waits for peers) run on the tokio runtime napi-rs
//! owns (`async fn` → `Promise`, blocking work on its blocking pool), never on the JavaScript
//! thread. Streams of values (entries, changes, diffs, chunks, events) are native iterators with
//! a bounded buffer; `index.js` turns them into async iterators and `Readable`s, and adds the
//! `EventEmitter` side. Errors are `Error`s whose message starts with a stable code
//! (`ENOENT: ...`); `index.js` copies that code to `err.code`.
#![deny(missing_docs)]

mod drive;
mod error;
mod feed;
mod life;
mod log;
mod store;
