//! `dat http DRIVE`: a drive served over HTTP/1.1 (GET and HEAD), the way a static site or a
//! Wikipedia dump is read from a drive: files with byte ranges (`Range: bytes=...`, 206 and 416),
//! folders as `index.html` or a listing, symlinks followed, any older version at `?version=N`.
//! A remote drive is opened sparse, so a request fetches only the metadata its lookup walks and the
//! content blocks of the bytes it returns (a read stream, which prioritizes its range).
//!
//! Each connection gets a thread (at most [`MAX_CONNECTIONS`] at once; more are answered 503) and
//! one request (`Connection: close`). A request head is at most [`MAX_HEAD`] bytes and must arrive
//! within [`READ_TIMEOUT`]. Every request is logged on stderr: method, target, status, bytes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dat_core::Error;
use dat_core::drive::Drive;
use tokio::runtime::Runtime;

use crate::{Failure, exit, session};

/// Connections served at once; one more is answered `503 Service Unavailable`.
pub const MAX_CONNECTIONS: usize = 64;
/// The longest request head (request line and headers) accepted.
pub const MAX_HEAD: usize = 16 * 1024;
/// How long a client may take to send its request head.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// `dat http DRIVE [--listen ADDR] [--peer HOST:PORT]`: serves until killed.
pub fn serve(
    rt: &Runtime,
    store_path: &Path,
    drive_arg: &str,
    listen: &str,
    peer: Option<&str>,
) -> Result<(), Failure> {
    let store = session::store(store_path)?;
    let (drive, _conn) = session::drive(rt, &store, drive_arg, peer, true)?;
    let listener = TcpListener::bind(listen)
        .map_err(|e| Failure::new(exit::NETWORK, format!("cannot listen on {listen}: {e}")))?;
    outln!("key {}", hex::encode(drive.key()));
    outln!("listening http://{}/", listener.local_addr()?);
    let active = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        if active.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
            active.fetch_sub(1, Ordering::AcqRel);
            let _ = respond_text(&mut stream, false, 503, "too many connections; try again\n");
            continue;
        }
        let (d, a) = (drive.clone(), active.clone());
        let spawned = std::thread::Builder::new()
            .name("dat-http".into())
            .spawn(move || {
                connection(&d, stream);
                a.fetch_sub(1, Ordering::AcqRel);
            });
        if let Err(e) = spawned {
            active.fetch_sub(1, Ordering::AcqRel);
            eprintln!("dat http: cannot start a connection thread: {e}");
        }
    }
    Ok(())
}

/// A parsed request: the method, the decoded path, the version asked for, the `Range` header.
#[derive(Debug, PartialEq)]
struct Request {
    head_only: bool,
    path: String,
    version: Option<u64>,
    range: Option<String>,
}

/// Why a request is answered with an error, before any body went out.
#[derive(Debug, PartialEq)]
struct Reply {
    status: u16,
    message: String,
}

impl Reply {
    fn new(status: u16, message: impl Into<String>) -> Reply {
        Reply {
            status,
            message: message.into(),
        }
    }
}

impl From<Error> for Reply {
    fn from(e: Error) -> Reply {
        let status = match &e {
            Error::NotFound(_) | Error::OutOfBounds(_) => 404,
            Error::InvalidArgument(_) => 400,
            Error::Timeout(_) => 504,
            Error::Corrupt(_) | Error::InvalidProof(_) | Error::InvalidSignature(_) => 502,
            _ => 500,
        };
        Reply::new(status, e.to_string())
    }
}

fn connection(drive: &Drive, mut stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
    let head = match read_head(&mut stream) {
        Ok(Some(h)) => h,
        Ok(None) => return,
        Err(r) => {
            let _ = respond_text(&mut stream, false, r.status, &format!("{}\n", r.message));
            eprintln!("dat http: a bad request head -> {}", r.status);
            linger(stream);
            return;
        }
    };
    let target = head.lines().next().unwrap_or_default().to_string();
    let (status, bytes) = match parse_request(&head) {
        Err(r) => {
            let _ = respond_text(&mut stream, false, r.status, &format!("{}\n", r.message));
            (r.status, 0)
        }
        Ok(req) => match handle(drive, &req, &mut stream) {
            Ok(done) => done,
            Err(r) => {
                let body = format!("{}\n", r.message);
                let _ = respond_text(&mut stream, req.head_only, r.status, &body);
                (r.status, 0)
            }
        },
    };
    eprintln!("dat http: {target} -> {status} ({bytes} bytes)");
    linger(stream);
}

/// Ends the answer (FIN) and reads what the client still sends for a moment before closing: a
/// close with unread bytes would reset the connection, and the client could lose the answer.
fn linger(mut stream: TcpStream) {
    let _ = stream.flush();
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut sink = [0u8; 4096];
    let mut left = 1usize << 20;
    while left > 0 {
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
}

/// Reads up to the blank line that ends a request head. `None`: the client went away first.
fn read_head(stream: &mut TcpStream) -> Result<Option<String>, Reply> {
    let mut reader = BufReader::new(stream.take(MAX_HEAD as u64 + 1));
    let mut head = Vec::new();
    loop {
        let before = head.len();
        match reader.read_until(b'\n', &mut head) {
            Ok(0) if head.len() > MAX_HEAD => {
                return Err(Reply::new(431, "the request head is over 16 KiB"));
            }
            Ok(0) => return Ok(None),
            Ok(_) => {}
            Err(_) if head.is_empty() => return Ok(None),
            Err(e) => {
                return Err(Reply::new(
                    408,
                    format!("the request head did not arrive: {e}"),
                ));
            }
        }
        if head.len() > MAX_HEAD {
            return Err(Reply::new(431, "the request head is over 16 KiB"));
        }
        let line = &head[before..];
        if line == b"\r\n" || line == b"\n" {
            break;
        }
    }
    String::from_utf8(head)
        .map(Some)
        .map_err(|_| Reply::new(400, "the request head is not UTF-8"))
}

fn parse_request(head: &str) -> Result<Request, Reply> {
    let mut lines = head.lines();
    let line = lines.next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(proto), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Reply::new(400, format!("a bad request line: {line:?}")));
    };
    if !proto.starts_with("HTTP/1.") {
        return Err(Reply::new(505, format!("{proto} is not HTTP/1.x")));
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => {
            return Err(Reply::new(
                405,
                format!("{method} is not served (GET and HEAD are)"),
            ));
        }
    };
    if !target.starts_with('/') {
        return Err(Reply::new(
            400,
            format!("the target {target:?} is not a path"),
        ));
    }
    let (raw_path, query) = target.split_once('?').unwrap_or((target, ""));
    let path = percent_decode(raw_path)
        .ok_or_else(|| Reply::new(400, format!("the path {raw_path:?} is not valid UTF-8")))?;
    let mut version = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        if let Some(v) = pair.strip_prefix("version=") {
            version =
                Some(v.parse::<u64>().map_err(|_| {
                    Reply::new(400, format!("version={v:?} is not a version number"))
                })?);
        }
    }
    let mut range = None;
    for h in lines {
        if let Some((name, value)) = h.split_once(':')
            && name.trim().eq_ignore_ascii_case("range")
        {
            range = Some(value.trim().to_string());
        }
    }
    Ok(Request {
        head_only,
        path,
        version,
        range,
    })
}

/// `%XX` decoding; `None` for a result that is not UTF-8 (a bad `%` sequence is kept as is).
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Percent-encodes everything but unreserved characters and `/`, for links.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &c in s.as_bytes() {
        if c.is_ascii_alphanumeric() || b"-._~/".contains(&c) {
            out.push(c as char);
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
    out
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// What a `Range` header asks of a file of `size` bytes: `Ok(None)` for the whole file (no header,
/// or one this server ignores as RFC 9110 allows: another unit, several ranges, bad syntax),
/// `Ok(Some((first, last)))` (inclusive), or `Err(())` when it is unsatisfiable (416).
fn byte_range(header: Option<&str>, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = header.and_then(|h| h.strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let num = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (a.is_empty(), num(a), num(b)) {
        // bytes=-N: the last N bytes
        (true, _, Some(n)) if n > 0 && size > 0 => Ok(Some((size - n.min(size), size - 1))),
        (true, _, Some(_)) => Err(()),
        (false, Some(first), _) if first >= size => Err(()),
        (false, Some(first), None) if b.is_empty() => Ok(Some((first, size - 1))),
        (false, Some(first), Some(last)) if last >= first => Ok(Some((first, last.min(size - 1)))),
        _ => Ok(None),
    }
}

/// The media type for a file name, by its extension.
fn content_type(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        "md" => "text/markdown; charset=utf-8",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "pdf" => "application/pdf",
        "wasm" => "application/wasm",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mp3" => "audio/mpeg",
        "ogg" => "audio/ogg",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
}

/// Answers `req`; returns the status and the body bytes sent. An `Err` is answered by the caller
/// (nothing was sent yet).
fn handle(drive: &Drive, req: &Request, out: &mut TcpStream) -> Result<(u16, u64), Reply> {
    let checkout;
    let drive = match req.version {
        Some(v) if v > drive.version() => {
            return Err(Reply::new(
                404,
                format!(
                    "no version {v}: the drive is at version {}",
                    drive.version()
                ),
            ));
        }
        Some(v) => {
            checkout = drive.checkout(v)?;
            &checkout
        }
        None => drive,
    };
    let version = drive.version();
    if !req.path.ends_with('/')
        && let Some((path, entry)) = drive.entry_follow(&req.path)?
        && entry.blob.is_some()
    {
        return send_file(drive, &path, &entry, req, out, version);
    }
    let folder = req.path.trim_end_matches('/');
    let names = drive.readdir(if folder.is_empty() { "/" } else { folder })?;
    if names.is_empty() && !folder.is_empty() {
        return Err(Reply::new(404, format!("nothing at {}", req.path)));
    }
    if !req.path.ends_with('/') {
        let mut to = format!("{}/", percent_encode(&req.path));
        if let Some(v) = req.version {
            to.push_str(&format!("?version={v}"));
        }
        let head = format!(
            "HTTP/1.1 301 Moved Permanently\r\nLocation: {to}\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n"
        );
        out.write_all(head.as_bytes()).map_err(io_reply)?;
        return Ok((301, 0));
    }
    let index = format!("{folder}/index.html");
    if let Some((path, entry)) = drive.entry_follow(&index)?
        && entry.blob.is_some()
    {
        return send_file(drive, &path, &entry, req, out, version);
    }
    let body = listing(drive, folder, &names, req.version)?;
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
         X-Dat-Version: {version}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    out.write_all(head.as_bytes()).map_err(io_reply)?;
    if req.head_only {
        return Ok((200, 0));
    }
    out.write_all(body.as_bytes()).map_err(io_reply)?;
    Ok((200, body.len() as u64))
}

/// A folder's names as an HTML list (sub-folders end with `/`).
fn listing(
    drive: &Drive,
    folder: &str,
    names: &[String],
    version: Option<u64>,
) -> Result<String, Reply> {
    let files: std::collections::HashSet<String> = drive
        .list(if folder.is_empty() { "/" } else { folder }, false)?
        .into_iter()
        .map(|(p, _)| p.rsplit('/').next().unwrap_or_default().to_string())
        .collect();
    let query = version.map(|v| format!("?version={v}")).unwrap_or_default();
    let title = html_escape(&format!("{folder}/"));
    let mut body = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\n\
         <body><h1>{title}</h1>\n<ul>\n"
    );
    if !folder.is_empty() {
        body.push_str(&format!("<li><a href=\"../{query}\">../</a></li>\n"));
    }
    for name in names {
        let shown = if files.contains(name) {
            name.clone()
        } else {
            format!("{name}/")
        };
        body.push_str(&format!(
            "<li><a href=\"{}{query}\">{}</a></li>\n",
            percent_encode(&shown),
            html_escape(&shown)
        ));
    }
    body.push_str("</ul></body></html>\n");
    Ok(body)
}

fn send_file(
    drive: &Drive,
    path: &str,
    entry: &dat_core::drive::Entry,
    req: &Request,
    out: &mut TcpStream,
    version: u64,
) -> Result<(u16, u64), Reply> {
    let size = drive.file_size(entry)?;
    let (status, first, last) = match byte_range(req.range.as_deref(), size) {
        Err(()) => {
            let body = format!("the range {:?} is outside the {size} bytes\n", req.range);
            let head = format!(
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{size}\r\n\
                 Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n",
                body.len()
            );
            out.write_all(head.as_bytes()).map_err(io_reply)?;
            if !req.head_only {
                out.write_all(body.as_bytes()).map_err(io_reply)?;
            }
            return Ok((416, 0));
        }
        Ok(Some((first, last))) => (206, first, last),
        Ok(None) => (200, 0, size.saturating_sub(1)),
    };
    let length = if size == 0 { 0 } else { last - first + 1 };
    let mut head = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {length}\r\nAccept-Ranges: bytes\r\n\
         X-Dat-Version: {version}\r\nConnection: close\r\n",
        if status == 206 {
            "206 Partial Content"
        } else {
            "200 OK"
        },
        content_type(path)
    );
    if status == 206 {
        head.push_str(&format!("Content-Range: bytes {first}-{last}/{size}\r\n"));
    }
    head.push_str("\r\n");
    // open the stream first, so that an error (a missing blob) is still a status line
    let stream = if req.head_only || length == 0 {
        None
    } else {
        Some(drive.read_stream(path, first, Some(last))?)
    };
    out.write_all(head.as_bytes()).map_err(io_reply)?;
    let mut sent = 0u64;
    for chunk in stream.into_iter().flatten() {
        // after the head an error can only end the connection early (the client sees a short
        // body against Content-Length)
        match chunk {
            Ok(c) => {
                if out.write_all(&c).is_err() {
                    break;
                }
                sent += c.len() as u64;
            }
            Err(e) => {
                eprintln!("dat http: reading {path} failed after {sent} bytes: {e}");
                break;
            }
        }
    }
    Ok((status, sent))
}

fn io_reply(e: std::io::Error) -> Reply {
    Reply::new(500, format!("cannot write the answer: {e}"))
}

fn respond_text(
    out: &mut TcpStream,
    head_only: bool,
    status: u16,
    body: &str,
) -> std::io::Result<()> {
    let reason = match status {
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Internal Server Error",
    };
    let allow = if status == 405 {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\n{allow}Content-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    out.write_all(head.as_bytes())?;
    if !head_only {
        out.write_all(body.as_bytes())?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_as_rfc_9110_reads_them() {
        assert_eq!(byte_range(None, 100), Ok(None));
        assert_eq!(byte_range(Some("bytes=0-9"), 100), Ok(Some((0, 9))));
        assert_eq!(byte_range(Some("bytes=90-"), 100), Ok(Some((90, 99))));
        assert_eq!(byte_range(Some("bytes=90-1000"), 100), Ok(Some((90, 99))));
        assert_eq!(byte_range(Some("bytes=-10"), 100), Ok(Some((90, 99))));
        assert_eq!(byte_range(Some("bytes=-1000"), 100), Ok(Some((0, 99))));
        assert_eq!(byte_range(Some("bytes=100-"), 100), Err(()));
        assert_eq!(byte_range(Some("bytes=-0"), 100), Err(()));
        assert_eq!(byte_range(Some("bytes=0-0"), 0), Err(()));
        // ignored: several ranges, another unit, bad syntax, last before first
        assert_eq!(byte_range(Some("bytes=0-1,5-6"), 100), Ok(None));
        assert_eq!(byte_range(Some("items=0-1"), 100), Ok(None));
        assert_eq!(byte_range(Some("bytes=a-b"), 100), Ok(None));
        assert_eq!(byte_range(Some("bytes=9-3"), 100), Ok(None));
        assert_eq!(
            byte_range(Some("bytes=18446744073709551615-"), 100),
            Err(())
        );
        assert_eq!(
            byte_range(Some("bytes=99999999999999999999-"), 100),
            Ok(None)
        );
    }

    #[test]
    fn requests_parse_and_bad_ones_get_their_status() {
        let r = parse_request("GET /a%20b/c.txt?version=3 HTTP/1.1\r\nRange: bytes=1-2\r\n\r\n")
            .unwrap();
        assert_eq!(
            r,
            Request {
                head_only: false,
                path: "/a b/c.txt".into(),
                version: Some(3),
                range: Some("bytes=1-2".into()),
            }
        );
        let status = |h: &str| parse_request(h).unwrap_err().status;
        assert_eq!(status("POST / HTTP/1.1\r\n\r\n"), 405);
        assert_eq!(status("GET / HTTP/2\r\n\r\n"), 505);
        assert_eq!(status("GET /?version=x HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(status("GET http://x/ HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(status("GET /%ff HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(status("GET  / HTTP/1.1\r\n\r\n"), 400);
        assert!(parse_request("HEAD / HTTP/1.0\r\n\r\n").unwrap().head_only);
        assert_eq!(percent_decode("%zz%4"), Some("%zz%4".into()));
        assert_eq!(percent_encode("/a b/é?"), "/a%20b/%C3%A9%3F");
        assert_eq!(
            html_escape("<a href='x'>&"),
            "&lt;a href=&#39;x&#39;&gt;&amp;"
        );
        assert_eq!(content_type("/w/Index.HTML"), "text/html; charset=utf-8");
        assert_eq!(content_type("/noext"), "application/octet-stream");
    }
}
