//! `dat`: share a folder as a drive and read it from another peer.

/// `println!` that ends the program quietly when stdout is closed (`dat log | head`).
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let mut o = std::io::stdout().lock();
        if let Err(e) = writeln!(o, $($t)*) {
            $crate::stdout_failed(e)
        }
    }};
}

/// Stdout failed: a closed pipe ends the program with success, anything else is reported.
pub fn stdout_failed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("dat: cannot write to stdout: {e}");
    std::process::exit(exit::ERROR as i32)
}

mod http;
mod import;
mod progress;
mod read;
mod session;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Share folders as versioned, verified drives (Hyperdrive 13 compatible) and read them from
/// other peers.
#[derive(Parser, Debug)]
#[command(name = "dat", version, about, propagate_version = true)]
struct Cli {
    /// The store holding drives (default: $XDG_DATA_HOME/libdat, or ~/.local/share/libdat).
    #[arg(long, global = true, value_name = "PATH")]
    store: Option<PathBuf>,
    /// Print listings as JSON lines.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Import a folder into a drive (only changed files make new versions) and serve it.
    Share {
        /// The folder to share.
        dir: PathBuf,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
        /// Re-import when the folder changes (checked every second).
        #[arg(long)]
        watch: bool,
        /// Import and exit without serving.
        #[arg(long)]
        no_serve: bool,
    },
    /// Download a drive into a folder.
    Clone {
        /// The drive key (64 hex characters).
        key: String,
        /// The folder to write.
        dest: PathBuf,
        /// A peer serving the drive (HOST:PORT).
        #[arg(long)]
        peer: String,
        /// Fetch only the metadata (the file list), not the contents.
        #[arg(long)]
        sparse: bool,
    },
    /// Print a file, or a byte range of it, fetching only the blocks it needs.
    Cat {
        /// The drive key, or a shared folder.
        drive: String,
        /// The file.
        path: String,
        /// First byte.
        #[arg(long)]
        start: Option<u64>,
        /// Last byte (inclusive).
        #[arg(long)]
        end: Option<u64>,
        /// A peer serving the drive.
        #[arg(long)]
        peer: Option<String>,
        /// Report on stderr how many blocks were fetched.
        #[arg(long)]
        stats: bool,
    },
    /// List the files of a drive.
    Ls {
        /// The drive key, or a shared folder.
        drive: String,
        /// The folder to list.
        #[arg(default_value = "/")]
        folder: String,
        /// A peer serving the drive.
        #[arg(long)]
        peer: Option<String>,
    },
    /// The changes of a drive, newest first, with versions.
    Log {
        /// The drive key, or a shared folder.
        drive: String,
        /// A peer serving the drive.
        #[arg(long)]
        peer: Option<String>,
        /// After the log, wait for new changes and print them as they come (oldest first).
        #[arg(long)]
        follow: bool,
        /// Stop following after this many new changes.
        #[arg(long)]
        count: Option<usize>,
    },
    /// Write the drive as it was at a version into a folder.
    Checkout {
        /// The drive key, or a shared folder.
        drive: String,
        /// The version.
        #[arg(value_name = "VERSION")]
        at: u64,
        /// The folder to write.
        dest: PathBuf,
        /// A peer serving the drive.
        #[arg(long)]
        peer: Option<String>,
    },
    /// What differs between two versions of a drive (A and B are versions), or between two
    /// drives (A and B are keys or shared folders).
    Diff {
        /// A drive (key or shared folder).
        drive: String,
        /// A version of it, or another drive.
        a: String,
        /// Another version (when A is a version).
        b: Option<String>,
        /// A peer serving the drive(s).
        #[arg(long)]
        peer: Option<String>,
    },
    /// The versions at which a file changed.
    History {
        /// The drive key, or a shared folder.
        drive: String,
        /// The file.
        path: String,
        /// A peer serving the drive.
        #[arg(long)]
        peer: Option<String>,
    },
    /// Serve a drive over HTTP (GET and HEAD): files with byte ranges, folders as index.html or
    /// a listing, older versions at ?version=N. A remote drive fetches only what requests need.
    Http {
        /// The drive key, or a shared folder.
        drive: String,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// A peer serving the drive.
        #[arg(long)]
        peer: Option<String>,
    },
    /// Key, discovery key, version, sizes and peers of a drive.
    Info {
        /// The drive key, or a shared folder.
        drive: String,
        /// A peer serving the drive.
        #[arg(long)]
        peer: Option<String>,
    },
}

/// A failure with the exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    pub(crate) code: u8,
    pub(crate) message: String,
}

impl Failure {
    /// A failure with exit code `code`.
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
        }
    }
}

/// Exit codes (also in `dat --help`'s epilogue and the README).
pub mod exit {
    /// Anything else (I/O, storage, disk full).
    pub const ERROR: u8 = 1;
    /// A bad argument (clap also uses 2 for usage errors).
    pub const USAGE: u8 = 2;
    /// No such drive, file or version.
    pub const NOT_FOUND: u8 = 3;
    /// A peer could not be reached, or did not answer in time.
    pub const NETWORK: u8 = 4;
    /// Data failed verification (a corrupt store, a lying peer).
    pub const CORRUPT: u8 = 5;
}

impl From<dat_core::Error> for Failure {
    fn from(e: dat_core::Error) -> Self {
        use dat_core::Error as E;
        let code = match &e {
            E::NotFound(_) | E::OutOfBounds(_) => exit::NOT_FOUND,
            E::Timeout(_) | E::Handshake(_) | E::Protocol(_) => exit::NETWORK,
            E::InvalidArgument(_) => exit::USAGE,
            E::Corrupt(_) | E::InvalidProof(_) | E::InvalidSignature(_) => exit::CORRUPT,
            E::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => exit::NETWORK,
            _ => exit::ERROR,
        };
        let message = match &e {
            E::Io(io) if io.raw_os_error() == Some(28) => {
                format!("the disk is full ({io})")
            }
            _ => e.to_string(),
        };
        Failure { code, message }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        dat_core::Error::Io(e).into()
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("dat: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    let store_path = match cli.store {
        Some(p) => p,
        None => session::default_store()?,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let json = cli.json;
    match cli.command {
        Command::Share {
            dir,
            listen,
            watch,
            no_serve,
        } => import::share(&rt, &store_path, &dir, &listen, watch, no_serve),
        Command::Clone {
            key,
            dest,
            peer,
            sparse,
        } => read::clone(&rt, &store_path, &key, &dest, &peer, sparse, json),
        Command::Cat {
            drive,
            path,
            start,
            end,
            peer,
            stats,
        } => read::cat(
            &rt,
            &store_path,
            &drive,
            &path,
            start,
            end,
            peer.as_deref(),
            stats,
        ),
        Command::Ls {
            drive,
            folder,
            peer,
        } => read::ls(&rt, &store_path, &drive, &folder, peer.as_deref(), json),
        Command::Log {
            drive,
            peer,
            follow,
            count,
        } => read::log(
            &rt,
            &store_path,
            &drive,
            peer.as_deref(),
            follow,
            count,
            json,
        ),
        Command::Checkout {
            drive,
            at,
            dest,
            peer,
        } => read::checkout(&rt, &store_path, &drive, at, &dest, peer.as_deref()),
        Command::Diff { drive, a, b, peer } => read::diff(
            &rt,
            &store_path,
            &drive,
            &a,
            b.as_deref(),
            peer.as_deref(),
            json,
        ),
        Command::History { drive, path, peer } => {
            read::history(&rt, &store_path, &drive, &path, peer.as_deref(), json)
        }
        Command::Http {
            drive,
            listen,
            peer,
        } => http::serve(&rt, &store_path, &drive, &listen, peer.as_deref()),
        Command::Info { drive, peer } => {
            read::info(&rt, &store_path, &drive, peer.as_deref(), json)
        }
    }
}
