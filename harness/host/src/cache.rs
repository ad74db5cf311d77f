//! The cache directory and the content keys that decide when a cached artefact is stale.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// `$BDSNAP_CACHE`, else `$XDG_CACHE_HOME/bdsnap`, else `$HOME/.cache/bdsnap`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("BDSNAP_CACHE").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir).join("bdsnap");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache").join("bdsnap")
}

/// A SHA-256 over labelled parts; two keys are equal only when every part was equal.
#[derive(Default, Clone)]
pub struct ContentKey {
    hasher: Sha256,
}

impl ContentKey {
    pub fn new(kind: &str) -> Self {
        let mut key = Self::default();
        key.add("kind", kind.as_bytes());
        key
    }

    /// Adds a named part; lengths are hashed too so that parts cannot run into each other.
    pub fn add(&mut self, label: &str, bytes: &[u8]) -> &mut Self {
        for part in [label.as_bytes(), bytes] {
            self.hasher.update((part.len() as u64).to_le_bytes());
            self.hasher.update(part);
        }
        self
    }

    pub fn add_str(&mut self, label: &str, value: &str) -> &mut Self {
        self.add(label, value.as_bytes())
    }

    /// Adds every regular file under `dir` (sorted, by relative path and content), skipping
    /// names for which `skip` returns true.
    pub fn add_tree(
        &mut self,
        dir: &Path,
        skip: &dyn Fn(&Path) -> bool,
    ) -> std::io::Result<&mut Self> {
        let mut files = Vec::new();
        collect_files(dir, dir, skip, &mut files)?;
        files.sort();
        for rel in files {
            let content = std::fs::read(dir.join(&rel))?;
            self.add(&rel.to_string_lossy(), &content);
        }
        Ok(self)
    }

    /// The first 16 hex digits: enough to tell recipes apart in a directory name.
    pub fn short(&self) -> String {
        let digest = self.hasher.clone().finalize();
        hex::encode(&digest[..8])
    }
}

fn collect_files(
    root: &Path,
    dir: &Path,
    skip: &dyn Fn(&Path) -> bool,
    out: &mut Vec<PathBuf>,
) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let rel = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
        if skip(&rel) {
            continue;
        }
        let kind = entry.file_type()?;
        if kind.is_dir() {
            collect_files(root, &path, skip, out)?;
        } else if kind.is_file() {
            out.push(rel);
        }
    }
    Ok(())
}

/// An exclusive advisory lock on a file, held until dropped: two harness runs sharing a cache
/// take turns on the same chroot or image instead of corrupting it.
pub struct CacheLock {
    _file: std::fs::File,
}

impl CacheLock {
    /// Blocks until the lock on `path` (created if needed) is ours.
    pub fn acquire(path: &Path) -> std::io::Result<Self> {
        use std::os::fd::AsRawFd;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        // SAFETY: flock on a descriptor we own; it is released when the file is closed.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_when_any_part_differs() {
        let a = ContentKey::new("x").add_str("a", "1").short();
        let b = ContentKey::new("x").add_str("a", "2").short();
        let c = ContentKey::new("y").add_str("a", "1").short();
        let d = ContentKey::new("x").add_str("a1", "").short();
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
        assert_eq!(a, ContentKey::new("x").add_str("a", "1").short());
    }

    #[test]
    fn tree_key_follows_content_and_skips() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/f.c"), "int x;").unwrap();
        std::fs::write(dir.path().join("f.o"), "junk").unwrap();
        let skip = |p: &Path| p.extension().is_some_and(|e| e == "o");
        let k1 = ContentKey::new("t")
            .add_tree(dir.path(), &skip)
            .unwrap()
            .short();
        std::fs::write(dir.path().join("f.o"), "other junk").unwrap();
        let k2 = ContentKey::new("t")
            .add_tree(dir.path(), &skip)
            .unwrap()
            .short();
        assert_eq!(k1, k2, "skipped files must not change the key");
        std::fs::write(dir.path().join("sub/f.c"), "int y;").unwrap();
        let k3 = ContentKey::new("t")
            .add_tree(dir.path(), &skip)
            .unwrap()
            .short();
        assert_ne!(k1, k3);
    }
}
