//! `requires:`: what a scenario needs from the kernel and the guest. A case whose needs are
//! not met is skipped with the reason (neither passed nor failed).
//!
//! - `kernel`: a version range such as `">=5.15"` or `">=5.15, <6.12"`, against the kernel's
//!   release (`6.1.0-50-cloud-amd64` is 6.1.0);
//! - `config`: kernel options (`BLK_DEV_ZONED` or `CONFIG_BLK_DEV_ZONED`) that must be `y` or
//!   `m` in the kernel's config;
//! - `programs`: commands that must be on the guest's PATH;
//! - `modules`: kernel modules `modprobe` must find (or that are built in).
//!
//! The first two are decided on the host before a VM is booted; the last two by one command in
//! the guest ([`Requires::guest_check`]).

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

/// A scenario's needs; empty when it has none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requires {
    pub kernel: Option<VersionRange>,
    /// Option names without the `CONFIG_` prefix.
    pub config: Vec<String>,
    pub programs: Vec<String>,
    pub modules: Vec<String>,
}

impl Requires {
    pub fn is_empty(&self) -> bool {
        self.kernel.is_none()
            && self.config.is_empty()
            && self.programs.is_empty()
            && self.modules.is_empty()
    }

    /// Why a kernel with this release and config (`NAME=value`, names without `CONFIG_`)
    /// cannot run the scenario, or `None` when it can as far as the host can tell.
    pub fn unmet_on_host(
        &self,
        release: &str,
        config: &BTreeMap<String, String>,
    ) -> Option<String> {
        let mut missing = Vec::new();
        if let Some(range) = &self.kernel {
            match Version::from_release(release) {
                Some(v) if range.contains(&v) => {}
                Some(v) => missing.push(format!("kernel {v} is not {range}")),
                None => missing.push(format!("kernel release {release:?} has no version")),
            }
        }
        let unset: Vec<String> = self
            .config
            .iter()
            .filter(|o| !matches!(config.get(o.as_str()).map(String::as_str), Some("y" | "m")))
            .map(|o| format!("CONFIG_{o}"))
            .collect();
        if !unset.is_empty() {
            missing.push(format!("kernel config lacks {}", unset.join(", ")));
        }
        (!missing.is_empty()).then(|| format!("requires: {}", missing.join("; ")))
    }

    /// A guest command printing one line per missing program or module (`program X`,
    /// `module Y`); `None` when nothing is asked of the guest. Names are validated at load
    /// time (no shell syntax), so they are written as they are.
    pub fn guest_check(&self) -> Option<String> {
        if self.programs.is_empty() && self.modules.is_empty() {
            return None;
        }
        let mut script = String::new();
        for p in &self.programs {
            script.push_str(&format!(
                "command -v {p} >/dev/null 2>&1 || echo 'program {p}'; "
            ));
        }
        for m in &self.modules {
            script.push_str(&format!(
                "modprobe -n -q {m} 2>/dev/null || echo 'module {m}'; "
            ));
        }
        script.push_str("true");
        Some(script)
    }

    /// The skip reason for what [`Requires::guest_check`] printed, or `None` when nothing is
    /// missing.
    pub fn unmet_in_guest(check_output: &str) -> Option<String> {
        let missing: Vec<&str> = check_output
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        (!missing.is_empty())
            .then(|| format!("requires: no {} in the guest", missing.join(", no ")))
    }
}

/// Whether `name` can be a program or module name in a requirement: no shell syntax.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+'))
}

/// A config option as written (`XFS_FS` or `CONFIG_XFS_FS`), without its prefix; `None` when
/// it is not an option name.
pub fn config_name(name: &str) -> Option<String> {
    let bare = name.strip_prefix("CONFIG_").unwrap_or(name);
    let ok = !bare.is_empty()
        && bare.starts_with(|c: char| c.is_ascii_uppercase() || c.is_ascii_digit())
        && bare
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    ok.then(|| bare.to_string())
}

/// A kernel version, compared numerically part by part (missing parts are 0).
#[derive(Debug, Clone)]
pub struct Version(Vec<u32>);

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Version {}

impl Version {
    /// `6.1`, `5.10.223`.
    pub fn parse(text: &str) -> Option<Version> {
        let parts: Option<Vec<u32>> = text.trim().split('.').map(|p| p.parse().ok()).collect();
        parts.filter(|p| !p.is_empty() && p.len() <= 3).map(Version)
    }

    /// The version a release string starts with: `6.12.117+deb13-cloud-amd64` is 6.12.117.
    pub fn from_release(release: &str) -> Option<Version> {
        let end = release
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(release.len());
        Version::parse(release[..end].trim_end_matches('.'))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let n = self.0.len().max(other.0.len());
        (0..n)
            .map(|i| {
                let a = self.0.get(i).copied().unwrap_or(0);
                let b = other.0.get(i).copied().unwrap_or(0);
                a.cmp(&b)
            })
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(u32::to_string).collect();
        write!(f, "{}", parts.join("."))
    }
}

/// `>=5.15, <6.12`: every bound must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRange {
    bounds: Vec<(Op, Version)>,
    text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Ge,
    Gt,
    Le,
    Lt,
    Eq,
}

impl VersionRange {
    pub fn parse(text: &str) -> Result<VersionRange, String> {
        let mut bounds = Vec::new();
        for part in text.split(',') {
            let part = part.trim();
            let (op, rest) = [
                (">=", Op::Ge),
                ("<=", Op::Le),
                (">", Op::Gt),
                ("<", Op::Lt),
                ("=", Op::Eq),
            ]
            .iter()
            .find_map(|(s, op)| part.strip_prefix(s).map(|r| (*op, r)))
            .ok_or_else(|| {
                format!("kernel range {text:?}: each bound is >=, >, <=, < or = and a version, e.g. \">=5.15, <6.12\"")
            })?;
            let v = Version::parse(rest).ok_or_else(|| {
                format!(
                    "kernel range {text:?}: {:?} is not a version like 6.1",
                    rest.trim()
                )
            })?;
            bounds.push((op, v));
        }
        Ok(VersionRange {
            bounds,
            text: text.trim().to_string(),
        })
    }

    pub fn contains(&self, v: &Version) -> bool {
        self.bounds.iter().all(|(op, b)| match op {
            Op::Ge => v >= b,
            Op::Gt => v > b,
            Op::Le => v <= b,
            Op::Lt => v < b,
            // `=6.1` is the 6.1 series: the parts written must match.
            Op::Eq => b.0.iter().zip(&v.0).all(|(x, y)| x == y) && v.0.len() >= b.0.len(),
        })
    }

    /// The range as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for VersionRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_come_from_releases_and_compare_numerically() {
        let v = |s: &str| Version::from_release(s).unwrap();
        assert_eq!(v("6.1.0-50-cloud-amd64").to_string(), "6.1.0");
        assert_eq!(v("6.12.117+deb13-cloud-amd64").to_string(), "6.12.117");
        assert_eq!(v("6.12.117-bdsnap-85e71d5d").to_string(), "6.12.117");
        assert_eq!(v("7.2"), Version::parse("7.2.0").unwrap());
        assert!(v("6.12.0") > v("6.9.3"));
        assert!(v("5.10.223") < v("6.1"));
        assert_eq!(Version::from_release("linux"), None);
    }

    #[test]
    fn ranges_hold_every_bound() {
        let r = VersionRange::parse(">=5.15, <6.12").unwrap();
        let v = |s: &str| Version::parse(s).unwrap();
        assert!(!r.contains(&v("5.10.223")));
        assert!(r.contains(&v("5.15")));
        assert!(r.contains(&v("6.1.0")));
        assert!(!r.contains(&v("6.12.117")));
        assert!(VersionRange::parse("=6.1").unwrap().contains(&v("6.1.176")));
        assert!(!VersionRange::parse("=6.1").unwrap().contains(&v("6.12.1")));
        for bad in ["6.1", ">= six", "~6.1", ">=6.1,", ">=1.2.3.4"] {
            let err = VersionRange::parse(bad).unwrap_err();
            assert!(err.starts_with("kernel range"), "{bad}: {err}");
        }
    }

    #[test]
    fn host_side_needs_name_what_is_missing() {
        let req = Requires {
            kernel: Some(VersionRange::parse(">=6.1").unwrap()),
            config: vec!["BLK_DEV_ZONED".into(), "XFS_FS".into()],
            ..Requires::default()
        };
        let config: BTreeMap<String, String> = [("XFS_FS".to_string(), "m".to_string())]
            .into_iter()
            .collect();
        assert_eq!(
            req.unmet_on_host("5.10.0-32-cloud-amd64", &config)
                .as_deref(),
            Some("requires: kernel 5.10.0 is not >=6.1; kernel config lacks CONFIG_BLK_DEV_ZONED")
        );
        let mut full = config.clone();
        full.insert("BLK_DEV_ZONED".into(), "y".into());
        assert_eq!(req.unmet_on_host("6.1.0-50-cloud-amd64", &full), None);
    }

    #[test]
    fn guest_side_needs_are_one_command_and_its_output() {
        assert_eq!(Requires::default().guest_check(), None);
        let req = Requires {
            programs: vec!["mkfs.xfs".into()],
            modules: vec!["null_blk".into()],
            ..Requires::default()
        };
        let script = req.guest_check().unwrap();
        // Run it here: sh has `command -v`; an unknown module name is never found.
        let out = std::process::Command::new("sh")
            .args(["-c", &script.replace("mkfs.xfs", "no-such-program-x")])
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("program no-such-program-x"), "{text}");
        assert_eq!(
            Requires::unmet_in_guest("program mkfs.xfs\nmodule null_blk\n").as_deref(),
            Some("requires: no program mkfs.xfs, no module null_blk in the guest")
        );
        assert_eq!(Requires::unmet_in_guest("\n"), None);
    }

    #[test]
    fn names_are_checked() {
        assert!(valid_name("mkfs.xfs") && valid_name("dm-flakey") && valid_name("g++"));
        assert!(!valid_name("a;b") && !valid_name("") && !valid_name("$(x)"));
        assert_eq!(config_name("CONFIG_XFS_FS").as_deref(), Some("XFS_FS"));
        assert_eq!(
            config_name("BLK_DEV_ZONED").as_deref(),
            Some("BLK_DEV_ZONED")
        );
        assert_eq!(config_name("xfs"), None);
        assert_eq!(config_name("CONFIG_"), None);
    }
}
