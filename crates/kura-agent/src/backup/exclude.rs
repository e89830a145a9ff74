//! Exclude rules: `--exclude` globs and `.kuraignore` files.
//!
//! A pattern without `/` matches a file or directory name at any depth (`*.tmp`,
//! `node_modules`); a pattern with `/` matches a whole path — absolute for `--exclude`,
//! relative to the directory holding the `.kuraignore` for patterns read from one.
//! `.kuraignore` lines that are empty or start with `#` are ignored.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

use crate::{AgentError, Result};

/// Name of the per-directory ignore file.
pub const IGNORE_FILE: &str = ".kuraignore";

/// A compiled set of exclude patterns.
#[derive(Clone, Default)]
pub struct ExcludeRules {
    names: Option<GlobSet>,
    paths: Option<GlobSet>,
}

fn glob(pattern: &str) -> Result<Glob> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|e| AgentError::Usage(format!("bad exclude pattern {pattern:?}: {e}")))
}

impl ExcludeRules {
    /// Rules from patterns; path patterns are taken relative to `base` unless absolute.
    pub fn new(patterns: &[String], base: &Path) -> Result<Self> {
        let mut names = GlobSetBuilder::new();
        let mut paths = GlobSetBuilder::new();
        let (mut n, mut p) = (0, 0);
        for pat in patterns {
            let pat = pat.trim_end_matches('/');
            if pat.is_empty() {
                continue;
            }
            if pat.contains('/') {
                let full = if pat.starts_with('/') {
                    pat.to_string()
                } else {
                    format!("{}/{}", base.display().to_string().trim_end_matches('/'), pat)
                };
                paths.add(glob(&full)?);
                p += 1;
            } else {
                names.add(glob(pat)?);
                n += 1;
            }
        }
        let build = |b: GlobSetBuilder| {
            b.build()
                .map_err(|e| AgentError::Usage(format!("exclude patterns: {e}")))
        };
        Ok(ExcludeRules {
            names: if n > 0 { Some(build(names)?) } else { None },
            paths: if p > 0 { Some(build(paths)?) } else { None },
        })
    }

    /// Rules of the `.kuraignore` in `dir`, if there is one.
    pub fn from_ignore_file(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(IGNORE_FILE);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            // A directory that cannot be searched cannot be listed either: the walk reports
            // it once, as the directory's error.
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied && std::fs::read_dir(dir).is_err() => {
                return Ok(None);
            }
            Err(e) => return Err(AgentError::io(path, e)),
        };
        let patterns: Vec<String> = String::from_utf8_lossy(&text)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(String::from)
            .collect();
        Ok(Some(Self::new(&patterns, dir)?))
    }

    /// Whether `path` (absolute) is excluded.
    pub fn excludes(&self, path: &Path) -> bool {
        if let Some(names) = &self.names
            && let Some(name) = path.file_name()
            && names.is_match(Path::new(std::ffi::OsStr::from_bytes(name.as_bytes())))
        {
            return true;
        }
        self.paths.as_ref().is_some_and(|p| p.is_match(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths() {
        let r = ExcludeRules::new(
            &["*.tmp".into(), "/srv/cache/*".into(), "build/out".into()],
            Path::new("/home/a"),
        )
        .unwrap();
        assert!(r.excludes(Path::new("/x/y/z.tmp")));
        assert!(!r.excludes(Path::new("/x/y/z.tmpx")));
        assert!(r.excludes(Path::new("/srv/cache/a")));
        assert!(!r.excludes(Path::new("/srv/cache/a/b")));
        assert!(r.excludes(Path::new("/home/a/build/out")));
        assert!(!r.excludes(Path::new("/home/b/build/out")));
    }

    #[test]
    fn bad_pattern_is_an_error() {
        assert!(ExcludeRules::new(&["a[".into()], Path::new("/")).is_err());
    }
}
