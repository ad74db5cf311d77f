//! Pattern files: the ground truth of snapshot consistency.
//!
//! `pattern-write` overwrites random 4 KiB blocks of one or more files with self-describing
//! blocks (magic, file tag, block index, sequence number, then bytes derived from those three),
//! while a take command runs, and logs for every block which sequence numbers a snapshot taken
//! then may show. `pattern-verify` reads the file as the snapshot shows it and checks every block
//! against that log.
//!
//! What a snapshot may show for block `b` ([`judge`]): the write that was last completed before
//! the take command started (`before[b]`), or any write that was in flight when it started or was
//! issued while it ran (`window[b]`). Writes to one block never overlap (a writer skips a block
//! with a write in flight), so "last completed" is well defined and a sequence number newer than
//! `before[b]` outside the window can only have been issued after the take returned.
//!
//! This module holds the pure parts (block codec, judgement, log format, file check); the writer
//! threads live in [`super::pattern_write`].

use super::blk::{self, AlignedBuf};
use super::rng::Rng;
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Bytes per pattern block.
pub const BLOCK: usize = 4096;
/// Bytes of the header at the start of each block.
pub const HEADER: usize = 32;
/// `"bdsnappt"` read as a little-endian u64.
pub const MAGIC: u64 = u64::from_le_bytes(*b"bdsnappt");
/// Version of the log format.
pub const LOG_VERSION: u32 = 1;

fn payload_seed(tag: u64, block: u64, seq: u64) -> u64 {
    tag.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ block.wrapping_mul(0xc2b2_ae3d_27d4_eb4f)
        ^ seq.wrapping_mul(0x1656_67b1_9e37_79f9)
}

/// Fills `buf` (one [`BLOCK`]) with the block `block` of file `tag` as written by `seq`.
pub fn encode(buf: &mut [u8], tag: u64, block: u64, seq: u64) {
    buf[0..8].copy_from_slice(&MAGIC.to_le_bytes());
    buf[8..16].copy_from_slice(&tag.to_le_bytes());
    buf[16..24].copy_from_slice(&block.to_le_bytes());
    buf[24..32].copy_from_slice(&seq.to_le_bytes());
    Rng::new(payload_seed(tag, block, seq)).fill(&mut buf[HEADER..BLOCK]);
}

/// What a block read back holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    /// All zeros: never written (a file created without `--prefill`).
    Unwritten,
    /// A complete block written by this sequence number.
    Written(u64),
    /// Not a pattern block.
    BadMagic,
    /// A pattern block of another file or another place.
    Misplaced { tag: u64, block: u64 },
    /// Header intact, payload not the one the header promises: a torn or mixed block.
    Torn(u64),
}

fn u64_at(buf: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    u64::from_le_bytes(b)
}

/// Reads block `block` of file `tag` back (`buf` is one [`BLOCK`]).
pub fn decode(buf: &[u8], tag: u64, block: u64) -> Decoded {
    if u64_at(buf, 0) != MAGIC {
        if buf.iter().all(|&b| b == 0) {
            return Decoded::Unwritten;
        }
        return Decoded::BadMagic;
    }
    let (t, b, seq) = (u64_at(buf, 8), u64_at(buf, 16), u64_at(buf, 24));
    if t != tag || b != block {
        return Decoded::Misplaced { tag: t, block: b };
    }
    let mut want = [0u8; BLOCK - HEADER];
    Rng::new(payload_seed(tag, block, seq)).fill(&mut want);
    if buf[HEADER..BLOCK] != want[..] {
        return Decoded::Torn(seq);
    }
    Decoded::Written(seq)
}

/// How a readable block compares with what the snapshot may show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The last write completed before the take started (or never written, as then).
    OkBefore,
    /// A write in flight when the take started, or issued while it ran.
    OkWindow,
    /// Older than the last write completed before the take: the snapshot lost a write.
    Stale,
    /// Issued after the take returned: the snapshot saw a later write.
    Future,
}

impl Verdict {
    pub fn ok(self) -> bool {
        matches!(self, Verdict::OkBefore | Verdict::OkWindow)
    }
}

/// Judges `found` (`None`: unwritten) against `before` (`None`: nothing completed before the
/// take) and the window of block `b`.
pub fn judge(before: Option<u64>, window: &[u64], found: Option<u64>) -> Verdict {
    if found == before {
        return Verdict::OkBefore;
    }
    match (found, before) {
        (Some(s), _) if window.contains(&s) => Verdict::OkWindow,
        (None, Some(_)) => Verdict::Stale,
        (Some(s), Some(b)) if s < b => Verdict::Stale,
        _ => Verdict::Future,
    }
}

/// Writes by the phase they were issued in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteCounts {
    pub total: u64,
    /// Issued before the take command started.
    pub before: u64,
    /// Issued while it ran.
    pub during: u64,
    /// Issued after it returned.
    pub after: u64,
}

/// One pattern file in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileLog {
    pub path: PathBuf,
    /// The file's index in the `--file` list, written into every block.
    pub tag: u64,
    pub size: u64,
    pub blocks: u64,
    /// Per block: the last write completed when the take started (`null`: none).
    pub before: Vec<Option<u64>>,
    /// `[block, [seq, ...]]` for each block with writes in flight at the take start or issued
    /// during it, sorted by block.
    pub window: Vec<(u64, Vec<u64>)>,
}

impl FileLog {
    /// The window of block `b` (empty for most blocks).
    pub fn window_of(&self, b: u64) -> &[u64] {
        match self.window.binary_search_by_key(&b, |w| w.0) {
            Ok(i) => &self.window[i].1,
            Err(_) => &[],
        }
    }
}

/// `LOG.json` of `pattern-write`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatternLog {
    pub version: u32,
    pub block_size: u64,
    pub seed: u64,
    pub threads: u32,
    pub seconds: f64,
    pub take_after: f64,
    pub take_cmd: String,
    /// Exit code of `sh -c TAKE_CMD` (`null`: killed by a signal).
    pub take_status: Option<i32>,
    pub take_ok: bool,
    pub take_ms: f64,
    pub prefill: bool,
    /// The first sequence number issued after the take started.
    pub take_start_seq: u64,
    /// The first sequence number issued after the take returned.
    pub take_end_seq: u64,
    pub writes: WriteCounts,
    pub files: Vec<FileLog>,
}

#[derive(Debug, thiserror::Error)]
pub enum PatternError {
    #[error("{path}: {what}: {error}")]
    Io {
        path: PathBuf,
        what: String,
        error: std::io::Error,
    },
    #[error("{path}: {what}")]
    Log { path: PathBuf, what: String },
    #[error("{0}")]
    Params(String),
}

pub(crate) fn io_err(
    path: &Path,
    what: impl Into<String>,
) -> impl FnOnce(std::io::Error) -> PatternError {
    let path = path.to_path_buf();
    let what = what.into();
    move |error| PatternError::Io { path, what, error }
}

impl PatternLog {
    pub fn load(path: &Path) -> Result<Self, PatternError> {
        let bad = |what: String| PatternError::Log {
            path: path.to_path_buf(),
            what,
        };
        let text = std::fs::read(path).map_err(io_err(path, "read log"))?;
        let log: Self =
            serde_json::from_slice(&text).map_err(|e| bad(format!("malformed log: {e}")))?;
        if log.version != LOG_VERSION {
            return Err(bad(format!(
                "log version {} (this tool reads {LOG_VERSION})",
                log.version
            )));
        }
        if log.block_size != BLOCK as u64 {
            return Err(bad(format!("block_size {} is not {BLOCK}", log.block_size)));
        }
        for (i, f) in log.files.iter().enumerate() {
            if f.before.len() as u64 != f.blocks || f.size != f.blocks * BLOCK as u64 {
                return Err(bad(format!(
                    "files[{i}]: {} blocks, {} bytes and {} before entries disagree",
                    f.blocks,
                    f.size,
                    f.before.len()
                )));
            }
            if f.window.windows(2).any(|w| w[0].0 >= w[1].0) {
                return Err(bad(format!("files[{i}]: window is not sorted by block")));
            }
        }
        Ok(log)
    }

    pub fn store(&self, path: &Path) -> Result<(), PatternError> {
        let f = File::create(path).map_err(io_err(path, "create log"))?;
        let mut w = std::io::BufWriter::new(&f);
        serde_json::to_writer(&mut w, self).map_err(|e| PatternError::Log {
            path: path.to_path_buf(),
            what: e.to_string(),
        })?;
        std::io::Write::write_all(&mut w, b"\n").map_err(io_err(path, "write log"))?;
        w.into_inner()
            .map_err(|e| PatternError::Io {
                path: path.to_path_buf(),
                what: "write log".into(),
                error: e.into_error(),
            })?
            .sync_all()
            .map_err(io_err(path, "fsync log"))
    }
}

/// A block that failed the check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockFailure {
    pub block: u64,
    /// `stale`, `future`, `torn`, `bad-header`.
    pub kind: &'static str,
    /// The sequence number found (`null`: unwritten or unreadable header).
    pub seq: Option<u64>,
    pub before: Option<u64>,
    pub window: Vec<u64>,
    pub detail: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyCounts {
    pub blocks: u64,
    pub ok_before: u64,
    pub ok_window: u64,
    pub stale: u64,
    pub future: u64,
    pub torn: u64,
    pub bad_header: u64,
    /// Blocks never written (all zero), counted in `ok_before` where that is right.
    pub unwritten: u64,
}

impl VerifyCounts {
    pub fn failures(&self) -> u64 {
        self.stale + self.future + self.torn + self.bad_header
    }
}

/// Most failing blocks listed in full.
pub const FAILURE_EXAMPLES: usize = 20;

/// Checks one block read back; counts it and returns the failure, if it is one.
pub fn check_block(
    file: &FileLog,
    block: u64,
    buf: &[u8],
    counts: &mut VerifyCounts,
) -> Option<BlockFailure> {
    counts.blocks += 1;
    let before = file.before.get(block as usize).copied().flatten();
    let window = file.window_of(block);
    let fail = |kind, seq, detail: String| BlockFailure {
        block,
        kind,
        seq,
        before,
        window: window.to_vec(),
        detail,
    };
    let found = match decode(buf, file.tag, block) {
        Decoded::Unwritten => {
            counts.unwritten += 1;
            None
        }
        Decoded::Written(seq) => Some(seq),
        Decoded::BadMagic => {
            counts.bad_header += 1;
            return Some(fail("bad-header", None, "no pattern magic".into()));
        }
        Decoded::Misplaced { tag, block: b } => {
            counts.bad_header += 1;
            return Some(fail(
                "bad-header",
                None,
                format!("holds block {b} of file {tag}"),
            ));
        }
        Decoded::Torn(seq) => {
            counts.torn += 1;
            return Some(fail(
                "torn",
                Some(seq),
                "payload does not match the header".into(),
            ));
        }
    };
    match judge(before, window, found) {
        Verdict::OkBefore => counts.ok_before += 1,
        Verdict::OkWindow => counts.ok_window += 1,
        Verdict::Stale => {
            counts.stale += 1;
            return Some(fail(
                "stale",
                found,
                "older than the last write before the take".into(),
            ));
        }
        Verdict::Future => {
            counts.future += 1;
            return Some(fail("future", found, "written after the take".into()));
        }
    }
    None
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifySummary {
    pub log: PathBuf,
    pub path: PathBuf,
    pub file_index: usize,
    #[serde(flatten)]
    pub counts: VerifyCounts,
    pub writes: WriteCounts,
    pub take_ok: bool,
    pub direct_io: bool,
    /// Why the check failed, in words (empty when it passed).
    pub problems: Vec<String>,
    pub failure_examples: Vec<BlockFailure>,
    pub ok: bool,
}

/// Size of what `f` holds: a regular file's length or a block device's size.
fn size_of_file(f: &File, path: &Path) -> Result<u64, PatternError> {
    let m = f.metadata().map_err(io_err(path, "stat"))?;
    if m.file_type().is_block_device() {
        blk::size_bytes(f).map_err(io_err(path, "BLKGETSIZE64"))
    } else {
        Ok(m.len())
    }
}

/// Reads `path` (the file as the snapshot shows it) and checks every block against file
/// `file_index` of the log.
pub fn verify(
    log_path: &Path,
    file_index: usize,
    path: &Path,
) -> Result<VerifySummary, PatternError> {
    let log = PatternLog::load(log_path)?;
    let file = log.files.get(file_index).ok_or_else(|| PatternError::Log {
        path: log_path.to_path_buf(),
        what: format!(
            "no file index {file_index} (the log has {})",
            log.files.len()
        ),
    })?;
    let (f, mut direct_io) = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
    {
        Ok(f) => (f, true),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            (File::open(path).map_err(io_err(path, "open"))?, false)
        }
        Err(e) => return Err(io_err(path, "open O_DIRECT")(e)),
    };
    let mut f = f;
    let size = size_of_file(&f, path)?;
    if size < file.size {
        return Err(PatternError::Params(format!(
            "{}: {size} bytes, the log's file {file_index} ({}) has {}",
            path.display(),
            file.path.display(),
            file.size
        )));
    }
    const CHUNK: usize = 256 * BLOCK;
    let mut buf = AlignedBuf::zeroed(CHUNK);
    let mut counts = VerifyCounts::default();
    let mut examples = Vec::new();
    let mut offset = 0u64;
    while offset < file.size {
        let len = (file.size - offset).min(CHUNK as u64) as usize;
        let data = &mut buf.as_mut_slice()[..len];
        match f.read_exact_at(data, offset) {
            Err(e) if direct_io && e.raw_os_error() == Some(libc::EINVAL) => {
                // The filesystem refuses O_DIRECT reads: read through the page cache.
                f = File::open(path).map_err(io_err(path, "open"))?;
                direct_io = false;
                continue;
            }
            r => r.map_err(io_err(path, format!("read {offset}+{len}")))?,
        }
        for (i, block) in data.chunks(BLOCK).enumerate() {
            let b = offset / BLOCK as u64 + i as u64;
            if let Some(failure) = check_block(file, b, block, &mut counts) {
                if examples.len() < FAILURE_EXAMPLES {
                    examples.push(failure);
                }
            }
        }
        offset += len as u64;
    }
    let mut problems = Vec::new();
    if counts.failures() > 0 {
        problems.push(format!(
            "{} blocks failed: {} stale, {} future, {} torn, {} bad header",
            counts.failures(),
            counts.stale,
            counts.future,
            counts.torn,
            counts.bad_header
        ));
    }
    if !log.take_ok {
        problems.push(format!(
            "the take command failed (status {:?})",
            log.take_status
        ));
    }
    if log.writes.after == 0 {
        problems.push("the log shows no write after the take: the test proves nothing".into());
    }
    Ok(VerifySummary {
        log: log_path.to_path_buf(),
        path: path.to_path_buf(),
        file_index,
        counts,
        writes: log.writes,
        take_ok: log.take_ok,
        direct_io,
        ok: problems.is_empty(),
        problems,
        failure_examples: examples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(tag: u64, b: u64, seq: u64) -> Vec<u8> {
        let mut buf = vec![0u8; BLOCK];
        encode(&mut buf, tag, b, seq);
        buf
    }

    #[test]
    fn blocks_decode_to_what_was_encoded() {
        let buf = block(1, 77, 12345);
        assert_eq!(&buf[..8], b"bdsnappt");
        assert_eq!(decode(&buf, 1, 77), Decoded::Written(12345));
        assert_eq!(decode(&block(0, 0, 0), 0, 0), Decoded::Written(0));
        assert_eq!(decode(&vec![0u8; BLOCK], 1, 77), Decoded::Unwritten);
    }

    #[test]
    fn wrong_place_file_and_garbage_are_bad_headers() {
        let buf = block(1, 77, 5);
        assert_eq!(
            decode(&buf, 1, 78),
            Decoded::Misplaced { tag: 1, block: 77 }
        );
        assert_eq!(
            decode(&buf, 2, 77),
            Decoded::Misplaced { tag: 1, block: 77 }
        );
        let mut junk = vec![0u8; BLOCK];
        junk[100] = 1;
        assert_eq!(decode(&junk, 1, 77), Decoded::BadMagic);
    }

    #[test]
    fn torn_and_mixed_blocks_are_detected() {
        // First sector of one write, the rest of another (a torn 4 KiB write).
        let a = block(0, 9, 100);
        let b = block(0, 9, 101);
        let mut mixed = b.clone();
        mixed[..512].copy_from_slice(&a[..512]);
        assert_eq!(decode(&mixed, 0, 9), Decoded::Torn(100));
        let mut mixed = a.clone();
        mixed[BLOCK - 512..].copy_from_slice(&b[BLOCK - 512..]);
        assert_eq!(decode(&mixed, 0, 9), Decoded::Torn(100));
        let mut flipped = a.clone();
        flipped[2000] ^= 0x10;
        assert_eq!(decode(&flipped, 0, 9), Decoded::Torn(100));
        // The payload depends on tag, block and seq.
        assert_ne!(block(0, 9, 100)[HEADER..], block(0, 9, 101)[HEADER..]);
        assert_ne!(block(0, 9, 100)[HEADER..], block(0, 10, 100)[HEADER..]);
        assert_ne!(block(0, 9, 100)[HEADER..], block(1, 9, 100)[HEADER..]);
    }

    #[test]
    fn allowed_set_is_before_plus_window() {
        // Last completed before the take: 5; in flight or issued during the take: 7, 9.
        let w = [7, 9];
        assert_eq!(judge(Some(5), &w, Some(5)), Verdict::OkBefore);
        assert_eq!(judge(Some(5), &w, Some(7)), Verdict::OkWindow);
        assert_eq!(judge(Some(5), &w, Some(9)), Verdict::OkWindow);
        assert_eq!(judge(Some(5), &w, Some(3)), Verdict::Stale);
        assert_eq!(
            judge(Some(5), &w, Some(8)),
            Verdict::Future,
            "not in the window"
        );
        assert_eq!(judge(Some(5), &w, Some(11)), Verdict::Future);
        assert_eq!(
            judge(Some(5), &w, None),
            Verdict::Stale,
            "the write was lost"
        );
        // Never written before the take.
        assert_eq!(judge(None, &[], None), Verdict::OkBefore);
        assert_eq!(judge(None, &[4], Some(4)), Verdict::OkWindow);
        assert_eq!(judge(None, &[4], None), Verdict::OkBefore);
        assert_eq!(judge(None, &[], Some(4)), Verdict::Future);
        // Prefilled (seq 0) and untouched until after the take.
        assert_eq!(judge(Some(0), &[], Some(0)), Verdict::OkBefore);
        assert_eq!(judge(Some(0), &[], Some(30)), Verdict::Future);
        assert!(Verdict::OkWindow.ok() && !Verdict::Future.ok());
    }

    fn file_log() -> FileLog {
        FileLog {
            path: "/mnt/a".into(),
            tag: 0,
            size: 4 * BLOCK as u64,
            blocks: 4,
            before: vec![Some(0), Some(4), None, Some(2)],
            window: vec![(1, vec![6]), (2, vec![5, 8])],
        }
    }

    #[test]
    fn check_block_counts_each_kind() {
        let f = file_log();
        let mut c = VerifyCounts::default();
        assert!(check_block(&f, 0, &block(0, 0, 0), &mut c).is_none());
        assert!(check_block(&f, 1, &block(0, 1, 6), &mut c).is_none());
        assert!(check_block(&f, 2, &vec![0u8; BLOCK], &mut c).is_none());
        let e = check_block(&f, 3, &block(0, 3, 1), &mut c).unwrap();
        assert_eq!((e.kind, e.seq, e.before), ("stale", Some(1), Some(2)));
        let e = check_block(&f, 1, &block(0, 1, 9), &mut c).unwrap();
        assert_eq!((e.kind, e.window.clone()), ("future", vec![6]));
        let e = check_block(&f, 2, &block(1, 2, 5), &mut c).unwrap();
        assert_eq!(e.kind, "bad-header");
        let mut torn = block(0, 3, 2);
        torn[4000] ^= 1;
        assert_eq!(check_block(&f, 3, &torn, &mut c).unwrap().kind, "torn");
        assert_eq!(
            c,
            VerifyCounts {
                blocks: 7,
                ok_before: 2,
                ok_window: 1,
                stale: 1,
                future: 1,
                torn: 1,
                bad_header: 1,
                unwritten: 1,
            }
        );
        assert_eq!(c.failures(), 4);
    }

    fn log(files: Vec<FileLog>, after: u64) -> PatternLog {
        PatternLog {
            version: LOG_VERSION,
            block_size: BLOCK as u64,
            seed: 1,
            threads: 2,
            seconds: 3.0,
            take_after: 1.0,
            take_cmd: "true".into(),
            take_status: Some(0),
            take_ok: true,
            take_ms: 1.5,
            prefill: true,
            take_start_seq: 5,
            take_end_seq: 9,
            writes: WriteCounts {
                total: 10 + after,
                before: 5,
                during: 5,
                after,
            },
            files,
        }
    }

    fn write_blocks(path: &Path, blocks: &[Vec<u8>]) {
        std::fs::write(path, blocks.concat()).unwrap();
    }

    #[test]
    fn verify_reads_a_copy_and_judges_every_block() {
        let dir = tempfile::tempdir().unwrap();
        let log_path = dir.path().join("log.json");
        log(vec![file_log()], 3).store(&log_path).unwrap();
        assert_eq!(
            PatternLog::load(&log_path).unwrap(),
            log(vec![file_log()], 3)
        );
        let img = dir.path().join("a");
        write_blocks(
            &img,
            &[
                block(0, 0, 0),
                block(0, 1, 4),
                block(0, 2, 8),
                block(0, 3, 2),
            ],
        );
        let s = verify(&log_path, 0, &img).unwrap();
        assert!(s.ok, "{s:?}");
        assert_eq!((s.counts.ok_before, s.counts.ok_window), (3, 1));
        // A later write shows: fails, and says which block.
        write_blocks(
            &img,
            &[
                block(0, 0, 0),
                block(0, 1, 12),
                block(0, 2, 8),
                block(0, 3, 2),
            ],
        );
        let s = verify(&log_path, 0, &img).unwrap();
        assert!(!s.ok);
        assert_eq!(s.counts.future, 1);
        assert_eq!(s.failure_examples[0].block, 1);
        // No writes after the take: nothing proven.
        log(vec![file_log()], 0).store(&log_path).unwrap();
        write_blocks(
            &img,
            &[
                block(0, 0, 0),
                block(0, 1, 4),
                block(0, 2, 8),
                block(0, 3, 2),
            ],
        );
        let s = verify(&log_path, 0, &img).unwrap();
        assert!(!s.ok);
        assert!(s.problems[0].contains("no write after the take"), "{s:?}");
    }

    #[test]
    fn verify_refuses_short_files_and_bad_logs_with_names() {
        let dir = tempfile::tempdir().unwrap();
        let log_path = dir.path().join("log.json");
        log(vec![file_log()], 3).store(&log_path).unwrap();
        let img = dir.path().join("a");
        write_blocks(&img, &[block(0, 0, 0)]);
        let e = verify(&log_path, 0, &img).unwrap_err().to_string();
        assert!(e.contains("4096 bytes") && e.contains("16384"), "{e}");
        let e = verify(&log_path, 3, &img).unwrap_err().to_string();
        assert!(e.contains("no file index 3"), "{e}");
        std::fs::write(&log_path, "{").unwrap();
        let e = verify(&log_path, 0, &img).unwrap_err().to_string();
        assert!(e.starts_with(&log_path.display().to_string()), "{e}");
        assert!(e.contains("malformed log"), "{e}");
        let mut bad = file_log();
        bad.before.pop();
        log(vec![bad], 3).store(&log_path).unwrap();
        let e = verify(&log_path, 0, &img).unwrap_err().to_string();
        assert!(e.contains("files[0]"), "{e}");
    }
}
