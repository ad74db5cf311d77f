//! What was written where: the log `write-random` appends to and `cbt-verify` reads, and the
//! arithmetic from byte extents to tracking blocks.

use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

/// How an extent was written; every kind changes the device and must be tracked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// `pwrite` through the page cache, then `fsync`.
    Buffered,
    /// `pwrite` with O_DIRECT.
    Direct,
    /// `BLKDISCARD`.
    Discard,
    /// `BLKZEROOUT`.
    Zeroout,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Buffered, Kind::Direct, Kind::Discard, Kind::Zeroout];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Buffered => "buffered",
            Kind::Direct => "direct",
            Kind::Discard => "discard",
            Kind::Zeroout => "zeroout",
        }
    }
}

/// One log line: `{"kind":"direct","offset":1048576,"length":4096}` (bytes, relative to the
/// device the log was written on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Extent {
    pub kind: Kind,
    pub offset: u64,
    pub length: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}:{line}: {error}")]
    Parse {
        path: PathBuf,
        line: usize,
        error: serde_json::Error,
    },
    #[error("{path}:{line}: empty extent")]
    Empty { path: PathBuf, line: usize },
}

/// Reads a log; blank lines are skipped, anything else malformed is an error with its line.
pub fn read_log(path: &Path) -> Result<Vec<Extent>, LogError> {
    let io = |error| LogError::Io {
        path: path.to_path_buf(),
        error,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(io)?;
        if line.trim().is_empty() {
            continue;
        }
        let e: Extent = serde_json::from_str(&line).map_err(|error| LogError::Parse {
            path: path.to_path_buf(),
            line: i + 1,
            error,
        })?;
        if e.length == 0 {
            return Err(LogError::Empty {
                path: path.to_path_buf(),
                line: i + 1,
            });
        }
        out.push(e);
    }
    Ok(out)
}

/// Appends one line and flushes, so a crash mid-run still leaves every completed extent logged.
pub fn append(log: &mut impl Write, e: &Extent) -> std::io::Result<()> {
    let line = serde_json::to_string(e).map_err(std::io::Error::other)?;
    writeln!(log, "{line}")?;
    log.flush()
}

/// The tracking blocks (first, last inclusive) that extent `e` touches on the tracked device.
///
/// `partition_offset` is where the device the log was written on starts within the tracked
/// device, in bytes (positive: log of a partition, tracker on the whole disk; negative: the
/// other way round). The part of the extent outside `0..device_bytes` is not the tracked
/// device's and is dropped; `None` when nothing is left.
pub fn touched_blocks(
    e: &Extent,
    partition_offset: i64,
    block_size: u64,
    device_bytes: u64,
) -> Option<(u64, u64)> {
    if e.length == 0 || block_size == 0 {
        return None;
    }
    let start = i128::from(e.offset) + i128::from(partition_offset);
    let end = start + i128::from(e.length); // exclusive; i128 cannot overflow here
    let start = start.max(0);
    let end = end.min(i128::from(device_bytes));
    if start >= end {
        return None;
    }
    let bs = i128::from(block_size);
    Some(((start / bs) as u64, ((end - 1) / bs) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(offset: u64, length: u64) -> Extent {
        Extent {
            kind: Kind::Buffered,
            offset,
            length,
        }
    }

    const BS: u64 = 65536;
    const DEV: u64 = 1 << 30;

    #[test]
    fn aligned_extent_touches_exactly_its_blocks() {
        assert_eq!(touched_blocks(&ext(0, BS), 0, BS, DEV), Some((0, 0)));
        assert_eq!(touched_blocks(&ext(BS, 2 * BS), 0, BS, DEV), Some((1, 2)));
    }

    #[test]
    fn unaligned_and_spanning_extents() {
        // One byte before a boundary and one after: two blocks.
        assert_eq!(touched_blocks(&ext(BS - 1, 2), 0, BS, DEV), Some((0, 1)));
        // Ends exactly on the boundary: one block.
        assert_eq!(
            touched_blocks(&ext(512, BS - 512), 0, BS, DEV),
            Some((0, 0))
        );
        // 512 bytes inside block 3.
        assert_eq!(
            touched_blocks(&ext(3 * BS + 4096, 512), 0, BS, DEV),
            Some((3, 3))
        );
        // 1 MiB starting 512 bytes into block 1: blocks 1..=17.
        assert_eq!(
            touched_blocks(&ext(BS + 512, 1 << 20), 0, BS, DEV),
            Some((1, 17))
        );
    }

    #[test]
    fn partition_offset_shifts_and_clips() {
        // A partition starting at 1 MiB: its byte 0 is the disk's block 16.
        assert_eq!(
            touched_blocks(&ext(0, 4096), 1 << 20, BS, DEV),
            Some((16, 16))
        );
        // Partition at 2048 sectors + 512 bytes unaligned start straddles.
        assert_eq!(
            touched_blocks(&ext(BS - 1024, 1024), 512, BS, DEV),
            Some((0, 1))
        );
        // Whole-disk log checked against a partition starting at 1 MiB: before it, dropped.
        assert_eq!(touched_blocks(&ext(0, 4096), -(1 << 20), BS, DEV), None);
        // Straddling the partition start: only the part inside counts.
        assert_eq!(
            touched_blocks(&ext((1 << 20) - 4096, 8192), -(1 << 20), BS, DEV),
            Some((0, 0))
        );
        // Past the device end: clipped to the last block.
        assert_eq!(
            touched_blocks(&ext(DEV - 512, 4096), 0, BS, DEV),
            Some((DEV / BS - 1, DEV / BS - 1))
        );
        assert_eq!(touched_blocks(&ext(DEV, 4096), 0, BS, DEV), None);
    }

    #[test]
    fn log_round_trips_and_names_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut f = std::fs::File::create(&path).unwrap();
        let e = Extent {
            kind: Kind::Zeroout,
            offset: 4096,
            length: 512,
        };
        append(&mut f, &e).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"kind\":\"zeroout\",\"offset\":4096,\"length\":512}\n"
        );
        assert_eq!(read_log(&path).unwrap(), vec![e]);
        std::fs::write(&path, "\n{\"kind\":\"write\",\"offset\":0,\"length\":1}\n").unwrap();
        let err = read_log(&path).unwrap_err().to_string();
        assert!(err.contains(":2: unknown variant `write`"), "{err}");
        std::fs::write(&path, "{\"kind\":\"direct\",\"offset\":0,\"length\":0}\n").unwrap();
        assert!(matches!(
            read_log(&path),
            Err(LogError::Empty { line: 1, .. })
        ));
    }
}
