//! Random access to a file of a drive: a byte cursor (`dat_cursor`) and a read stream over a byte
//! range (`dat_read_stream`).

use std::ffi::c_char;

use dat_core::drive::{Cursor, ReadStream};

use crate::drive::{dat_drive, drive_ref, path_arg};
use crate::handle::{Castable, OwnershipBox, box_handle, free_box, out_ref, try_mut, try_ref};
use crate::panic::{catch_or, catch_status};
use crate::status::{Failure, dat_status};

/// Copies `bytes` into the caller's `buf` (at least `bytes.len()` long, checked by the caller).
///
/// # Safety
/// `buf` points at `bytes.len()` writable bytes (it may be NULL when `bytes` is empty).
unsafe fn copy_out(buf: *mut u8, bytes: &[u8]) {
    // nothing to copy: `buf` may be NULL
    if bytes.is_empty() {
        return;
    }
    // SAFETY: per the contract; a caller buffer cannot overlap libdat's own bytes.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf, bytes.len()) };
}

// ---------------------------------------------------------------------------------- cursor

/// A byte cursor on one file (as it was when the cursor was opened): seek anywhere, read, tell.
/// On a remote drive a read fetches the block it lands on first and prefetches about 1 MiB ahead;
/// a seek moves that window. Use it from one thread at a time. It keeps what it reads from alive
/// after its drive handle is freed.
pub struct dat_cursor {
    _private: [u8; 0],
}

impl Castable for dat_cursor {
    type Ownership = OwnershipBox;
    type RustType = Cursor;
}

fn cursor_mut<'a>(cursor: *mut dat_cursor) -> Result<&'a mut Cursor, Failure> {
    // SAFETY: `cursor` is NULL or a live cursor handle used by one thread at a time.
    unsafe { try_mut(cursor, "cursor") }
}

/// Opens a cursor at byte 0 of the file `path` (symlinks are followed) and writes its handle to
/// `*out`. No file there gives `DAT_NOT_FOUND`.
#[unsafe(no_mangle)]
pub extern "C" fn dat_cursor_open(
    drive: *const dat_drive,
    path: *const c_char,
    out: *mut *mut dat_cursor,
) -> dat_status {
    catch_status(|| {
        let drive = drive_ref(drive)?;
        let path = path_arg(path, "path")?;
        let out = out_ref(out, "out")?;
        let cursor = drive.cursor(path)?;
        out.write(box_handle(cursor));
        Ok(())
    })
}

/// Moves the cursor to byte `pos` (0 ..= the file's size; past it gives `DAT_OUT_OF_BOUNDS`).
#[unsafe(no_mangle)]
pub extern "C" fn dat_cursor_seek(cursor: *mut dat_cursor, pos: u64) -> dat_status {
    catch_status(|| {
        let cursor = cursor_mut(cursor)?;
        cursor.seek_to(pos)?;
        Ok(())
    })
}

/// Reads up to `len` bytes from the cursor's position into `buf` and advances it; `*out_read`
/// gets the number read: `len`, or fewer at the end of the file (0 there). `buf` may be NULL
/// when `len` is 0. On a remote drive this blocks until the bytes arrive, for at most the drive's
/// timeout.
#[unsafe(no_mangle)]
pub extern "C" fn dat_cursor_read(
    cursor: *mut dat_cursor,
    buf: *mut u8,
    len: usize,
    out_read: *mut usize,
) -> dat_status {
    catch_status(|| {
        let cursor = cursor_mut(cursor)?;
        if buf.is_null() && len > 0 {
            return Err(Failure::null("buf"));
        }
        let out_read = out_ref(out_read, "out_read")?;
        let want = (len as u64).min(cursor.len() - cursor.tell());
        let bytes = if want == 0 {
            Vec::new()
        } else {
            // advances the position by the bytes read
            cursor.read_bytes(want as usize)?
        };
        // SAFETY: `buf` points at `len` writable bytes (header contract) and `bytes` is at most
        // `len` long.
        unsafe { copy_out(buf, &bytes) };
        out_read.write(bytes.len());
        Ok(())
    })
}

/// Writes the cursor's position (bytes from the start of the file) to `*out`.
#[unsafe(no_mangle)]
pub extern "C" fn dat_cursor_tell(cursor: *const dat_cursor, out: *mut u64) -> dat_status {
    catch_status(|| {
        // SAFETY: `cursor` is NULL or a live cursor handle.
        let cursor = unsafe { try_ref(cursor, "cursor") }?;
        out_ref(out, "out")?.write(cursor.tell());
        Ok(())
    })
}

/// Writes the file's size in bytes to `*out`.
#[unsafe(no_mangle)]
pub extern "C" fn dat_cursor_len(cursor: *const dat_cursor, out: *mut u64) -> dat_status {
    catch_status(|| {
        // SAFETY: `cursor` is NULL or a live cursor handle.
        let cursor = unsafe { try_ref(cursor, "cursor") }?;
        out_ref(out, "out")?.write(cursor.len());
        Ok(())
    })
}

/// Frees a cursor (its prefetching stops). NULL is ignored.
#[unsafe(no_mangle)]
pub extern "C" fn dat_cursor_free(cursor: *mut dat_cursor) {
    catch_or((), || {
        // SAFETY: `cursor` is NULL or a live cursor handle, freed once (header contract).
        unsafe { free_box(cursor) }
    })
}

// ----------------------------------------------------------------------------- read stream

/// The bytes of a range of one file, delivered chunk by chunk into the caller's buffer. On a
/// remote drive the whole range is prioritized (in order) while the stream lives. Use it from one
/// thread at a time.
pub struct dat_read_stream {
    _private: [u8; 0],
}

impl Castable for dat_read_stream {
    type Ownership = OwnershipBox;
    type RustType = StreamHandle;
}

/// What a `dat_read_stream` points at: the stream and the part of its last chunk not yet handed
/// out (the caller's buffer may be smaller than a chunk).
pub(crate) struct StreamHandle {
    stream: ReadStream,
    pending: Vec<u8>,
    at: usize,
    finished: bool,
}

/// Opens a stream over bytes `start ..= end_inclusive` of the file `path` (symlinks are
/// followed); `end_inclusive` `UINT64_MAX` (or any value past the end) reads to the end of the
/// file, and one below `start` gives an empty stream. Writes its handle to `*out`. No file there
/// gives `DAT_NOT_FOUND`; a `start` past the file's size `DAT_OUT_OF_BOUNDS`.
#[unsafe(no_mangle)]
pub extern "C" fn dat_read_stream_open(
    drive: *const dat_drive,
    path: *const c_char,
    start: u64,
    end_inclusive: u64,
    out: *mut *mut dat_read_stream,
) -> dat_status {
    catch_status(|| {
        let drive = drive_ref(drive)?;
        let path = path_arg(path, "path")?;
        let out = out_ref(out, "out")?;
        let end = (end_inclusive != u64::MAX).then_some(end_inclusive);
        let stream = drive.read_stream(path, start, end)?;
        out.write(box_handle(StreamHandle {
            stream,
            pending: Vec::new(),
            at: 0,
            finished: false,
        }));
        Ok(())
    })
}

/// Writes the next bytes of the range into `buf` (at most `len`, at most one chunk of 64 KiB),
/// their number to `*out_written`, and to `*out_done` whether the range is now read entirely
/// (then this call's bytes are the last; later calls write 0 bytes and done). Call it until
/// done. `len` 0 gives `DAT_BUFFER_TOO_SMALL` while bytes remain. On a remote drive this blocks
/// until the bytes arrive, for at most the drive's timeout.
#[unsafe(no_mangle)]
pub extern "C" fn dat_read_stream_next(
    stream: *mut dat_read_stream,
    buf: *mut u8,
    len: usize,
    out_written: *mut usize,
    out_done: *mut bool,
) -> dat_status {
    catch_status(|| {
        // SAFETY: `stream` is NULL or a live stream handle used by one thread at a time.
        let s = unsafe { try_mut(stream, "stream") }?;
        if buf.is_null() {
            return Err(Failure::null("buf"));
        }
        let out_written = out_ref(out_written, "out_written")?;
        let out_done = out_ref(out_done, "out_done")?;
        if s.at == s.pending.len() && !s.finished {
            match s.stream.next() {
                None => s.finished = true,
                Some(chunk) => {
                    s.pending = chunk?;
                    s.at = 0;
                }
            }
        }
        let left = s.pending.len() - s.at;
        if left > 0 && len == 0 {
            return Err(Failure::new(
                dat_status::DAT_BUFFER_TOO_SMALL,
                "the buffer has 0 bytes and the stream has more",
            ));
        }
        let n = left.min(len);
        // SAFETY: `buf` points at `len` writable bytes (header contract); `n` is at most `len`.
        unsafe { copy_out(buf, &s.pending[s.at..s.at + n]) };
        s.at += n;
        if s.at == s.pending.len() {
            s.pending = Vec::new();
            s.at = 0;
            if s.stream.remaining() == 0 {
                s.finished = true;
            }
        }
        out_written.write(n);
        out_done.write(s.finished);
        Ok(())
    })
}

/// Frees a read stream (its range is no longer prioritized). NULL is ignored.
#[unsafe(no_mangle)]
pub extern "C" fn dat_read_stream_free(stream: *mut dat_read_stream) {
    catch_or((), || {
        // SAFETY: `stream` is NULL or a live stream handle, freed once (header contract).
        unsafe { free_box(stream) }
    })
}
