//! Every `extern "C" fn` in `ffi/src` must run its body inside the panic boundary
//! (`catch_status` or `catch_or`, see `src/panic.rs`): its body's first statement calls one of
//! them. A panic unwinding into C aborts the host process.

use std::path::Path;

const BOUNDARY: &[&str] = &["catch_status(", "catch_or("];

/// `(file, function name, body's first statement)` of every `extern "C" fn` in `src`.
fn exports(src: &Path) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let mut rest = text.as_str();
        while let Some(at) = rest.find("extern \"C\" fn ") {
            let after = &rest[at + "extern \"C\" fn ".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            // the body starts at the first `{` after the signature's closing parenthesis
            let sig_end = after.find(")").unwrap();
            let open = sig_end + after[sig_end..].find('{').unwrap();
            let body = after[open + 1..].trim_start();
            let first: String = body.chars().take(40).collect();
            out.push((
                file.file_name().unwrap().to_string_lossy().into_owned(),
                name,
                first,
            ));
            rest = &after[open..];
        }
    }
    out
}

#[test]
fn every_export_runs_inside_the_panic_boundary() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = exports(&src);
    assert!(
        found.len() >= 40,
        "expected the whole API, found {} exports",
        found.len()
    );
    let bad: Vec<_> = found
        .iter()
        .filter(|(_, _, body)| !BOUNDARY.iter().any(|b| body.starts_with(b)))
        .collect();
    assert!(
        bad.is_empty(),
        "exports whose body does not start with catch_status/catch_or: {bad:#?}"
    );
}

#[test]
fn every_export_is_no_mangle_and_in_the_header() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let header = std::fs::read_to_string(root.join("../include/dat.h")).unwrap();
    for (file, name, _) in exports(&root.join("src")) {
        assert!(
            name.starts_with("dat_"),
            "{file}: {name} lacks the dat_ prefix"
        );
        assert!(
            header.contains(&format!(" {name}(")) || header.contains(&format!("*{name}(")),
            "{file}: {name} is not in include/dat.h (run make header)"
        );
    }
    // and the other way: every function of the header is exported by the crate
    for src in std::fs::read_dir(root.join("src")).unwrap() {
        let text = std::fs::read_to_string(src.unwrap().path()).unwrap();
        assert_eq!(
            text.matches("extern \"C\" fn ").count(),
            text.matches("#[unsafe(no_mangle)]").count(),
            "an export without #[unsafe(no_mangle)], or the reverse"
        );
    }
}
