//! `write-random`: a reproducible mix of writes (page cache and O_DIRECT), discards and
//! zero-outs of many sizes and alignments, each logged once it completed.
//!
//! The plan is a pure function of the seed and the device geometry (tested on the host); the
//! execution only carries it out.

use super::blk::{self, AlignedBuf};
use super::extent::{append, Extent, Kind};
use super::rng::Rng;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Sizes the plan draws from: sector, page and typical tracking-block sizes, and each of them a
/// little off, so extents end inside blocks and straddle block boundaries.
const SIZES: &[u64] = &[
    512, 1024, 3584, 4096, 4608, 8192, 12288, 32768, 65024, 65536, 69632, 131072, 258048, 262144,
    524288, 1048064, 1048576,
];

/// Boundaries the plan likes to straddle (typical tracking block sizes).
const BOUNDARIES: &[u64] = &[4096, 65536, 262144, 1048576];

#[derive(Debug, Clone, Copy)]
pub struct PlanParams {
    pub seed: u64,
    pub count: u64,
    /// Largest extent, in bytes.
    pub max_size: u64,
    /// Bytes of the device the plan may use (from offset 0).
    pub span: u64,
    /// Logical block size: O_DIRECT, discard and zero-out are aligned to it.
    pub logical_block: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{path}: {what}: {error}")]
    Io {
        path: PathBuf,
        what: String,
        error: std::io::Error,
    },
    #[error("{0}")]
    Params(String),
}

/// The extents to write, in order.
pub fn plan(p: &PlanParams) -> Result<Vec<Extent>, WriteError> {
    let lb = p.logical_block;
    if lb == 0 || !lb.is_power_of_two() {
        return Err(WriteError::Params(format!(
            "logical block size {lb} is not a power of two"
        )));
    }
    let span = p.span / lb * lb;
    if span < lb || p.max_size < lb {
        return Err(WriteError::Params(format!(
            "device span {} and --max-size {} must both hold one {lb}-byte block",
            p.span, p.max_size
        )));
    }
    let mut rng = Rng::new(p.seed);
    let mut out = Vec::with_capacity(p.count.min(1 << 20) as usize);
    for _ in 0..p.count {
        let kind = match rng.below(100) {
            0..=34 => Kind::Buffered,
            35..=69 => Kind::Direct,
            70..=84 => Kind::Discard,
            _ => Kind::Zeroout,
        };
        let aligned = kind != Kind::Buffered;
        let mut length = if rng.percent(15) {
            rng.range(1, p.max_size)
        } else {
            *rng.pick(SIZES)
        };
        if !aligned && rng.percent(30) {
            // Page-cache writes may start and end anywhere.
            length += rng.range(1, 511);
        }
        length = length.min(p.max_size).min(span);
        if aligned {
            length = (length / lb * lb).max(lb);
        }
        let max_start = span - length;
        let mut offset = match rng.below(3) {
            // Straddle a boundary: half before it, half after.
            0 => {
                let boundary = *rng.pick(BOUNDARIES);
                let k = rng.range(1, (span / boundary).max(1));
                (k * boundary).saturating_sub(length / 2)
            }
            // Start just after a page, so it is unaligned to 4 KiB.
            1 => rng.below(span / 4096) * 4096 + lb,
            _ => rng.below(max_start + 1),
        };
        if !aligned && rng.percent(30) {
            offset += rng.range(1, 511);
        }
        offset = offset.min(max_start);
        if aligned {
            offset = offset / lb * lb;
        }
        out.push(Extent {
            kind,
            offset,
            length,
        });
    }
    Ok(out)
}

/// The data written for extent number `index`: pseudo-random, reproducible from the seed.
pub fn extent_data(seed: u64, index: u64, buf: &mut [u8]) {
    Rng::new(seed ^ index.wrapping_mul(0xa076_1d64_78bd_642f)).fill(buf);
}

#[derive(Debug, Default, Serialize)]
pub struct WriteSummary {
    pub written: BTreeMap<&'static str, u64>,
    pub bytes: BTreeMap<&'static str, u64>,
    /// Discards the device refused with EOPNOTSUPP (not logged: they changed nothing).
    pub discards_unsupported: u64,
    pub logical_block: u64,
    pub span: u64,
}

pub struct WriteArgs<'a> {
    pub device: &'a Path,
    pub log: &'a Path,
    pub seed: u64,
    pub count: u64,
    pub max_size: u64,
    /// Limit the extents to the first `span` bytes (default: the whole device).
    pub span: Option<u64>,
}

/// Plans and carries out the writes on a block device, appending each completed extent to the
/// log.
pub fn run(a: &WriteArgs) -> Result<WriteSummary, WriteError> {
    let io = |what: &str| {
        let path = a.device.to_path_buf();
        let what = what.to_string();
        move |error| WriteError::Io { path, what, error }
    };
    let buffered = OpenOptions::new()
        .read(true)
        .write(true)
        .open(a.device)
        .map_err(io("open"))?;
    let direct = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(a.device)
        .map_err(io("open O_DIRECT"))?;
    let size = blk::size_bytes(&buffered).map_err(io("BLKGETSIZE64"))?;
    let logical_block = blk::logical_block_size(&buffered).map_err(io("BLKSSZGET"))?;
    let span = a.span.unwrap_or(size).min(size);
    let extents = plan(&PlanParams {
        seed: a.seed,
        count: a.count,
        max_size: a.max_size,
        span,
        logical_block,
    })?;
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(a.log)
        .map_err(|error| WriteError::Io {
            path: a.log.to_path_buf(),
            what: "open log".into(),
            error,
        })?;
    let mut summary = WriteSummary {
        logical_block,
        span,
        ..Default::default()
    };
    for (i, e) in extents.iter().enumerate() {
        let what = format!("{} {}+{}", e.kind.name(), e.offset, e.length);
        let done = write_one(&buffered, &direct, a.seed, i as u64, e).map_err(io(&what))?;
        if !done {
            summary.discards_unsupported += 1;
            continue;
        }
        append(&mut log, e).map_err(|error| WriteError::Io {
            path: a.log.to_path_buf(),
            what: "append".into(),
            error,
        })?;
        *summary.written.entry(e.kind.name()).or_default() += 1;
        *summary.bytes.entry(e.kind.name()).or_default() += e.length;
    }
    buffered.sync_all().map_err(io("fsync"))?;
    direct.sync_all().map_err(io("fsync O_DIRECT"))?;
    Ok(summary)
}

/// Carries out one extent; `Ok(false)` for a discard the device does not support.
fn write_one(
    buffered: &File,
    direct: &File,
    seed: u64,
    index: u64,
    e: &Extent,
) -> std::io::Result<bool> {
    let len =
        usize::try_from(e.length).map_err(|_| std::io::Error::from_raw_os_error(libc::E2BIG))?;
    match e.kind {
        Kind::Buffered => {
            let mut data = vec![0u8; len];
            extent_data(seed, index, &mut data);
            buffered.write_all_at(&data, e.offset)?;
            // fsync so the write reaches the device (and the tracker) before the map is read.
            buffered.sync_all()?;
        }
        Kind::Direct => {
            let mut buf = AlignedBuf::zeroed(len);
            extent_data(seed, index, buf.as_mut_slice());
            direct.write_all_at(buf.as_slice(), e.offset)?;
        }
        Kind::Discard => match blk::discard(direct, e.offset, e.length) {
            Err(err) if err.raw_os_error() == Some(libc::EOPNOTSUPP) => return Ok(false),
            r => r?,
        },
        Kind::Zeroout => blk::zero_out(direct, e.offset, e.length)?,
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(seed: u64) -> PlanParams {
        PlanParams {
            seed,
            count: 2000,
            max_size: 1 << 20,
            span: 256 << 20,
            logical_block: 512,
        }
    }

    #[test]
    fn plan_is_reproducible_and_seed_dependent() {
        assert_eq!(plan(&params(1)).unwrap(), plan(&params(1)).unwrap());
        assert_ne!(plan(&params(1)).unwrap(), plan(&params(2)).unwrap());
    }

    #[test]
    fn plan_respects_device_alignment_and_limits() {
        let p = params(42);
        for e in plan(&p).unwrap() {
            assert!(e.length >= 1 && e.length <= p.max_size, "{e:?}");
            assert!(e.offset + e.length <= p.span, "{e:?}");
            if e.kind != Kind::Buffered {
                assert_eq!(e.offset % 512, 0, "{e:?}");
                assert_eq!(e.length % 512, 0, "{e:?}");
            }
        }
        let small = PlanParams {
            max_size: 4096,
            span: 1 << 20,
            logical_block: 4096,
            ..p
        };
        for e in plan(&small).unwrap() {
            assert!(e.length <= 4096 && e.offset + e.length <= 1 << 20, "{e:?}");
            if e.kind != Kind::Buffered {
                assert_eq!((e.offset % 4096, e.length), (0, 4096), "{e:?}");
            }
        }
    }

    #[test]
    fn plan_mixes_kinds_sizes_and_alignments() {
        let extents = plan(&params(7)).unwrap();
        for k in Kind::ALL {
            assert!(extents.iter().any(|e| e.kind == k), "no {k:?}");
        }
        let has = |f: &dyn Fn(&Extent) -> bool| extents.iter().any(f);
        assert!(has(&|e| e.length == 512));
        assert!(has(&|e| e.length == 1 << 20));
        assert!(has(&|e| e.kind == Kind::Direct && e.offset % 4096 != 0));
        assert!(has(&|e| e.kind == Kind::Buffered && e.offset % 512 != 0));
        assert!(has(&|e| e.kind == Kind::Buffered && e.length % 512 != 0));
        // Some extents straddle a 64 KiB boundary, some lie inside one block.
        assert!(has(
            &|e| e.offset / 65536 != (e.offset + e.length - 1) / 65536
        ));
        assert!(has(
            &|e| e.offset / 65536 == (e.offset + e.length - 1) / 65536
        ));
    }

    #[test]
    fn bad_geometry_is_refused() {
        let p = PlanParams {
            logical_block: 500,
            ..params(1)
        };
        assert!(plan(&p).is_err());
        let p = PlanParams {
            span: 100,
            ..params(1)
        };
        assert!(plan(&p).is_err());
    }

    #[test]
    fn data_depends_on_seed_and_index() {
        let (mut a, mut b, mut c) = ([0u8; 64], [0u8; 64], [0u8; 64]);
        extent_data(1, 0, &mut a);
        extent_data(1, 1, &mut b);
        extent_data(2, 0, &mut c);
        assert_ne!(a, b);
        assert_ne!(a, c);
        let mut again = [0u8; 64];
        extent_data(1, 0, &mut again);
        assert_eq!(a, again);
    }
}
