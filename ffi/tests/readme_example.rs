//! The README's drive example in C is `tests/c/example_readme.c`, which the C suite compiles
//! into `test_drive.c` and runs (against libdat.so, libdat.a and under valgrind): the README's
//! block must be that file, verbatim.

use std::path::Path;

const MARKER: &str = "<!-- tests/c/example_readme.c -->";

#[test]
fn the_readme_c_example_is_tests_c_example_readme_c() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let file = std::fs::read_to_string(root.join("tests/c/example_readme.c")).unwrap();
    let at = readme
        .find(MARKER)
        .unwrap_or_else(|| panic!("README.md has no {MARKER} line before the drive example"));
    let rest = &readme[at + MARKER.len()..];
    let open = rest.find("```c\n").expect("a ```c block after the marker");
    let body = &rest[open + "```c\n".len()..];
    let close = body.find("\n```\n").expect("the block's closing fence");
    let block = &body[..close + 1];
    assert!(
        block == file,
        "the README's C drive example differs from tests/c/example_readme.c: copy the file into \
         the block after {MARKER}"
    );
}
