//! The function's build artifact: the `bootstrap` executable and what it
//! needs from the machine Lambda runs it on.

use std::fmt;
use std::path::Path;

use object::{Object, ObjectSection};

/// The newest glibc `provided.al2023` has (Amazon Linux 2023 ships 2.34).
pub const LAMBDA_GLIBC: GlibcVersion = GlibcVersion(2, 34, 0);

/// A glibc symbol version such as `GLIBC_2.34`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct GlibcVersion(pub u32, pub u32, pub u32);

impl fmt::Display for GlibcVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.2 {
            0 => write!(f, "GLIBC_{}.{}", self.0, self.1),
            p => write!(f, "GLIBC_{}.{}.{p}", self.0, self.1),
        }
    }
}

impl GlibcVersion {
    fn parse(s: &str) -> Option<Self> {
        let mut parts = s
            .strip_prefix("GLIBC_")?
            .split('.')
            .map(|p| p.parse::<u32>());
        let major = parts.next()?.ok()?;
        let minor = parts.next()?.ok()?;
        let patch = match parts.next() {
            Some(p) => p.ok()?,
            None => 0,
        };
        Some(GlibcVersion(major, minor, patch))
    }
}

/// The newest glibc symbol version an ELF executable asks for (the version
/// names live in its dynamic string table), or `None` for a static binary.
pub fn newest_glibc(path: &Path) -> anyhow::Result<Option<GlibcVersion>> {
    let data = std::fs::read(path)?;
    let file = object::File::parse(&*data)?;
    let Some(dynstr) = file.section_by_name(".dynstr") else {
        return Ok(None);
    };
    let strings = dynstr.data()?;
    Ok(strings
        .split(|b| *b == 0)
        .filter_map(|s| std::str::from_utf8(s).ok())
        .filter_map(GlibcVersion::parse)
        .max())
}

/// Refuses an executable that would not start on Lambda's Amazon Linux 2023.
pub fn check_runs_on_lambda(path: &Path) -> anyhow::Result<()> {
    match newest_glibc(path)? {
        Some(v) if v > LAMBDA_GLIBC => anyhow::bail!(
            "{} needs {v}, newer than the {LAMBDA_GLIBC} of Lambda's provided.al2023; build it on an older glibc or link it statically",
            path.display()
        ),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_order_numerically() {
        let v = |s| GlibcVersion::parse(s).unwrap();
        assert!(v("GLIBC_2.34") > v("GLIBC_2.4"));
        assert!(v("GLIBC_2.2.5") < v("GLIBC_2.3"));
        assert_eq!(v("GLIBC_2.34").to_string(), "GLIBC_2.34");
        assert!(GlibcVersion::parse("GLIBC_PRIVATE").is_none());
    }

    #[test]
    fn reads_a_real_executable() {
        // This test binary is itself a dynamically linked ELF executable.
        let me = std::env::current_exe().unwrap();
        let v = newest_glibc(&me).unwrap().expect("linked against glibc");
        assert!(v >= GlibcVersion(2, 2, 5), "{v}");
    }
}
