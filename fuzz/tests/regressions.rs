//! The fuzz targets on stable, without libFuzzer: for every target, every file in
//! `fuzz/regressions/<target>/` and a few thousand deterministic pseudo-random inputs (random bytes
//! and mutations of those files) go through the target function inside `catch_unwind`. A panic,
//! a peak allocation out of proportion to the input, or a run over 10 s fails the target's test
//! and names the input.
//!
//! `fuzz/known-bugs/<target>/` holds inputs that reproduce bugs in dat-core that are reported but
//! not fixed yet (kept out of `regressions/` so that libFuzzer can use `regressions/` as seeds).
//! The ignored test `known_bugs` runs them (`cargo test --manifest-path fuzz/Cargo.toml --
//! --ignored known_bugs`), and a pseudo-random input that panics where one of them panics is
//! counted as a known-bug hit rather than a failure. Once a bug is fixed, move its file to
//! `regressions/<target>/crash-*` so it guards against the bug coming back.
//!
//! `DAT_FUZZ_ITERATIONS=N` changes the number of pseudo-random inputs per target (default 2000).
//! The ignored test `write_seeds` regenerates the `seed-*` files (see `seeds.rs`).

mod seeds;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Once, OnceLock};
use std::time::{Duration, Instant};

use dat_fuzz::{Rng, TARGETS, Target};

// ---------------------------------------------------------------------------------------------
// Allocation accounting: live and peak bytes per thread (each test runs on its own thread).
// ---------------------------------------------------------------------------------------------

struct Counting;

thread_local! {
    static LIVE: Cell<i64> = const { Cell::new(0) };
    static PEAK: Cell<i64> = const { Cell::new(0) };
}

fn account(delta: i64) {
    let _ = LIVE.try_with(|live| {
        let v = live.get() + delta;
        live.set(v);
        let _ = PEAK.try_with(|peak| {
            if v > peak.get() {
                peak.set(v);
            }
        });
    });
}

// SAFETY: every call is forwarded to the system allocator unchanged; only counters are updated.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            account(layout.size() as i64);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            account(layout.size() as i64);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        account(-(layout.size() as i64));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            account(new_size as i64 - layout.size() as i64);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The most an input of `len` bytes may make a target hold at once: generous for the fixed costs
/// (a store, crypto state), far below what an unbounded allocation from a length field asks for.
fn alloc_budget(len: usize) -> i64 {
    (32 << 20) + 16 * len as i64
}

// ---------------------------------------------------------------------------------------------
// Replay
// ---------------------------------------------------------------------------------------------

fn regressions_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("regressions")
        .join(target)
}

fn known_bugs_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("known-bugs")
        .join(target)
}

/// The files in `dir`, sorted (none when it does not exist).
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic payload)".into()
    }
}

thread_local! {
    /// True while a target runs on this thread: its panics are recorded, not printed.
    static IN_TARGET: Cell<bool> = const { Cell::new(false) };
    /// Where and why the last target panic on this thread happened.
    static LAST_PANIC: RefCell<Option<(String, String)>> = const { RefCell::new(None) };
}

/// Records the location of panics inside targets (printing them only with `DAT_FUZZ_VERBOSE`, as
/// thousands of known-bug hits would drown the output); other panics print as usual.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        let verbose = std::env::var_os("DAT_FUZZ_VERBOSE").is_some();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_TARGET.with(Cell::get) {
                return default(info);
            }
            let location = info
                .location()
                .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
                .unwrap_or_default();
            let message = panic_message(info.payload());
            LAST_PANIC.with(|p| *p.borrow_mut() = Some((location, message)));
            if verbose {
                default(info);
            }
        }));
    });
}

/// The longest one input may take (debug build). Far above the milliseconds inputs take, far
/// below what accidentally quadratic handling of a large message costs.
const TIME_BUDGET: Duration = Duration::from_secs(10);

/// Why an input failed.
#[derive(Debug)]
enum Failure {
    /// A panic at a source location.
    Panic { location: String, message: String },
    /// A peak allocation over [`alloc_budget`], or a run over [`TIME_BUDGET`].
    Budget(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Panic { location, message } => write!(f, "panicked at {location}: {message}"),
            Failure::Budget(m) => f.write_str(m),
        }
    }
}

/// Runs one input: `Err` on a panic or an excessive allocation.
fn run_one(target: Target, data: &[u8]) -> Result<(), Failure> {
    install_panic_hook();
    let start = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(start));
    IN_TARGET.with(|t| t.set(true));
    let started = Instant::now();
    let outcome = std::panic::catch_unwind(|| target(data));
    let elapsed = started.elapsed();
    IN_TARGET.with(|t| t.set(false));
    let peak = PEAK.with(Cell::get) - start;
    if let Err(p) = outcome {
        let (location, message) = LAST_PANIC
            .with(|l| l.borrow_mut().take())
            .unwrap_or_else(|| (String::from("?"), panic_message(p.as_ref())));
        return Err(Failure::Panic { location, message });
    }
    if peak > alloc_budget(data.len()) {
        return Err(Failure::Budget(format!(
            "held {peak} bytes at once for a {}-byte input",
            data.len()
        )));
    }
    if elapsed > TIME_BUDGET {
        return Err(Failure::Budget(format!(
            "took {elapsed:?} for a {}-byte input",
            data.len()
        )));
    }
    Ok(())
}

/// The files of `known-bugs/`: (target, target function, path).
fn known_bug_files() -> Vec<(&'static str, Target, PathBuf)> {
    TARGETS
        .iter()
        .flat_map(|(name, f)| {
            files(&known_bugs_dir(name))
                .into_iter()
                .map(move |p| (*name, *f, p))
        })
        .collect()
}

/// The panic locations of the known bugs, found by running their files. A pseudo-random input
/// that panics at one of these is counted as a known-bug hit rather than a failure.
fn known_bug_locations() -> &'static HashSet<String> {
    static LOCATIONS: OnceLock<HashSet<String>> = OnceLock::new();
    LOCATIONS.get_or_init(|| {
        known_bug_files()
            .into_iter()
            .filter_map(|(_, target, path)| {
                let data = std::fs::read(&path).ok()?;
                match run_one(target, &data) {
                    Err(Failure::Panic { location, .. }) => Some(location),
                    _ => None,
                }
            })
            .collect()
    })
}

fn iterations() -> usize {
    std::env::var("DAT_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

/// A deterministic per-target seed (FNV-1a of the name).
fn name_seed(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

const INTERESTING: &[u8] = &[0, 1, 0x7f, 0x80, 0xfc, 0xfd, 0xfe, 0xff];

/// One pseudo-random input: random bytes, or a mutation of one of `corpus`.
fn random_input(rng: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    if corpus.is_empty() || rng.one_in(4) {
        let max = if rng.one_in(8) { 4096 } else { 160 };
        let len = rng.below(max) as usize;
        return (0..len).map(|_| rng.next_u64() as u8).collect();
    }
    let mut v = corpus[rng.below(corpus.len() as u64) as usize].clone();
    for _ in 0..=rng.below(4) {
        let len = v.len() as u64;
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len) as usize;
                v[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len) as usize;
                v[i] = INTERESTING[rng.below(INTERESTING.len() as u64) as usize];
            }
            2 if len > 0 => v.truncate(rng.below(len) as usize),
            3 if len > 0 => {
                let a = rng.below(len) as usize;
                let b = (a + 1 + rng.below(16) as usize).min(v.len());
                v.drain(a..b);
            }
            4 => {
                let at = rng.below(len + 1) as usize;
                let n = 1 + rng.below(8) as usize;
                let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                v.splice(at..at, bytes);
            }
            5 if len > 0 => {
                let a = rng.below(len) as usize;
                let b = (a + 1 + rng.below(64) as usize).min(v.len());
                let at = rng.below(len + 1) as usize;
                let dup = v[a..b].to_vec();
                v.splice(at..at, dup);
            }
            6 => {
                let other = &corpus[rng.below(corpus.len() as u64) as usize];
                let cut = rng.below(len + 1) as usize;
                let from = rng.below(other.len() as u64 + 1) as usize;
                v.truncate(cut);
                v.extend_from_slice(&other[from..]);
            }
            _ if len >= 8 => {
                // overwrite 8 bytes with a little-endian extreme (lengths, indexes)
                let i = rng.below(len - 7) as usize;
                let x = [u64::MAX, u64::MAX >> 1, 1 << 32, 1 << 24, 0][rng.below(5) as usize];
                v[i..i + 8].copy_from_slice(&x.to_le_bytes());
            }
            _ => v.push(rng.next_u64() as u8),
        }
    }
    v
}

/// Replays a target's regression files and pseudo-random inputs; panics listing every failure.
fn replay(name: &str) {
    let target = TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
        .unwrap_or_else(|| panic!("no target {name}"));
    let dir = regressions_dir(name);
    let mut failures = Vec::new();
    let mut corpus = Vec::new();
    for path in files(&dir) {
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if let Err(e) = run_one(target, &data) {
            failures.push(format!("{}: {e}", path.display()));
        }
        corpus.push(data);
    }
    assert!(
        !corpus.is_empty(),
        "{} holds no regression inputs",
        dir.display()
    );
    let known_locations = known_bug_locations();
    let mut rng = Rng::new(name_seed(name));
    let n = iterations();
    let mut known_hits = 0;
    for i in 0..n {
        let data = random_input(&mut rng, &corpus);
        match run_one(target, &data) {
            Ok(()) => {}
            Err(Failure::Panic { location, .. }) if known_locations.contains(&location) => {
                known_hits += 1;
            }
            Err(e) => {
                let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
                failures.push(format!("{name}: pseudo-random input #{i} ({hex}): {e}"));
                if failures.len() >= 5 {
                    break;
                }
            }
        }
    }
    eprintln!(
        "{name}: {} regression files, {n} pseudo-random inputs ({known_hits} hit known bugs)",
        corpus.len()
    );
    assert!(
        failures.is_empty(),
        "{name}: {} failing inputs:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

macro_rules! targets {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                replay(stringify!($name));
            }
        )*

        /// The test list above, the target list, the bins and the folders agree.
        #[test]
        fn every_target_is_replayed() {
            let tested = [$(stringify!($name)),*];
            let listed: Vec<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
            assert_eq!(tested.to_vec(), listed, "tests/regressions.rs and TARGETS disagree");
            check_layout(&listed);
        }
    };
}

targets!(
    framing,
    protomux,
    messages,
    channel_handshake,
    data,
    proof_generate,
    manifest,
    noise,
    secret_stream,
    transport,
    connection,
);

fn check_layout(targets: &[&str]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("Cargo.toml");
    for t in targets {
        let bin = root.join("fuzz_targets").join(format!("{t}.rs"));
        let src =
            std::fs::read_to_string(&bin).unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
        assert!(
            src.contains(&format!("dat_fuzz::{t}(data)")),
            "{} does not call dat_fuzz::{t}",
            bin.display()
        );
        assert!(
            manifest.contains(&format!("name = \"{t}\"\npath = \"fuzz_targets/{t}.rs\"")),
            "Cargo.toml has no [[bin]] for {t}"
        );
        assert!(regressions_dir(t).is_dir(), "no regressions/{t}/");
    }
    for dir in ["fuzz_targets", "regressions", "known-bugs"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for e in entries {
            let path = e.expect("dir entry").path();
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default();
            if stem.starts_with('.') || stem == "README" {
                continue;
            }
            assert!(
                targets.contains(&stem),
                "{} belongs to no target",
                path.display()
            );
        }
    }
}

/// Replays `known-bugs/`: fails while any of them still panics. Ignored so that known, reported
/// bugs do not fail `make test`; run it with `-- --ignored known_bugs`.
#[test]
#[ignore = "reproduces reported, unfixed dat-core bugs (fuzz/known-bugs/)"]
fn known_bugs() {
    let mut still = Vec::new();
    let mut fixed = Vec::new();
    for (_, target, path) in known_bug_files() {
        let data = std::fs::read(&path).expect("read");
        match run_one(target, &data) {
            Ok(()) => fixed.push(path.display().to_string()),
            Err(e) => still.push(format!("{}: {e}", path.display())),
        }
    }
    if !fixed.is_empty() {
        eprintln!(
            "fixed (move them to regressions/<target>/crash-*):\n{}",
            fixed.join("\n")
        );
    }
    assert!(
        still.is_empty(),
        "{} known bugs still reproduce:\n{}",
        still.len(),
        still.join("\n")
    );
}

/// Regenerates the `seed-*` files of every target from the golden vectors (see `seeds.rs`).
#[test]
#[ignore = "writes files; run with -- --ignored write_seeds"]
fn write_seeds() {
    for (target, files) in seeds::all() {
        let dir = regressions_dir(target);
        std::fs::create_dir_all(&dir).expect("mkdir");
        for (name, bytes) in files {
            assert!(name.starts_with("seed-"), "{name}");
            std::fs::write(dir.join(name), bytes).expect("write seed");
        }
    }
}

/// The seed files on disk are what `seeds.rs` makes (so they do not drift from the generator).
#[test]
fn seeds_are_current() {
    for (target, files) in seeds::all() {
        for (name, bytes) in files {
            let path = regressions_dir(target).join(&name);
            let on_disk = std::fs::read(&path).unwrap_or_default();
            assert!(
                on_disk == bytes,
                "{} is stale; run `cargo test --manifest-path fuzz/Cargo.toml -- --ignored write_seeds`",
                path.display()
            );
        }
    }
}
