//! `nowait-write`: O_DIRECT writes of whole aligned blocks with `pwritev2(RWF_NOWAIT)`, the way
//! io_uring and AIO submitters ask not to be blocked. Under a snapshot, a first write to a
//! chunk has to wait for the chunk's copy, so the module answers such a write with `EAGAIN`
//! instead of holding the submitter. `EAGAIN` is counted, not failed: the write is then issued
//! again as a plain `pwrite`, so every planned block lands and the log (the `write-random`
//! format, which `cbt-verify` reads) holds every write.

use super::blk::{self, AlignedBuf};
use super::extent::{append, Extent, Kind};
use super::rng::Rng;
use super::write::extent_data;
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Largest `--bs`: one buffer of this size is allocated.
pub const MAX_BS: u64 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum NowaitError {
    #[error("{0}")]
    Params(String),
    #[error("{path}: {what}: {error}")]
    Io {
        path: PathBuf,
        what: String,
        error: std::io::Error,
    },
    #[error("{path}: not a block device")]
    NotBlock { path: PathBuf },
    #[error("{path}: pwritev2 with RWF_NOWAIT is not supported here (EOPNOTSUPP)")]
    Unsupported { path: PathBuf },
}

#[derive(Debug, Clone, Copy)]
pub struct PlanParams {
    pub seed: u64,
    pub count: u64,
    /// Bytes per write; block `k` of the span starts at `offset + k * bs`.
    pub bs: u64,
    pub offset: u64,
    /// Bytes from `offset` the writes may use.
    pub span: u64,
    /// The device's logical block size: `bs` and `offset` must be multiples of it.
    pub logical_block: u64,
}

/// The byte offset of every write, in order: a pure function of the parameters.
pub fn plan(p: &PlanParams) -> Result<Vec<u64>, NowaitError> {
    let lb = p.logical_block;
    if lb == 0 || !lb.is_power_of_two() {
        return Err(NowaitError::Params(format!(
            "logical block size {lb} is not a power of two"
        )));
    }
    if p.bs == 0 || !p.bs.is_multiple_of(lb) || p.bs > MAX_BS {
        return Err(NowaitError::Params(format!(
            "--bs {} must be a multiple of the logical block size {lb}, at most {MAX_BS}",
            p.bs
        )));
    }
    if !p.offset.is_multiple_of(lb) {
        return Err(NowaitError::Params(format!(
            "--offset {} is not a multiple of the logical block size {lb}",
            p.offset
        )));
    }
    let blocks = p.span / p.bs;
    if blocks == 0 {
        return Err(NowaitError::Params(format!(
            "the span ({} bytes from offset {}) holds no {}-byte block",
            p.span, p.offset, p.bs
        )));
    }
    let mut rng = Rng::new(p.seed);
    Ok((0..p.count)
        .map(|_| p.offset + rng.below(blocks) * p.bs)
        .collect())
}

pub struct Args<'a> {
    pub device: &'a Path,
    pub count: u64,
    pub bs: u64,
    pub seed: u64,
    pub offset: u64,
    /// Default: from `offset` to the end of the device.
    pub span: Option<u64>,
    /// JSON-lines log of the completed writes (appended to).
    pub log: Option<&'a Path>,
}

/// Times of one kind of call.
#[derive(Debug, Default, Serialize)]
pub struct Latency {
    pub calls: u64,
    pub max_us: f64,
    pub mean_us: f64,
    #[serde(skip)]
    total: Duration,
}

impl Latency {
    fn record(&mut self, d: Duration) {
        self.calls += 1;
        self.total += d;
        self.max_us = self.max_us.max(d.as_secs_f64() * 1e6);
        self.mean_us = self.total.as_secs_f64() * 1e6 / self.calls as f64;
    }
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub device: PathBuf,
    pub seed: u64,
    pub bs: u64,
    pub offset: u64,
    pub span: u64,
    pub logical_block: u64,
    /// Writes that landed (all of them: EAGAIN'd ones were written again).
    pub writes: u64,
    pub bytes: u64,
    /// RWF_NOWAIT calls refused with EAGAIN.
    pub eagain: u64,
    /// RWF_NOWAIT calls that wrote only part of the block (the whole block was written again).
    pub short: u64,
    /// Writes that the RWF_NOWAIT call itself completed.
    pub nowait_completed: u64,
    pub eagain_ratio: f64,
    pub elapsed_s: f64,
    pub writes_per_sec: f64,
    /// The RWF_NOWAIT calls, EAGAIN'd ones included: a NOWAIT call that took long waited.
    pub nowait: Latency,
    /// The plain writes issued after EAGAIN or a short write.
    pub retry: Latency,
}

/// `pwritev2(fd, [buf], pos, RWF_NOWAIT)`.
fn pwrite_nowait(f: &File, buf: &[u8], pos: u64) -> std::io::Result<usize> {
    let iov = libc::iovec {
        iov_base: buf.as_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    let pos =
        libc::off_t::try_from(pos).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: one iovec describing `buf`, live and only read by the kernel during the call.
    let n = unsafe { libc::pwritev2(f.as_raw_fd(), &iov, 1, pos, libc::RWF_NOWAIT) };
    usize::try_from(n).map_err(|_| std::io::Error::last_os_error())
}

pub fn run(a: &Args) -> Result<Summary, NowaitError> {
    let io = |what: String| {
        let path = a.device.to_path_buf();
        move |error| NowaitError::Io { path, what, error }
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(a.device)
        .map_err(io("open O_DIRECT".into()))?;
    let meta = file.metadata().map_err(io("stat".into()))?;
    if !meta.file_type().is_block_device() {
        return Err(NowaitError::NotBlock {
            path: a.device.to_path_buf(),
        });
    }
    let size = blk::size_bytes(&file).map_err(io("BLKGETSIZE64".into()))?;
    let logical_block = blk::logical_block_size(&file).map_err(io("BLKSSZGET".into()))?;
    if a.offset >= size {
        return Err(NowaitError::Params(format!(
            "--offset {} is not inside the device ({size} bytes)",
            a.offset
        )));
    }
    let span = a.span.unwrap_or(size - a.offset).min(size - a.offset);
    let positions = plan(&PlanParams {
        seed: a.seed,
        count: a.count,
        bs: a.bs,
        offset: a.offset,
        span,
        logical_block,
    })?;
    let mut log = match a.log {
        Some(path) => Some(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|error| NowaitError::Io {
                    path: path.to_path_buf(),
                    what: "open log".into(),
                    error,
                })?,
        ),
        None => None,
    };
    // `plan` bounded bs by MAX_BS, so it fits.
    let mut buf = AlignedBuf::zeroed(a.bs as usize);
    let mut s = Summary {
        device: a.device.to_path_buf(),
        seed: a.seed,
        bs: a.bs,
        offset: a.offset,
        span,
        logical_block,
        writes: 0,
        bytes: 0,
        eagain: 0,
        short: 0,
        nowait_completed: 0,
        eagain_ratio: 0.0,
        elapsed_s: 0.0,
        writes_per_sec: 0.0,
        nowait: Latency::default(),
        retry: Latency::default(),
    };
    let started = Instant::now();
    for (i, &pos) in positions.iter().enumerate() {
        let what = |call: &str| format!("{call} {pos}+{}", a.bs);
        extent_data(a.seed, i as u64, buf.as_mut_slice());
        let t = Instant::now();
        let r = pwrite_nowait(&file, buf.as_slice(), pos);
        s.nowait.record(t.elapsed());
        let again = match r {
            Ok(n) if n as u64 == a.bs => {
                s.nowait_completed += 1;
                false
            }
            Ok(_) => {
                s.short += 1;
                true
            }
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
                s.eagain += 1;
                true
            }
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                return Err(NowaitError::Unsupported {
                    path: a.device.to_path_buf(),
                })
            }
            Err(e) => return Err(io(what("pwritev2 RWF_NOWAIT"))(e)),
        };
        if again {
            let t = Instant::now();
            file.write_all_at(buf.as_slice(), pos)
                .map_err(io(what("pwrite after EAGAIN")))?;
            s.retry.record(t.elapsed());
        }
        s.writes += 1;
        s.bytes += a.bs;
        if let (Some(log), Some(path)) = (log.as_mut(), a.log) {
            let e = Extent {
                kind: Kind::Direct,
                offset: pos,
                length: a.bs,
            };
            append(log, &e).map_err(|error| NowaitError::Io {
                path: path.to_path_buf(),
                what: "append".into(),
                error,
            })?;
        }
    }
    file.sync_all().map_err(io("fsync".into()))?;
    s.elapsed_s = started.elapsed().as_secs_f64();
    if s.elapsed_s > 0.0 {
        s.writes_per_sec = s.writes as f64 / s.elapsed_s;
    }
    if s.writes > 0 {
        s.eagain_ratio = s.eagain as f64 / s.writes as f64;
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> PlanParams {
        PlanParams {
            seed: 1,
            count: 1000,
            bs: 4096,
            offset: 1 << 20,
            span: 8 << 20,
            logical_block: 512,
        }
    }

    #[test]
    fn writes_are_aligned_inside_the_span_and_reproducible() {
        let p = params();
        let a = plan(&p).unwrap();
        assert_eq!(a.len(), 1000);
        for &pos in &a {
            assert_eq!((pos - p.offset) % p.bs, 0, "{pos}");
            assert!(pos >= p.offset && pos + p.bs <= p.offset + p.span, "{pos}");
        }
        assert_eq!(a, plan(&p).unwrap());
        assert_ne!(a, plan(&PlanParams { seed: 2, ..p }).unwrap());
        // A span that is not a multiple of bs: the last partial block is never written.
        let odd = PlanParams {
            span: 3 * 4096 + 100,
            ..p
        };
        assert!(plan(&odd)
            .unwrap()
            .iter()
            .all(|&pos| pos + 4096 <= p.offset + 3 * 4096));
    }

    #[test]
    fn misaligned_or_empty_geometry_is_refused() {
        let p = params();
        for bad in [
            PlanParams { bs: 0, ..p },
            PlanParams { bs: 1000, ..p },
            PlanParams {
                bs: MAX_BS * 2,
                ..p
            },
            PlanParams { offset: 100, ..p },
            PlanParams { span: 4095, ..p },
            PlanParams {
                logical_block: 0,
                ..p
            },
        ] {
            assert!(plan(&bad).is_err(), "{bad:?}");
        }
        let e = plan(&PlanParams { span: 100, ..p }).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the span (100 bytes from offset 1048576) holds no 4096-byte block"
        );
        assert_eq!(
            plan(&PlanParams { count: 0, ..p }).unwrap(),
            Vec::<u64>::new()
        );
    }

    #[test]
    fn latency_keeps_max_and_mean() {
        let mut l = Latency::default();
        l.record(Duration::from_micros(10));
        l.record(Duration::from_micros(30));
        assert_eq!(l.calls, 2);
        assert!((l.max_us - 30.0).abs() < 1e-6);
        assert!((l.mean_us - 20.0).abs() < 1e-6);
        let v = serde_json::to_value(&l).unwrap();
        assert!(v.get("total").is_none());
    }

    #[test]
    fn nowait_writes_reach_a_regular_file() {
        // The pwritev2 call itself, on a file the host surely has (no O_DIRECT here).
        let f = tempfile::tempfile().unwrap();
        match pwrite_nowait(&f, b"abcd", 8) {
            Ok(n) => {
                assert_eq!(n, 4);
                let mut back = [0u8; 4];
                f.read_exact_at(&mut back, 8).unwrap();
                assert_eq!(&back, b"abcd");
            }
            // Some file systems refuse RWF_NOWAIT for buffered writes.
            Err(e) => assert!(
                matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EAGAIN)),
                "{e}"
            ),
        }
    }
}
