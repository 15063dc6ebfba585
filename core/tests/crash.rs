//! Crash safety: a writer process is killed with SIGKILL at random moments; after each kill the
//! store reopens, every acknowledged append is there, and every block verifies.
//!
//! The writer is this test binary re-run with `--ignored --exact crash_child_writer`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use dat_core::{Durability, Store, StoreOptions};

const DIR_ENV: &str = "DAT_CRASH_DIR";
const SYNC_ENV: &str = "DAT_CRASH_NOSYNC";

/// Content of block `i`: deterministic, sizes from 0 bytes to 64 KiB.
fn block(i: u64) -> Vec<u8> {
    let len = match i % 11 {
        0 => 0,
        5 => 65536,
        n => (n * 97 + i % 13) as usize,
    };
    (0..len).map(|j| (i as usize * 31 + j) as u8).collect()
}

/// Batches are cut at deterministic places so that the length after any commit is known.
fn batch_len(start: u64) -> u64 {
    1 + (start * 7 + 3) % 9
}

fn batch_boundaries(up_to: u64) -> Vec<u64> {
    let mut out = vec![0];
    let mut l = 0;
    while l < up_to {
        l += batch_len(l);
        out.push(l);
    }
    out
}

#[test]
#[ignore = "runs only as the child process of crash_safety_under_sigkill"]
fn crash_child_writer() {
    let Ok(dir) = std::env::var(DIR_ENV) else {
        return;
    };
    let durability = if std::env::var(SYNC_ENV).is_ok() {
        Durability::NoSync
    } else {
        Durability::Full
    };
    let store = Store::open_with(
        &dir,
        StoreOptions {
            durability,
            ..Default::default()
        },
    )
    .unwrap();
    let log = store.named_log("crash").unwrap();
    let mut out = std::io::stdout().lock();
    loop {
        let start = log.length();
        let blocks: Vec<Vec<u8>> = (start..start + batch_len(start)).map(block).collect();
        let (len, _) = log.append_batch(&blocks).unwrap();
        writeln!(out, "ack {len}").unwrap();
        out.flush().unwrap();
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn crash_safety_under_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let trials = 60;
    let mut acked = 0u64;
    for trial in 0..trials {
        let mut cmd = Command::new(&exe);
        cmd.args([
            "--ignored",
            "--exact",
            "crash_child_writer",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DIR_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
        if trial % 5 == 4 {
            cmd.env(SYNC_ENV, "1");
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        // kill after a random number of acknowledged appends; the next append is mid-flight
        let target = 1 + rng.next() % 25;
        let mut seen = 0;
        while seen < target {
            let Some(Ok(line)) = lines.next() else { break };
            if let Some(n) = line.strip_prefix("ack ") {
                acked = n.parse().unwrap();
                seen += 1;
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // anything printed before the kill was acknowledged too
        for line in lines.map_while(Result::ok) {
            if let Some(n) = line.strip_prefix("ack ") {
                acked = n.parse().unwrap();
            }
        }

        let store =
            Store::open(dir.path()).unwrap_or_else(|e| panic!("trial {trial}: reopen failed: {e}"));
        let log = store.named_log("crash").unwrap();
        let len = log.length();
        assert!(
            len >= acked,
            "trial {trial}: acknowledged length {acked} but reopened at {len}"
        );
        assert!(
            batch_boundaries(len).contains(&len),
            "trial {trial}: length {len} is not on a batch boundary (a partial batch survived)"
        );
        for i in 0..len {
            assert_eq!(log.get(i).unwrap(), block(i), "trial {trial}: block {i}");
        }
        let mut expected = 0;
        for i in 0..len {
            expected += block(i).len() as u64;
        }
        assert_eq!(log.byte_length(), expected);
    }
    assert!(
        acked > trials as u64,
        "the writer made progress ({acked} blocks)"
    );
}
