//! The README's `dat` example (the fenced block after `<!-- cli-example -->`) runs as written,
//! with the built `dat` on PATH, in a temporary folder.

use std::process::Command;

#[test]
fn the_readme_cli_example_runs() {
    let readme = include_str!("../../README.md");
    let start = readme
        .find("<!-- cli-example -->")
        .expect("the README marks its dat example");
    let block = &readme[start..];
    let open = block.find("```sh\n").expect("a sh block") + 6;
    let close = block[open..].find("```").expect("the block ends") + open;
    let script = &block[open..close];
    let dir = tempfile::tempdir().unwrap();
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_dat"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(dir.path())
        .env("PATH", path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the README example failed:\n{script}\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("hello from a shared folder"), "{stdout}");
}
