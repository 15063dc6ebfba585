//! Path normalization exactly as Hyperdrive 13 does it (`unix-path-resolve` against `/`).

use crate::error::{Error, Result};

/// Normalizes a file path: `\` and `/` separate segments, empty and `.` segments are dropped,
/// `..` goes up (going above the root is an error), and the result starts with `/` and has no
/// trailing slash. A path of several segments whose first ends in `:` is absolute: after a drive
/// letter (`c:`, one character) or `file:` the rest is the path, after any other scheme
/// (`http://host/...`) the first three segments are dropped, as `unix-path-resolve` does. The
/// root itself is not a file name.
pub fn normalize(path: &str) -> Result<String> {
    let p = resolve("/", path)?;
    if p == "/" {
        return Err(Error::InvalidArgument(format!(
            "invalid file name {path:?}: it names the root folder"
        )));
    }
    Ok(p)
}

/// Normalizes a folder path: like [`normalize`], but the root is allowed and becomes `""`, so
/// that `folder + "/"` is the prefix of everything inside it.
pub fn normalize_folder(path: &str) -> Result<String> {
    let p = resolve("/", path)?;
    Ok(if p == "/" { String::new() } else { p })
}

/// A path split into segments, and whether it stands alone (absolute) or continues another.
fn parse(path: &str) -> (bool, Vec<&str>) {
    let names: Vec<&str> = path.split(['/', '\\']).collect();
    match names.first() {
        Some(first) if names.len() > 1 && first.ends_with(':') => {
            // a drive letter (two UTF-16 units, as JavaScript counts) or `file:`: the path
            // follows; another scheme: `scheme:`, `""` and the host go
            let skip = if first.encode_utf16().count() == 2 || *first == "file:" {
                1
            } else {
                3
            };
            (true, names.get(skip..).unwrap_or_default().to_vec())
        }
        _ => (path.starts_with(['/', '\\']), names),
    }
}

/// `relative` resolved against `base` (absolute, or one of them must be), as
/// `unix-path-resolve(base, relative)`.
fn resolve(base: &str, relative: &str) -> Result<String> {
    let (rel_absolute, rel) = parse(relative);
    let mut parts: Vec<&str> = Vec::new();
    if !rel_absolute {
        let (base_absolute, base_names) = parse(base);
        if !base_absolute {
            return Err(Error::InvalidArgument(format!(
                "path {relative:?} is relative to {base:?}, which is not absolute"
            )));
        }
        walk(&mut parts, &base_names, relative)?;
    }
    walk(&mut parts, &rel, relative)?;
    Ok(format!("/{}", parts.join("/")))
}

/// Applies `names` to the segments in `parts` (`..` goes up; `relative` names the path in an
/// error).
fn walk<'a>(parts: &mut Vec<&'a str>, names: &[&'a str], relative: &str) -> Result<()> {
    for &seg in names {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(Error::InvalidArgument(format!(
                        "path {relative:?} cannot be resolved: too many '..'"
                    )));
                }
            }
            s => parts.push(s),
        }
    }
    Ok(())
}

/// Resolves a symlink target against the link's own path, as Hyperdrive's `entry(path,
/// {follow: true})` does: an absolute target stands alone (a path from `/` or `\`, or one with a
/// drive letter or scheme), a relative one is appended to the link's path (not its folder).
pub fn resolve_link(link_path: &str, target: &str) -> Result<String> {
    let p = resolve(link_path, target)?;
    if p == "/" {
        return Err(Error::InvalidArgument(format!(
            "the symlink {link_path} leads to the root folder ({target:?}), not a file"
        )));
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_table() {
        // shared/vectors/out/normalize-path.txt (hyperdrive 13.3.4)
        let ok = [
            ("a", "/a"),
            ("/a/", "/a"),
            ("a/./b/../c", "/a/c"),
            ("//x//y", "/x/y"),
            ("\\win\\p", "/win/p"),
            ("c:/foo/bar", "/foo/bar"),
            ("file:/x/y", "/x/y"),
            ("http://host/b/c", "/b/c"),
            ("/ünï/ćode.txt", "/ünï/ćode.txt"),
            ("/a b/c", "/a b/c"),
            ("dir/../sub//y.txt", "/sub/y.txt"),
        ];
        for (input, want) in ok {
            assert_eq!(normalize(input).unwrap(), want, "{input:?}");
        }
        for bad in ["/", "..", "/a/../..", ""] {
            assert!(normalize(bad).is_err(), "{bad:?}");
        }
        assert_eq!(normalize_folder("/").unwrap(), "");
        assert_eq!(normalize_folder("/dir/").unwrap(), "/dir");
        // shared/vectors/out/symlink-follow.txt
        assert_eq!(resolve_link("/a/link", "b").unwrap(), "/a/link/b");
        assert_eq!(resolve_link("/a/link", "/x/y").unwrap(), "/x/y");
    }

    /// What `unix-path-resolve` 1.0.2 (hyperdrive 13.3.4's resolver) gives for these inputs, run
    /// with the pinned reference in `tests/interop` (`null`: it throws), for drive letters,
    /// schemes and segments that merely contain `:`.
    #[test]
    fn drive_letters_and_schemes_as_the_reference_resolves_them() {
        let files = [
            ("c:", Some("/c:")),
            ("foo:", Some("/foo:")),
            ("http:/a/b/c", Some("/c")),
            ("ab:/x/y/z", Some("/z")),
            ("file://host/x", Some("/host/x")),
            ("file:///x/y", Some("/x/y")),
            ("http:///a/b", Some("/a/b")),
            ("é:/a", Some("/a")),
            ("ab:", Some("/ab:")),
            ("x:/", Some("/")),
            ("http://h", Some("/")),
            ("http:", Some("/http:")),
            ("a:b/c", Some("/a:b/c")),
            ("C:\\dir\\f.txt", Some("/dir/f.txt")),
            ("/a/c:/b", Some("/a/c:/b")),
            ("ftp://h/../x", None),
            ("c:/..", None),
            ("ab:/x/y/..", None),
            ("\u{1F600}:/a/b", Some("/")),
        ];
        for (input, want) in files {
            assert_eq!(resolve("/", input).ok().as_deref(), want, "{input:?}");
        }
        // as file names, the root is refused
        assert!(normalize("x:/").is_err() && normalize("http://h").is_err());
        let links = [
            ("../b", Some("/a/b")),
            ("c:/z", Some("/z")),
            ("http://h/p/q", Some("/p/q")),
            ("file:/m", Some("/m")),
            ("\\w", Some("/w")),
            ("../../..", None),
            ("x:", Some("/a/link/x:")),
            ("..", Some("/a")),
        ];
        for (target, want) in links {
            assert_eq!(
                resolve_link("/a/link", target).ok().as_deref(),
                want,
                "{target:?}"
            );
        }
    }
}
