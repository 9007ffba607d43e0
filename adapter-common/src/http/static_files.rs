//! Static files from one directory, for paths no other route takes.
//!
//! Path resolution is pure ([`resolve`]) so its safety rules are unit-tested:
//! only plain segments, no `..`, no hidden files, `/` and directories mean
//! `index.html`.

use std::path::{Path, PathBuf};

/// The file under `root` that `path` (a request path) names, or `None` when
/// the path is not allowed.
pub fn resolve(root: &Path, path: &str) -> Option<PathBuf> {
    let mut out = root.to_path_buf();
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        if segment.starts_with('.') || segment.contains('\\') || segment.contains('\0') {
            return None;
        }
        out.push(segment);
    }
    if path.ends_with('/') || out == root {
        out.push("index.html");
    }
    Some(out)
}

/// The `Content-Type` for a file name.
pub fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "ico" => "image/x-icon",
        "wasm" => "application/wasm",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Reads a file (blocking), following a directory to its `index.html`.
pub fn read(path: &Path) -> std::io::Result<Vec<u8>> {
    if path.is_dir() {
        std::fs::read(path.join("index.html"))
    } else {
        std::fs::read(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_resolve_under_the_root() {
        let root = Path::new("/srv");
        assert_eq!(resolve(root, "/"), Some(PathBuf::from("/srv/index.html")));
        assert_eq!(resolve(root, "/app.js"), Some(PathBuf::from("/srv/app.js")));
        assert_eq!(
            resolve(root, "/docs/"),
            Some(PathBuf::from("/srv/docs/index.html"))
        );
        assert_eq!(resolve(root, "//a//b"), Some(PathBuf::from("/srv/a/b")));
    }

    #[test]
    fn escapes_and_hidden_files_are_refused() {
        let root = Path::new("/srv");
        assert_eq!(resolve(root, "/../etc/passwd"), None);
        assert_eq!(resolve(root, "/a/../../x"), None);
        assert_eq!(resolve(root, "/.git/config"), None);
        assert_eq!(resolve(root, "/a\\..\\b"), None);
    }

    #[test]
    fn types_by_extension() {
        assert_eq!(
            content_type(Path::new("a.html")),
            "text/html; charset=utf-8"
        );
        assert_eq!(content_type(Path::new("a.bin")), "application/octet-stream");
    }
}
