//! Path normalization exactly as Hyperdrive 13 does it (`unix-path-resolve` against `/`).

use crate::error::{Error, Result};

/// Normalizes a file path: `\` and `/` separate segments, empty and `.` segments are dropped,
/// `..` goes up (going above the root is an error), a first segment ending in `:` (a drive
/// letter or URL scheme) is dropped, and the result starts with `/` and has no trailing slash.
/// The root itself is not a file name.
pub fn normalize(path: &str) -> Result<String> {
    let p = resolve(path)?;
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
    let p = resolve(path)?;
    Ok(if p == "/" { String::new() } else { p })
}

fn resolve(path: &str) -> Result<String> {
    let mut parts: Vec<&str> = Vec::new();
    let mut first = true;
    let mut scheme = false;
    for seg in path.split(['/', '\\']) {
        if first {
            first = false;
            if seg.ends_with(':') {
                // `c:` or `http:`; a URL's `//host` segment goes with it
                scheme = seg.len() > 2 && path[seg.len()..].starts_with("//");
                continue;
            }
        }
        match seg {
            "" if scheme => {}
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(Error::InvalidArgument(format!(
                        "path {path:?} cannot be resolved: too many '..'"
                    )));
                }
            }
            s => {
                if scheme {
                    // the host of `scheme://host/...` is dropped
                    scheme = false;
                    continue;
                }
                parts.push(s)
            }
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

/// Resolves a symlink target against the link's own path, as Hyperdrive's `entry(path,
/// {follow: true})` does: an absolute target stands alone, a relative one is appended to the
/// link's path (not its folder).
pub fn resolve_link(link_path: &str, target: &str) -> Result<String> {
    if target.starts_with('/') || target.starts_with('\\') {
        normalize(target)
    } else {
        normalize(&format!("{link_path}/{target}"))
    }
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
}
