//! Naming a block device: a path to a block special file (resolved through its `st_rdev`) or a
//! literal `MAJ:MIN`, the two ways a person or a script knows a device.

use crate::uapi::BdsnapDevId;
use std::fmt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("{path}: {error}")]
    Stat {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: not a block device")]
    NotBlock { path: PathBuf },
    #[error("{spec}: not a device path nor MAJ:MIN ({why})")]
    BadSpec { spec: String, why: &'static str },
}

/// A block device (whole disk or partition) by number, with the name the user gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockDevice {
    pub id: BdsnapDevId,
    /// What the user wrote (path or `MAJ:MIN`), for messages.
    pub name: String,
}

impl fmt::Display for BlockDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl BlockDevice {
    /// A device by number; named `MAJ:MIN`.
    pub fn from_id(id: BdsnapDevId) -> Self {
        Self {
            id,
            name: format!("{}:{}", id.major, id.minor),
        }
    }

    /// Resolves `spec`: a `MAJ:MIN` pair, or else a path that must be a block device.
    ///
    /// `MAJ:MIN` wins over a file of that name in the current directory: device numbers are
    /// what scripts pass, and such files are unlikely.
    pub fn resolve(spec: &str) -> Result<Self, DeviceError> {
        if let Some(id) = parse_maj_min(spec)? {
            return Ok(Self {
                id,
                name: spec.to_string(),
            });
        }
        let path = PathBuf::from(spec);
        let meta = std::fs::metadata(&path).map_err(|error| DeviceError::Stat {
            path: path.clone(),
            error,
        })?;
        if !meta.file_type().is_block_device() {
            return Err(DeviceError::NotBlock { path });
        }
        let rdev = meta.rdev() as libc::dev_t;
        Ok(Self {
            id: BdsnapDevId {
                major: libc::major(rdev),
                minor: libc::minor(rdev),
            },
            name: spec.to_string(),
        })
    }
}

/// `Some(id)` for a well-formed `MAJ:MIN`, `None` for anything that is not shaped like one
/// (then it is a path), an error for a pair of numbers that do not fit.
fn parse_maj_min(spec: &str) -> Result<Option<BdsnapDevId>, DeviceError> {
    let Some((maj, min)) = spec.split_once(':') else {
        return Ok(None);
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(maj) || !digits(min) {
        return Ok(None);
    }
    let bad = |why| DeviceError::BadSpec {
        spec: spec.to_string(),
        why,
    };
    let major: u32 = maj.parse().map_err(|_| bad("major out of range"))?;
    let minor: u32 = min.parse().map_err(|_| bad("minor out of range"))?;
    Ok(Some(BdsnapDevId { major, minor }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maj_min_is_parsed() {
        let d = BlockDevice::resolve("253:16").unwrap();
        assert_eq!(
            d.id,
            BdsnapDevId {
                major: 253,
                minor: 16
            }
        );
        assert_eq!(d.to_string(), "253:16");
    }

    #[test]
    fn maj_min_out_of_range_is_an_error() {
        let e = BlockDevice::resolve("99999999999:1").unwrap_err();
        assert!(e.to_string().contains("major out of range"), "{e}");
    }

    #[test]
    fn regular_file_is_refused() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let e = BlockDevice::resolve(f.path().to_str().unwrap()).unwrap_err();
        assert!(matches!(e, DeviceError::NotBlock { .. }), "{e}");
        assert!(e.to_string().ends_with("not a block device"));
    }

    #[test]
    fn character_device_is_refused() {
        let e = BlockDevice::resolve("/dev/null").unwrap_err();
        assert!(matches!(e, DeviceError::NotBlock { .. }), "{e}");
    }

    #[test]
    fn missing_path_names_the_path() {
        let e = BlockDevice::resolve("/nonexistent/vdz").unwrap_err();
        assert!(e.to_string().starts_with("/nonexistent/vdz: "), "{e}");
    }

    #[test]
    fn block_device_resolves_to_the_numbers_sysfs_shows() {
        // Any block device of the machine with a sysfs entry will do; skip where there is none.
        let Some((path, sysfs)) = std::fs::read_dir("/dev").ok().and_then(|d| {
            d.flatten().find_map(|e| {
                let is_block = e.file_type().map(|t| t.is_block_device()).unwrap_or(false);
                let sysfs = std::fs::read_to_string(
                    std::path::Path::new("/sys/class/block")
                        .join(e.file_name())
                        .join("dev"),
                )
                .ok()?;
                is_block.then(|| (e.path(), sysfs.trim().to_string()))
            })
        }) else {
            return;
        };
        let d = BlockDevice::resolve(path.to_str().unwrap()).unwrap();
        assert_eq!(format!("{}:{}", d.id.major, d.id.minor), sysfs);
    }
}
