//! `bdsnapctl backup`: a device's snapshot image copied to a file, in full or incrementally with
//! the CBT read map, and a state file that says what the next incremental backup starts from.
//!
//! The CBT contract this relies on (see the UAPI header): every map byte holds the generation
//! that was live when the block was last written; TAKE increments the live generation and makes
//! the read map a copy of the live map at that instant. So after a backup of snapshot S, the
//! live generation `n` (recorded in the state file) is carried by exactly the blocks written
//! after S was taken; when the next snapshot S' is taken, its read map holds `>= n` for those
//! blocks and `< n` for every block S' shares with S. A different generation UUID means that
//! history was lost, and only a full backup is safe.
//!
//! The block selection and the coalescing of runs into reads are pure functions, unit-tested.

use crate::testio::blk::{self, AlignedBuf};
use crate::{BlockDevice, CbtInfo, Control, CtlError, GenerationId};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Read size of a full backup.
pub const FULL_READ: u64 = 1 << 20;
/// Largest read of an incremental backup (runs of changed blocks are merged up to this).
pub const MAX_EXTENT: u64 = 8 << 20;
/// Version of the state file format.
pub const STATE_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Ctl(#[from] CtlError),
    #[error("state file {path}: {what}")]
    State { path: PathBuf, what: String },
    #[error("{path}: {what}: {error}")]
    Io {
        path: PathBuf,
        what: String,
        error: io::Error,
    },
    #[error("snapshot {id}, device {device}: {what}")]
    Snapshot {
        id: u64,
        device: String,
        what: String,
    },
}

fn io_err(path: &Path, what: impl Into<String>) -> impl FnOnce(io::Error) -> BackupError {
    let path = path.to_path_buf();
    let what = what.into();
    move |error| BackupError::Io { path, what, error }
}

/// What a backup records for the next incremental one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupState {
    pub version: u32,
    /// The CBT generation UUID, 32 hex digits.
    pub generation_id: String,
    /// The live generation after the backed-up snapshot was taken: blocks written since carry it
    /// (or a later one).
    pub snap_number: u8,
    pub device_bytes: u64,
    pub block_size: u32,
    pub block_count: u32,
    pub image_bytes: u64,
    /// For people: which snapshot and device the backup was made from.
    #[serde(default)]
    pub snapshot_id: u64,
    #[serde(default)]
    pub device: String,
}

impl BackupState {
    fn new(cbt: &CbtInfo, image_bytes: u64, snapshot_id: u64, device: &BlockDevice) -> Self {
        Self {
            version: STATE_VERSION,
            generation_id: hex(&cbt.generation_id.0),
            snap_number: cbt.snap_number,
            device_bytes: cbt.device_sectors.saturating_mul(512),
            block_size: cbt.block_size,
            block_count: cbt.block_count,
            image_bytes,
            snapshot_id,
            device: device.name.clone(),
        }
    }

    /// Reads and checks a state file; every problem names the file.
    pub fn load(path: &Path) -> Result<Self, BackupError> {
        let bad = |what: String| BackupError::State {
            path: path.to_path_buf(),
            what,
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            bad(format!(
                "cannot read it ({e}); an incremental backup needs the state of a full one"
            ))
        })?;
        let s: Self =
            serde_json::from_str(&text).map_err(|e| bad(format!("malformed JSON: {e}")))?;
        if s.version != STATE_VERSION {
            return Err(bad(format!(
                "version {} (this tool writes {STATE_VERSION})",
                s.version
            )));
        }
        parse_hex16(&s.generation_id).ok_or_else(|| {
            bad(format!(
                "generation_id {:?} is not 32 hex digits",
                s.generation_id
            ))
        })?;
        if s.block_size == 0 || !s.block_size.is_power_of_two() {
            return Err(bad(format!(
                "block_size {} is not a power of two",
                s.block_size
            )));
        }
        Ok(s)
    }

    /// Writes the state next to its final place, syncs it, then renames it over the old one, so
    /// a crash leaves either the old or the new state.
    pub fn store(&self, path: &Path) -> Result<(), BackupError> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut text = serde_json::to_vec_pretty(self).map_err(|e| BackupError::State {
            path: path.to_path_buf(),
            what: e.to_string(),
        })?;
        text.push(b'\n');
        let f = File::create(&tmp).map_err(io_err(&tmp, "create"))?;
        f.write_all_at(&text, 0).map_err(io_err(&tmp, "write"))?;
        f.sync_all().map_err(io_err(&tmp, "fsync"))?;
        std::fs::rename(&tmp, path).map_err(io_err(path, "rename the new state into place"))?;
        Ok(())
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// 32 hex digits (dashes of the UUID form allowed) to 16 bytes.
pub fn parse_hex16(s: &str) -> Option<[u8; 16]> {
    let digits: Vec<u8> = s.bytes().filter(|&b| b != b'-').collect();
    if digits.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in digits.chunks(2).enumerate() {
        let text = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

/// Whether a read-map byte says the block changed since the backup whose state recorded
/// `since` (the generation live after its snapshot was taken).
pub fn is_changed(map_byte: u8, since: u8) -> bool {
    map_byte != 0 && map_byte >= since
}

/// Runs of consecutive changed blocks, as `(first block, block count)`.
pub fn changed_runs(map: &[u8], since: u8) -> Vec<(u64, u64)> {
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for (i, &v) in map.iter().enumerate() {
        if !is_changed(v, since) {
            continue;
        }
        let b = i as u64;
        match runs.last_mut() {
            Some((first, count)) if *first + *count == b => *count += 1,
            _ => runs.push((b, 1)),
        }
    }
    runs
}

/// The byte extents `(offset, length)` to copy for `runs` (`(first block, block count)`) of
/// `block_size`-byte blocks: each run cut into reads of at most `max_bytes` (a multiple of the
/// block size unless a block is larger than `max_bytes`), clipped at `image_bytes` (the last
/// block may be partial).
pub fn coalesce(
    runs: &[(u64, u64)],
    block_size: u64,
    image_bytes: u64,
    max_bytes: u64,
) -> Vec<(u64, u64)> {
    let step = if block_size >= max_bytes {
        max_bytes
    } else {
        max_bytes / block_size * block_size
    };
    let mut out = Vec::new();
    for &(first, count) in runs {
        let start = first.saturating_mul(block_size);
        let end = first
            .saturating_add(count)
            .saturating_mul(block_size)
            .min(image_bytes);
        let mut off = start;
        while off < end {
            let len = step.min(end - off);
            out.push((off, len));
            off += len;
        }
    }
    out
}

/// Which backup ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    Full,
    Incremental,
    /// An incremental backup was asked for and could not be done safely.
    FullFallback,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Full => "full",
            Mode::Incremental => "incremental",
            Mode::FullFallback => "full-fallback",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub mode: Mode,
    /// Why an incremental backup fell back to a full one.
    pub reason: Option<String>,
    pub bytes_copied: u64,
    /// Tracking blocks copied (a full backup: every block of the image).
    pub blocks_copied: u64,
    /// Reads issued.
    pub extents: u64,
    pub block_size: u32,
    pub image_bytes: u64,
    pub elapsed_ms: f64,
    pub snapshot: u64,
    pub device: String,
    pub image: PathBuf,
    pub output: PathBuf,
    pub state: PathBuf,
    pub generation_id: GenerationId,
    /// The generation recorded in the new state.
    pub snap_number: u8,
    /// The generation the incremental backup copied from (the previous state's).
    pub since_snap_number: Option<u8>,
}

pub struct BackupArgs<'a> {
    pub snapshot: u64,
    pub device: &'a BlockDevice,
    pub output: &'a Path,
    /// Where the new state is written.
    pub state: &'a Path,
    /// The state of the previous backup ([`BackupState::load`]) for an incremental backup;
    /// `None` for a full one.
    pub previous: Option<BackupState>,
}

/// The image device of `device` in `snapshot`, which must be taken and healthy.
fn image_of(ctl: &Control, snapshot: u64, device: &BlockDevice) -> Result<PathBuf, BackupError> {
    let fail = |what: String| BackupError::Snapshot {
        id: snapshot,
        device: device.name.clone(),
        what,
    };
    let info = ctl.snapshot_info(snapshot)?;
    match info.state {
        crate::snapshot::SnapshotState::Taken => {}
        s => {
            return Err(fail(format!(
                "snapshot is {s} (error {}), not taken",
                info.error
            )))
        }
    }
    let Some(d) = info.device(device.id) else {
        let devs: Vec<String> = info.devices.iter().map(|d| d.dev.to_string()).collect();
        return Err(fail(format!(
            "not in the snapshot (its devices: {})",
            devs.join(", ")
        )));
    };
    let Some(image) = d.image else {
        return Err(fail("the module reports no image".into()));
    };
    d.image_path
        .clone()
        .ok_or_else(|| fail(format!("no block device {image} in /sys/block")))
}

/// Reads an image with O_DIRECT; a read the device refuses as unaligned (EINVAL) is retried
/// through the page cache, so an odd-sized tail still works.
struct ImageReader {
    path: PathBuf,
    direct: File,
    buffered: Option<File>,
}

impl ImageReader {
    fn open(path: &Path) -> Result<Self, BackupError> {
        let direct = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
            .map_err(io_err(path, "open O_DIRECT"))?;
        Ok(Self {
            path: path.to_path_buf(),
            direct,
            buffered: None,
        })
    }

    fn size(&self) -> Result<u64, BackupError> {
        blk::size_bytes(&self.direct).map_err(io_err(&self.path, "BLKGETSIZE64"))
    }

    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> Result<(), BackupError> {
        let len = buf.len();
        let what = || format!("read {offset}+{len}");
        match self.direct.read_exact_at(buf, offset) {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
            r => return r.map_err(io_err(&self.path, what())),
        }
        let f = match self.buffered.take() {
            Some(f) => f,
            None => File::open(&self.path).map_err(io_err(&self.path, "open"))?,
        };
        let r = f.read_exact_at(buf, offset);
        self.buffered = Some(f);
        r.map_err(io_err(&self.path, what()))
    }
}

/// Why an incremental backup cannot build on `prev`, if it cannot.
fn fallback_reason(
    prev: &BackupState,
    cbt: &CbtInfo,
    image_bytes: u64,
    output: &Path,
) -> Option<String> {
    let now = hex(&cbt.generation_id.0);
    if parse_hex16(&prev.generation_id) != Some(cbt.generation_id.0) {
        return Some(format!(
            "generation_id changed ({} in the state, {now} now): tracking history was lost",
            prev.generation_id
        ));
    }
    if prev.block_size != cbt.block_size {
        return Some(format!(
            "block size changed ({} in the state, {} now)",
            prev.block_size, cbt.block_size
        ));
    }
    let device_bytes = cbt.device_sectors.saturating_mul(512);
    if prev.device_bytes != device_bytes {
        return Some(format!(
            "device size changed ({} in the state, {device_bytes} now)",
            prev.device_bytes
        ));
    }
    if prev.image_bytes != image_bytes {
        return Some(format!(
            "image size changed ({} in the state, {image_bytes} now)",
            prev.image_bytes
        ));
    }
    if cbt.snap_number < prev.snap_number {
        return Some(format!(
            "snap_number went back ({} in the state, {} now)",
            prev.snap_number, cbt.snap_number
        ));
    }
    match std::fs::metadata(output) {
        Err(e) => Some(format!("output {} unusable: {e}", output.display())),
        Ok(m) if m.len() != image_bytes => Some(format!(
            "output {} has {} bytes, the image {image_bytes}",
            output.display(),
            m.len()
        )),
        Ok(_) => None,
    }
}

/// Runs a backup as `a` says and returns what it did.
pub fn run(ctl: &Control, a: &BackupArgs) -> Result<Report, BackupError> {
    let start = Instant::now();
    let prev = a.previous.as_ref();
    let image = image_of(ctl, a.snapshot, a.device)?;
    let mut reader = ImageReader::open(&image)?;
    let image_bytes = reader.size()?;
    let cbt = ctl.cbt_info(a.device)?;
    if cbt.block_size == 0 {
        return Err(BackupError::Snapshot {
            id: a.snapshot,
            device: a.device.name.clone(),
            what: "CBT_INFO reports block size 0".into(),
        });
    }
    let (mode, reason) = match prev {
        None => (Mode::Full, None),
        Some(p) => match fallback_reason(p, &cbt, image_bytes, a.output) {
            Some(r) => (Mode::FullFallback, Some(r)),
            None => (Mode::Incremental, None),
        },
    };
    let bs = u64::from(cbt.block_size);
    let (bytes_copied, blocks_copied, extents, since) = match (mode, prev) {
        (Mode::Incremental, Some(p)) => {
            let map = ctl.cbt_read(a.device, 0, u64::from(cbt.block_count), false)?;
            let runs = changed_runs(&map, p.snap_number);
            let blocks: u64 = runs.iter().map(|r| r.1).sum();
            let ext = coalesce(&runs, bs, image_bytes, MAX_EXTENT);
            let out = OpenOptions::new()
                .write(true)
                .open(a.output)
                .map_err(io_err(a.output, "open"))?;
            let bytes = copy_extents(&mut reader, &out, a.output, &ext, false)?;
            out.sync_all().map_err(io_err(a.output, "fsync"))?;
            (bytes, blocks, ext.len() as u64, Some(p.snap_number))
        }
        _ => {
            let out = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(a.output)
                .map_err(io_err(a.output, "create"))?;
            out.set_len(image_bytes)
                .map_err(io_err(a.output, "set length"))?;
            let ext = coalesce(
                &[(0, image_bytes.div_ceil(FULL_READ))],
                FULL_READ,
                image_bytes,
                FULL_READ,
            );
            // The file was just truncated: all-zero reads need no write (it stays sparse).
            let bytes = copy_extents(&mut reader, &out, a.output, &ext, true)?;
            out.sync_all().map_err(io_err(a.output, "fsync"))?;
            (bytes, image_bytes.div_ceil(bs), ext.len() as u64, None)
        }
    };
    BackupState::new(&cbt, image_bytes, a.snapshot, a.device).store(a.state)?;
    Ok(Report {
        mode,
        reason,
        bytes_copied,
        blocks_copied,
        extents,
        block_size: cbt.block_size,
        image_bytes,
        elapsed_ms: (start.elapsed().as_secs_f64() * 1e6).round() / 1e3,
        snapshot: a.snapshot,
        device: a.device.name.clone(),
        image,
        output: a.output.to_path_buf(),
        state: a.state.to_path_buf(),
        generation_id: cbt.generation_id,
        snap_number: cbt.snap_number,
        since_snap_number: since,
    })
}

/// Copies each extent from the image to the same offset of `out`; returns the bytes read.
fn copy_extents(
    reader: &mut ImageReader,
    out: &File,
    out_path: &Path,
    extents: &[(u64, u64)],
    skip_zero: bool,
) -> Result<u64, BackupError> {
    // Extents are at most MAX_EXTENT or FULL_READ bytes (see `coalesce`).
    let largest = extents.iter().map(|e| e.1).max().unwrap_or(0);
    let mut buf = AlignedBuf::zeroed(largest.min(MAX_EXTENT.max(FULL_READ)) as usize);
    let mut total = 0u64;
    for &(off, len) in extents {
        let Some(data) = buf.as_mut_slice().get_mut(..len as usize) else {
            return Err(BackupError::Io {
                path: out_path.to_path_buf(),
                what: format!("extent {off}+{len} larger than the copy buffer"),
                error: io::Error::from_raw_os_error(libc::EINVAL),
            });
        };
        reader.read_at(data, off)?;
        if !(skip_zero && data.iter().all(|&b| b == 0)) {
            out.write_all_at(data, off)
                .map_err(io_err(out_path, format!("write {off}+{len}")))?;
        }
        total += len;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_means_nonzero_and_not_older_than_the_state() {
        assert!(!is_changed(0, 1), "never written");
        assert!(!is_changed(2, 3), "written before the previous snapshot");
        assert!(
            is_changed(3, 3),
            "written after the previous snapshot was taken"
        );
        assert!(
            is_changed(4, 3),
            "a later generation (a snapshot not backed up)"
        );
        assert!(!is_changed(0, 0));
    }

    #[test]
    fn runs_join_consecutive_changed_blocks() {
        let map = [0, 3, 3, 2, 4, 0, 0, 5, 1, 3];
        assert_eq!(changed_runs(&map, 3), vec![(1, 2), (4, 1), (7, 1), (9, 1)]);
        assert_eq!(changed_runs(&map, 1), vec![(1, 4), (7, 3)]);
        assert!(changed_runs(&map, 6).is_empty());
        assert!(changed_runs(&[], 1).is_empty());
        assert_eq!(changed_runs(&[7; 4], 7), vec![(0, 4)]);
    }

    #[test]
    fn coalescing_cuts_runs_into_bounded_reads_and_clips_the_tail() {
        let k = 1024u64;
        // 200 blocks of 64 KiB = 12.5 MiB: one 8 MiB read and the rest.
        let e = coalesce(&[(0, 200)], 64 * k, 1 << 40, 8 << 20);
        assert_eq!(e, vec![(0, 8 << 20), (8 << 20, 200 * 64 * k - (8 << 20))]);
        // Separate runs stay separate reads.
        let e = coalesce(&[(1, 1), (5, 2)], 64 * k, 1 << 40, 8 << 20);
        assert_eq!(e, vec![(64 * k, 64 * k), (5 * 64 * k, 128 * k)]);
        // The last block is partial: the image ends 1000 bytes into it.
        let image = 9 * 64 * k + 1000;
        let e = coalesce(&[(8, 2)], 64 * k, image, 8 << 20);
        assert_eq!(e, vec![(8 * 64 * k, 64 * k + 1000)]);
        // A block beyond the image (map rounded up) yields nothing.
        assert!(coalesce(&[(10, 1)], 64 * k, image, 8 << 20).is_empty());
        // A block larger than the read limit is split.
        let e = coalesce(&[(1, 1)], 16 << 20, 1 << 40, 8 << 20);
        assert_eq!(e, vec![(16 << 20, 8 << 20), (24 << 20, 8 << 20)]);
        // A limit that is not a multiple of the block size reads whole blocks.
        let e = coalesce(&[(0, 3)], 3000, 1 << 40, 7000);
        assert_eq!(e, vec![(0, 6000), (6000, 3000)]);
        // Every byte of every run is covered exactly once.
        let runs = [(0, 1), (3, 127), (131, 1)];
        let e = coalesce(&runs, 64 * k, 1 << 40, 8 << 20);
        let covered: u64 = e.iter().map(|x| x.1).sum();
        assert_eq!(covered, (1 + 127 + 1) * 64 * k);
        assert!(e.windows(2).all(|w| w[0].0 + w[0].1 <= w[1].0));
    }

    fn cbt(gen: u8, snap: u8) -> CbtInfo {
        CbtInfo {
            block_size: 65536,
            block_count: 16,
            device_sectors: 2048,
            generation_id: GenerationId([gen; 16]),
            snap_number: snap,
            state: 0,
            state_flags: vec![],
        }
    }

    #[test]
    fn state_round_trips_and_bad_states_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let dev = BlockDevice::resolve("253:16").unwrap();
        let s = BackupState::new(&cbt(0xab, 4), 1 << 20, 7, &dev);
        assert_eq!(s.generation_id, "ab".repeat(16));
        assert_eq!(s.device_bytes, 1 << 20);
        s.store(&path).unwrap();
        assert_eq!(BackupState::load(&path).unwrap(), s);
        assert!(!dir.path().join("state.json.tmp").exists());

        let missing = dir.path().join("nope.json");
        let e = BackupState::load(&missing).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("state file {}: ", missing.display())),
            "{e}"
        );
        std::fs::write(&path, "{\"version\": 1").unwrap();
        let e = BackupState::load(&path).unwrap_err().to_string();
        assert!(
            e.contains("malformed JSON") && e.contains("state.json"),
            "{e}"
        );
        let mut bad = s.clone();
        bad.generation_id = "xyz".into();
        bad.store(&path).unwrap();
        let e = BackupState::load(&path).unwrap_err().to_string();
        assert!(e.contains("generation_id"), "{e}");
    }

    #[test]
    fn hex_round_trip_accepts_uuid_form() {
        let id = [
            0x12u8, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 1, 2, 3, 4, 5, 6, 7, 8,
        ];
        assert_eq!(parse_hex16(&hex(&id)), Some(id));
        assert_eq!(
            parse_hex16(&GenerationId(id).to_string()),
            Some(id),
            "the UUID form with dashes"
        );
        assert_eq!(parse_hex16("12"), None);
        assert_eq!(parse_hex16(&"zz".repeat(16)), None);
    }

    #[test]
    fn fallback_reasons() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("backup.img");
        std::fs::write(&out, vec![0u8; 1 << 20]).unwrap();
        let dev = BlockDevice::resolve("253:16").unwrap();
        let prev = BackupState::new(&cbt(1, 3), 1 << 20, 1, &dev);
        assert_eq!(fallback_reason(&prev, &cbt(1, 4), 1 << 20, &out), None);
        let r = fallback_reason(&prev, &cbt(2, 4), 1 << 20, &out).unwrap();
        assert!(r.starts_with("generation_id changed"), "{r}");
        let mut other = cbt(1, 4);
        other.block_size = 4096;
        assert!(fallback_reason(&prev, &other, 1 << 20, &out)
            .unwrap()
            .starts_with("block size changed"));
        let mut other = cbt(1, 4);
        other.device_sectors = 4096;
        assert!(fallback_reason(&prev, &other, 1 << 20, &out)
            .unwrap()
            .starts_with("device size changed"));
        assert!(fallback_reason(&prev, &cbt(1, 2), 1 << 20, &out)
            .unwrap()
            .starts_with("snap_number went back"));
        let r = fallback_reason(&prev, &cbt(1, 4), 1 << 20, &dir.path().join("x")).unwrap();
        assert!(r.contains("unusable"), "{r}");
        std::fs::write(&out, b"short").unwrap();
        let r = fallback_reason(&prev, &cbt(1, 4), 1 << 20, &out).unwrap();
        assert!(r.contains("has 5 bytes"), "{r}");
    }

    /// The copy path on regular files (O_DIRECT works on ext4/xfs; skipped where the temporary
    /// directory has none): a full copy with an odd-sized tail, then changed blocks only.
    #[test]
    fn full_then_incremental_copy_reproduces_the_image() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("image");
        let out_path = dir.path().join("backup");
        let mut data = vec![0u8; (3 << 20) + 4096];
        crate::testio::rng::Rng::new(5).fill(&mut data[..(2 << 20)]);
        std::fs::write(&image, &data).unwrap();
        let Ok(mut reader) = ImageReader::open(&image) else {
            eprintln!("no O_DIRECT in {}: skipped", dir.path().display());
            return;
        };
        let image_bytes = data.len() as u64;
        let out = File::create(&out_path).unwrap();
        out.set_len(image_bytes).unwrap();
        let ext = coalesce(
            &[(0, image_bytes.div_ceil(FULL_READ))],
            FULL_READ,
            image_bytes,
            FULL_READ,
        );
        assert_eq!(ext.len(), 4);
        assert_eq!(ext[3], (3 << 20, 4096));
        let n = copy_extents(&mut reader, &out, &out_path, &ext, true).unwrap();
        assert_eq!(n, image_bytes);
        assert_eq!(std::fs::read(&out_path).unwrap(), data);

        // Blocks 1, 2 and 40 (64 KiB blocks) change; the map says so.
        let bs = 65536u64;
        for b in [1u64, 2, 40] {
            let at = (b * bs) as usize;
            data[at..at + bs as usize].fill(b as u8);
        }
        std::fs::write(&image, &data).unwrap();
        let mut map = vec![1u8; image_bytes.div_ceil(bs) as usize];
        for b in [1, 2, 40] {
            map[b] = 2;
        }
        let runs = changed_runs(&map, 2);
        assert_eq!(runs, vec![(1, 2), (40, 1)]);
        let ext = coalesce(&runs, bs, image_bytes, MAX_EXTENT);
        let mut reader = ImageReader::open(&image).unwrap();
        let n = copy_extents(&mut reader, &out, &out_path, &ext, false).unwrap();
        assert_eq!(n, 3 * bs);
        assert_eq!(std::fs::read(&out_path).unwrap(), data);
    }

    #[test]
    fn report_json_names_the_mode_in_kebab_case() {
        assert_eq!(
            serde_json::to_string(&Mode::FullFallback).unwrap(),
            "\"full-fallback\""
        );
        assert_eq!(
            serde_json::to_string(&Mode::Incremental).unwrap(),
            "\"incremental\""
        );
        for m in [Mode::Full, Mode::Incremental, Mode::FullFallback] {
            assert_eq!(serde_json::to_value(m).unwrap(), m.name());
        }
    }
}
