//! Integrity manifests: the SHA-256, size and mode of every file under one or more roots,
//! written as JSON and signed detached (see [`crate::keys`]); checking a tree against one
//! names each changed, missing and extra file.
//!
//! ```json
//! {"format": "rampart-integrity/1", "version": "2.4.1", "created_at": "2026-12-02T21:26:15Z",
//!  "algorithm": "sha256", "roots": ["/srv/app/static"], "exclude": ["*.map"],
//!  "files": [{"root": 0, "path": "js/app.3f2a.js", "size": 1234, "mode": "0644",
//!             "sha256": "…"},
//!            {"root": 0, "path": "current", "mode": "0777", "symlink": "v2"}]}
//! ```
//!
//! A root under the manifest's own directory is recorded relative to it (and found there
//! again wherever the release is unpacked), any other root as an absolute path; a root
//! may be a file (rampart's config) or a link to a directory (`/srv/app/current`).
//! Paths are relative to their root, with `/`. Symbolic links are recorded with their
//! target and never followed (a link swapped to point elsewhere is a change); other
//! special files (sockets, FIFOs, devices) are refused. `exclude` globs match the relative
//! path (`*` stops at `/`, `**` crosses it); an excluded directory is not entered.

use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The format marker.
pub const FORMAT: &str = "rampart-integrity/1";

/// A manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// The version of what it describes, as the builder gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// When it was built (RFC 3339, UTC).
    pub created_at: String,
    /// Always `sha256`.
    pub algorithm: String,
    /// The roots, as given to `build`.
    pub roots: Vec<String>,
    /// Globs left out.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Every file, sorted by root then path.
    pub files: Vec<Entry>,
}

/// One file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Index into `roots`.
    pub root: usize,
    /// Path under the root, `/`-separated.
    pub path: String,
    /// Bytes (0 for a link).
    #[serde(default)]
    pub size: u64,
    /// Permission bits, octal (`0644`).
    pub mode: String,
    /// Lowercase hex SHA-256 of the content (regular files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// A symbolic link's target, as stored (links are never followed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symlink: Option<String>,
}

/// How a file differs from the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// Listed, and different on disk (what differs, in words).
    Changed(String, String),
    /// Listed, not on disk.
    Missing(String),
    /// On disk, not listed.
    Extra(String),
}

impl Difference {
    /// The file it concerns (`ROOT/PATH`).
    pub fn path(&self) -> &str {
        match self {
            Self::Changed(p, _) | Self::Missing(p) | Self::Extra(p) => p,
        }
    }
}

/// Compiled `exclude` globs.
struct Excludes(Vec<glob::Pattern>);

impl Excludes {
    fn new(globs: &[String]) -> Result<Self, String> {
        globs
            .iter()
            .map(|g| glob::Pattern::new(g).map_err(|e| format!("exclude {g:?}: {e}")))
            .collect::<Result<_, _>>()
            .map(Self)
    }

    fn excluded(&self, rel: &str) -> bool {
        let opts = glob::MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: false,
        };
        self.0.iter().any(|p| p.matches_with(rel, opts))
    }
}

/// What a walk finds at one path.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Found {
    rel: String,
    path: PathBuf,
    size: u64,
    mode: u32,
    link: Option<String>,
}

/// Every file under `root` (not excluded), sorted by relative path. A root that is a
/// file (rampart's config, a binary) is one entry named by its file name. The root itself
/// may be a link (`/srv/app/current`); links under it are recorded, never followed.
fn walk(root: &Path, ex: &Excludes) -> Result<Vec<Found>, String> {
    let meta = std::fs::metadata(root).map_err(|e| format!("{}: {e}", root.display()))?;
    if meta.is_file() {
        let name = root
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| format!("{}: not a file name in UTF-8", root.display()))?;
        return Ok(vec![Found {
            rel: name.to_owned(),
            path: root.to_path_buf(),
            size: meta.len(),
            mode: meta.permissions().mode() & 0o7777,
            link: None,
        }]);
    }
    if !meta.is_dir() {
        return Err(format!("{}: not a directory or a file", root.display()));
    }
    let mut out = Vec::new();
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let rd = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in rd {
            let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
            let name = entry.file_name();
            let name = name.to_str().ok_or_else(|| {
                format!("{}: a file name that is not UTF-8", entry.path().display())
            })?;
            let rel = if prefix.is_empty() {
                name.to_owned()
            } else {
                format!("{prefix}/{name}")
            };
            if ex.excluded(&rel) {
                continue;
            }
            let path = entry.path();
            let m =
                std::fs::symlink_metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let ft = m.file_type();
            if ft.is_dir() {
                stack.push((path, rel));
            } else if ft.is_symlink() {
                let target =
                    std::fs::read_link(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                out.push(Found {
                    rel,
                    path,
                    size: 0,
                    mode: m.permissions().mode() & 0o7777,
                    link: Some(target.to_string_lossy().into_owned()),
                });
            } else if ft.is_file() {
                out.push(Found {
                    rel,
                    path,
                    size: m.len(),
                    mode: m.permissions().mode() & 0o7777,
                    link: None,
                });
            } else {
                return Err(format!(
                    "{}: not a regular file, directory or link (a socket, FIFO or device)",
                    path.display()
                ));
            }
        }
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(out)
}

/// The SHA-256 of a file, read in 64 KiB pieces.
///
/// # Errors
/// The file cannot be read.
pub fn sha256_file(path: &Path) -> Result<String, String> {
    let mut f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Ok(hex(ctx.finish().as_ref()))
}

/// Lowercase hex.
pub(crate) fn hex(b: &[u8]) -> String {
    use std::fmt::Write as _;
    b.iter()
        .fold(String::with_capacity(b.len() * 2), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

/// Builds the manifest of `roots`, leaving out `exclude`.
///
/// # Errors
/// A root that is neither a directory nor a file, an unreadable file, a special file, a bad glob.
pub fn build(
    roots: &[PathBuf],
    exclude: &[String],
    version: Option<&str>,
) -> Result<Manifest, String> {
    if roots.is_empty() {
        return Err("nothing to describe: give directories or files".into());
    }
    let ex = Excludes::new(exclude)?;
    let mut files = Vec::new();
    for (i, root) in roots.iter().enumerate() {
        for f in walk(root, &ex)? {
            let sha256 = match f.link {
                Some(_) => None,
                None => Some(sha256_file(&f.path)?),
            };
            files.push(Entry {
                root: i,
                path: f.rel,
                size: f.size,
                mode: format!("{:04o}", f.mode),
                sha256,
                symlink: f.link,
            });
        }
    }
    Ok(Manifest {
        format: FORMAT.into(),
        version: version.map(str::to_owned),
        created_at: rampart_config::civil::rfc3339(now_unix()),
        algorithm: "sha256".into(),
        roots: roots.iter().map(|r| r.display().to_string()).collect(),
        exclude: exclude.to_vec(),
        files,
    })
}

impl Manifest {
    /// Parses a manifest file's bytes.
    ///
    /// # Errors
    /// Not JSON of this shape, or another format or algorithm.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let m: Self =
            serde_json::from_slice(bytes).map_err(|e| format!("not an integrity manifest: {e}"))?;
        if m.format != FORMAT {
            return Err(format!("format {:?}, expected {FORMAT:?}", m.format));
        }
        if m.algorithm != "sha256" {
            return Err(format!("algorithm {:?}, expected \"sha256\"", m.algorithm));
        }
        if let Some(e) = m.files.iter().find(|e| e.root >= m.roots.len()) {
            return Err(format!("{}: root {} is not listed", e.path, e.root));
        }
        if let Some(e) = m.files.iter().find(|e| {
            e.path.is_empty()
                || e.path.starts_with('/')
                || e.path
                    .split('/')
                    .any(|c| c.is_empty() || c == "." || c == "..")
        }) {
            return Err(format!("{:?}: not a relative path inside its root", e.path));
        }
        Ok(m)
    }

    /// The manifest as written (pretty JSON and a newline): the bytes that are signed.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }

    /// Records each root relative to the directory the manifest is written to when it is
    /// under it (a release shipped with its manifest checks wherever it is unpacked), else
    /// as an absolute path.
    #[must_use]
    pub fn rooted_at(mut self, manifest: &Path) -> Self {
        let dir = manifest.parent().filter(|d| !d.as_os_str().is_empty());
        let base = std::fs::canonicalize(dir.unwrap_or_else(|| Path::new(".")));
        for r in &mut self.roots {
            let Ok(abs) = std::fs::canonicalize(&*r) else {
                continue;
            };
            *r = match base.as_ref().ok().and_then(|b| abs.strip_prefix(b).ok()) {
                Some(rel) if !rel.as_os_str().is_empty() => rel.display().to_string(),
                _ => abs.display().to_string(),
            };
        }
        self
    }

    /// Where each root is on this host: `overrides` in order where given, else as
    /// recorded, a relative root resolving against the manifest's own directory.
    pub fn roots_at(&self, manifest: &Path, overrides: &[PathBuf]) -> Vec<PathBuf> {
        let dir = manifest.parent().unwrap_or_else(|| Path::new(""));
        self.roots
            .iter()
            .enumerate()
            .map(|(i, r)| overrides.get(i).cloned().unwrap_or_else(|| dir.join(r)))
            .collect()
    }

    /// Checks the tree: `roots` replaces the manifest's roots in order where given.
    /// Hashes at most `budget` bytes per second when set (a periodic check on a large
    /// tree), else as fast as the disk reads.
    ///
    /// # Errors
    /// A root that cannot be read at all (each file's problem is a [`Difference`]).
    pub fn check(&self, roots: &[PathBuf], budget: Option<u64>) -> Result<Vec<Difference>, String> {
        let ex = Excludes::new(&self.exclude)?;
        let mut diffs = Vec::new();
        let started = std::time::Instant::now();
        let mut hashed: u64 = 0;
        for (i, listed_root) in self.roots.iter().enumerate() {
            let root = roots
                .get(i)
                .cloned()
                .unwrap_or_else(|| PathBuf::from(listed_root));
            let file_root = std::fs::metadata(&root).is_ok_and(|m| m.is_file());
            let shown = |rel: &str| {
                if file_root {
                    root.display().to_string()
                } else {
                    format!("{}/{rel}", root.display())
                }
            };
            let on_disk = walk(&root, &ex)?;
            let listed: Vec<&Entry> = self.files.iter().filter(|e| e.root == i).collect();
            let mut j = 0;
            for e in &listed {
                while j < on_disk.len() && on_disk[j].rel < e.path {
                    diffs.push(Difference::Extra(shown(&on_disk[j].rel)));
                    j += 1;
                }
                let Some(f) = on_disk.get(j).filter(|f| f.rel == e.path) else {
                    diffs.push(Difference::Missing(shown(&e.path)));
                    continue;
                };
                j += 1;
                let mut what = Vec::new();
                match (&e.symlink, &f.link) {
                    (Some(want), Some(got)) if want != got => {
                        what.push(format!("link points to {got:?}, not {want:?}"));
                    }
                    (Some(_), None) => what.push("a file where a link was".into()),
                    (None, Some(_)) => what.push("a link where a file was".into()),
                    _ => {}
                }
                if e.symlink.is_none() && f.link.is_none() {
                    if f.size != e.size {
                        what.push(format!("size {} bytes, not {}", f.size, e.size));
                    } else {
                        hashed += f.size;
                        match sha256_file(&f.path) {
                            Ok(h) if Some(&h) != e.sha256.as_ref() => {
                                what.push("content differs (SHA-256)".into());
                            }
                            Ok(_) => {}
                            Err(err) => what.push(format!("unreadable: {err}")),
                        }
                        if let Some(rate) = budget.filter(|r| *r > 0) {
                            // Sleep until the bytes hashed so far fit the rate.
                            let due =
                                std::time::Duration::from_secs_f64(hashed as f64 / rate as f64);
                            if let Some(wait) = due.checked_sub(started.elapsed()) {
                                std::thread::sleep(wait);
                            }
                        }
                    }
                    let mode = format!("{:04o}", f.mode);
                    if mode != e.mode {
                        what.push(format!("mode {mode}, not {}", e.mode));
                    }
                }
                if !what.is_empty() {
                    diffs.push(Difference::Changed(shown(&e.path), what.join("; ")));
                }
            }
            for f in &on_disk[j..] {
                diffs.push(Difference::Extra(shown(&f.rel)));
            }
        }
        Ok(diffs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> PathBuf {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let d = std::env::temp_dir().join(format!(
            "rampart-trust-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("js/vendor")).unwrap();
        std::fs::write(d.join("index.html"), "<html></html>").unwrap();
        std::fs::write(d.join("js/app.js"), "console.log(1)").unwrap();
        std::fs::write(d.join("js/vendor/lib.js"), "lib").unwrap();
        std::fs::write(d.join("js/app.js.map"), "{}").unwrap();
        std::os::unix::fs::symlink("index.html", d.join("home.html")).unwrap();
        d
    }

    #[test]
    fn a_tree_matches_its_manifest_and_every_change_is_named() {
        let d = tree();
        let exclude = ["**/*.map".to_owned()];
        let m = build(std::slice::from_ref(&d), &exclude, Some("1.2.3")).unwrap();
        let paths: Vec<&str> = m.files.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            ["home.html", "index.html", "js/app.js", "js/vendor/lib.js"]
        );
        assert_eq!(m.files[0].symlink.as_deref(), Some("index.html"));
        // `printf '<html></html>' | sha256sum`
        assert_eq!(
            m.files[1].sha256.as_deref(),
            Some("b633a587c652d02386c4f16f8c6f6aab7352d97f16367c3c40576214372dd628")
        );
        assert_eq!(m.files[1].size, 13);
        assert_eq!(m.version.as_deref(), Some("1.2.3"));
        let again = Manifest::parse(&m.to_bytes()).unwrap();
        assert_eq!(again, m);
        assert_eq!(m.check(&[], None).unwrap(), []);
        // Tamper, remove, add, relink, chmod.
        std::fs::write(d.join("js/app.js"), "console.log(2)").unwrap();
        std::fs::remove_file(d.join("js/vendor/lib.js")).unwrap();
        std::fs::write(d.join("evil.js"), "x").unwrap();
        std::fs::write(d.join("js/new.js.map"), "excluded").unwrap();
        std::fs::remove_file(d.join("home.html")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.join("home.html")).unwrap();
        std::fs::set_permissions(d.join("index.html"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        let diffs = m.check(&[], None).unwrap();
        let root = d.display();
        assert_eq!(
            diffs,
            [
                Difference::Extra(format!("{root}/evil.js")),
                Difference::Changed(
                    format!("{root}/home.html"),
                    "link points to \"/etc/passwd\", not \"index.html\"".into()
                ),
                Difference::Changed(format!("{root}/index.html"), "mode 0755, not 0644".into()),
                Difference::Changed(
                    format!("{root}/js/app.js"),
                    "content differs (SHA-256)".into()
                ),
                Difference::Missing(format!("{root}/js/vendor/lib.js")),
            ]
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn bad_manifests_and_roots_are_refused() {
        assert!(Manifest::parse(b"{}").is_err());
        assert!(Manifest::parse(b"not json").is_err());
        let d = tree();
        let m = build(std::slice::from_ref(&d), &[], None).unwrap();
        let mut bad = m.clone();
        bad.files[0].path = "../../etc/passwd".into();
        assert!(Manifest::parse(&bad.to_bytes())
            .unwrap_err()
            .contains("not a relative path"));
        let mut bad = m.clone();
        bad.files[0].root = 3;
        assert!(Manifest::parse(&bad.to_bytes()).is_err());
        assert!(build(&[d.join("no-such")], &[], None)
            .unwrap_err()
            .contains("no-such"));
        assert!(build(std::slice::from_ref(&d), &["[".into()], None).is_err());
        // Another root given at check time.
        let copy = d.with_extension("copy");
        let _ = std::fs::remove_dir_all(&copy);
        assert!(m.check(std::slice::from_ref(&copy), None).is_err());
        let _ = std::fs::remove_dir_all(&d);
    }

    /// A file as a root (rampart's own config): one entry, named by the root itself when
    /// it changes; a root that is a link to a release directory is followed.
    #[test]
    fn a_file_root_and_a_linked_root_are_checked() {
        let d = tree();
        let conf = d.join("rampart.toml");
        std::fs::write(&conf, "[server]\n").unwrap();
        let current = d.with_extension("current");
        let _ = std::fs::remove_file(&current);
        std::os::unix::fs::symlink(d.join("js"), &current).unwrap();
        let roots = [conf.clone(), current.clone()];
        let m = build(&roots, &[], None).unwrap();
        let listed: Vec<(usize, &str)> =
            m.files.iter().map(|e| (e.root, e.path.as_str())).collect();
        assert_eq!(
            listed,
            [
                (0, "rampart.toml"),
                (1, "app.js"),
                (1, "app.js.map"),
                (1, "vendor/lib.js")
            ]
        );
        assert_eq!(m.check(&[], None).unwrap(), []);
        std::fs::write(&conf, "[server]\nhttp = \"0.0.0.0:80\"\n").unwrap();
        assert_eq!(
            m.check(&[], None).unwrap(),
            [Difference::Changed(
                conf.display().to_string(),
                "size 29 bytes, not 9".into()
            )]
        );
        let _ = std::fs::remove_file(&current);
        let _ = std::fs::remove_dir_all(&d);
    }
}
