//! `pattern-write`: writer threads overwrite random pattern blocks with O_DIRECT while a
//! coordinator runs the take command, and record which writes a snapshot may show (see
//! [`super::pattern`] for the rule and the log).
//!
//! Bookkeeping happens under one mutex, taken when a write is issued and when it completes, so
//! the cut at the take start is consistent: `before` is copied and every write in flight is put
//! in the window in the same critical section in which the phase changes. Sequence numbers are
//! handed out under that lock too, so they increase in issue order.

use super::blk::AlignedBuf;
use super::pattern::{
    encode, io_err, FileLog, PatternError, PatternLog, WriteCounts, BLOCK, LOG_VERSION,
};
use super::rng::Rng;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Blocks written per call while prefilling.
const PREFILL_BLOCKS: usize = 256;
/// How long writers go on past `--seconds` waiting for a first write after the take.
const AFTER_GRACE: Duration = Duration::from_secs(60);

pub struct WriteArgs<'a> {
    pub files: &'a [PathBuf],
    pub size: u64,
    pub threads: u32,
    pub seconds: f64,
    pub take_after: f64,
    pub take_cmd: &'a str,
    pub log: &'a Path,
    pub seed: u64,
    pub prefill: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Before,
    During,
    After,
}

/// Everything the writers and the coordinator share, behind one lock.
struct Book {
    phase: Phase,
    next_seq: u64,
    /// Per file, per block: the last completed write.
    last: Vec<Vec<Option<u64>>>,
    /// (file, block) → seq of the write in flight there.
    in_flight: HashMap<(usize, u64), u64>,
    /// Per file: `last` when the take started.
    before: Vec<Vec<Option<u64>>>,
    /// Per file: block → seqs a snapshot may show besides `before`.
    window: Vec<BTreeMap<u64, Vec<u64>>>,
    issued: WriteCounts,
    /// Writes issued after the take that completed.
    after_completed: u64,
    take_start_seq: u64,
    take_end_seq: u64,
}

impl Book {
    fn new(files: usize, blocks: u64, first_seq: u64, initial: Option<u64>) -> Self {
        Self {
            phase: Phase::Before,
            next_seq: first_seq,
            last: vec![vec![initial; blocks as usize]; files],
            in_flight: HashMap::new(),
            before: Vec::new(),
            window: vec![BTreeMap::new(); files],
            issued: WriteCounts::default(),
            after_completed: 0,
            take_start_seq: 0,
            take_end_seq: 0,
        }
    }

    /// Issues a write to `file`: a block without a write in flight (drawn from `rng`) and the
    /// next sequence number. Returns `(block, seq, phase)`.
    fn issue(&mut self, file: usize, blocks: u64, rng: &mut Rng) -> (u64, u64, Phase) {
        let block = loop {
            let b = rng.below(blocks);
            if !self.in_flight.contains_key(&(file, b)) {
                break b;
            }
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        self.in_flight.insert((file, block), seq);
        self.issued.total += 1;
        match self.phase {
            Phase::Before => self.issued.before += 1,
            Phase::During => {
                self.issued.during += 1;
                self.window[file].entry(block).or_default().push(seq);
            }
            Phase::After => self.issued.after += 1,
        }
        (block, seq, self.phase)
    }

    fn complete(&mut self, file: usize, block: u64, seq: u64, issued_in: Phase) {
        self.in_flight.remove(&(file, block));
        self.last[file][block as usize] = Some(seq);
        if issued_in == Phase::After {
            self.after_completed += 1;
        }
    }

    /// The take starts: freeze `before`, open the window with every write in flight.
    fn start_take(&mut self) {
        self.phase = Phase::During;
        self.before = self.last.clone();
        for (&(file, block), &seq) in &self.in_flight {
            self.window[file].entry(block).or_default().push(seq);
        }
        self.take_start_seq = self.next_seq;
    }

    fn end_take(&mut self) {
        self.phase = Phase::After;
        self.take_end_seq = self.next_seq;
    }
}

struct Shared {
    book: Mutex<Book>,
    stop: AtomicBool,
    error: Mutex<Option<PatternError>>,
}

impl Shared {
    fn book(&self) -> MutexGuard<'_, Book> {
        // A writer that panicked holding the lock left consistent data (no partial updates
        // happen across a call that can panic), so keep going with it.
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn fail(&self, e: PatternError) {
        let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(e);
        }
        self.stop.store(true, Ordering::SeqCst);
    }
}

#[derive(Debug, Serialize)]
pub struct WriteSummary {
    pub log: PathBuf,
    pub files: Vec<PathBuf>,
    pub size: u64,
    pub threads: u32,
    pub writes: WriteCounts,
    pub take_status: Option<i32>,
    pub take_ok: bool,
    pub take_ms: f64,
    pub take_start_seq: u64,
    pub take_end_seq: u64,
    /// Blocks with a window, and the seqs in all windows.
    pub window_blocks: u64,
    pub window_seqs: u64,
    pub elapsed_ms: f64,
    pub ok: bool,
}

fn check_args(a: &WriteArgs) -> Result<u64, PatternError> {
    let p = |s: String| Err(PatternError::Params(s));
    if a.files.is_empty() {
        return p("give at least one --file".into());
    }
    if a.size == 0 || !a.size.is_multiple_of(BLOCK as u64) {
        return p(format!(
            "--size {} must be a positive multiple of {BLOCK}",
            a.size
        ));
    }
    let blocks = a.size / BLOCK as u64;
    if a.threads == 0 {
        return p("--threads must be at least 1".into());
    }
    if blocks <= u64::from(a.threads) {
        return p(format!(
            "--size gives {blocks} blocks per file; more than --threads {} are needed",
            a.threads
        ));
    }
    if !(a.take_after >= 0.0 && a.seconds.is_finite() && a.take_after < a.seconds) {
        return p(format!(
            "--take-after {} must lie in [0, --seconds {})",
            a.take_after, a.seconds
        ));
    }
    Ok(blocks)
}

fn open_file(path: &Path, size: u64, prefill: bool) -> Result<File, PatternError> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(!prefill)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .map_err(io_err(path, "open O_DIRECT (tmpfs before 6.6 has none)"))?;
    if !prefill {
        // Truncated above: every block reads as zeros, "never written".
        f.set_len(size).map_err(io_err(path, "set length"))?;
    }
    Ok(f)
}

/// Writes every block of `f` with seq 0 and syncs, so later writes overwrite in place.
fn prefill(f: &File, path: &Path, tag: u64, blocks: u64) -> Result<(), PatternError> {
    let mut buf = AlignedBuf::zeroed(PREFILL_BLOCKS * BLOCK);
    let mut b = 0u64;
    while b < blocks {
        let n = (blocks - b).min(PREFILL_BLOCKS as u64) as usize;
        let data = &mut buf.as_mut_slice()[..n * BLOCK];
        for (i, chunk) in data.chunks_mut(BLOCK).enumerate() {
            encode(chunk, tag, b + i as u64, 0);
        }
        f.write_all_at(data, b * BLOCK as u64)
            .map_err(io_err(path, format!("prefill at block {b}")))?;
        b += n as u64;
    }
    f.set_len(blocks * BLOCK as u64)
        .map_err(io_err(path, "set length"))?;
    f.sync_all().map_err(io_err(path, "fsync"))
}

/// One writer: round-robin over the files, a random free block each time.
fn writer(shared: &Shared, files: &[(File, PathBuf)], blocks: u64, thread: u32, seed: u64) {
    let mut rng = Rng::new(seed ^ u64::from(thread).wrapping_mul(0xa076_1d64_78bd_642f));
    let mut buf = AlignedBuf::zeroed(BLOCK);
    let mut k = thread as usize;
    while !shared.stop.load(Ordering::SeqCst) {
        let file = k % files.len();
        k += 1;
        let (block, seq, phase) = shared.book().issue(file, blocks, &mut rng);
        encode(buf.as_mut_slice(), file as u64, block, seq);
        let (f, path) = &files[file];
        if let Err(e) = f.write_all_at(buf.as_slice(), block * BLOCK as u64) {
            shared.fail(io_err(path, format!("write block {block} (seq {seq})"))(e));
            return;
        }
        shared.book().complete(file, block, seq, phase);
    }
}

/// Milliseconds with microsecond resolution.
fn round_ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// Sleeps until `deadline` or until the run is stopped.
fn sleep_until(shared: &Shared, deadline: Instant) {
    while !shared.stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(20)));
    }
}

/// Runs the take command with its standard output on ours standard error, so that our standard
/// output stays one JSON object. Returns (exit code, success).
fn run_take(cmd: &str) -> Result<(Option<i32>, bool), PatternError> {
    let err = |what: &str| {
        let what = what.to_string();
        move |error| PatternError::Io {
            path: PathBuf::from("sh"),
            what,
            error,
        }
    };
    let status =
        super::run_shell_to_stderr(cmd).map_err(err(&format!("run take command {cmd:?}")))?;
    Ok((status.code(), status.success()))
}

pub fn run(a: &WriteArgs) -> Result<WriteSummary, PatternError> {
    let blocks = check_args(a)?;
    let start_all = Instant::now();
    let mut files = Vec::with_capacity(a.files.len());
    for (tag, path) in a.files.iter().enumerate() {
        let f = open_file(path, a.size, a.prefill)?;
        if a.prefill {
            prefill(&f, path, tag as u64, blocks)?;
        }
        files.push((f, path.clone()));
    }
    let shared = Shared {
        // Seq 0 is the prefill; writes count from 1.
        book: Mutex::new(Book::new(files.len(), blocks, 1, a.prefill.then_some(0))),
        stop: AtomicBool::new(false),
        error: Mutex::new(None),
    };
    let start = Instant::now();
    let take_at = start + Duration::from_secs_f64(a.take_after);
    let end_at = start + Duration::from_secs_f64(a.seconds);
    let (take_status, take_ok, take_ms) = std::thread::scope(|s| {
        for t in 0..a.threads {
            let (shared, files) = (&shared, &files);
            s.spawn(move || writer(shared, files, blocks, t, a.seed));
        }
        sleep_until(&shared, take_at);
        shared.book().start_take();
        let t0 = Instant::now();
        let take = run_take(a.take_cmd);
        let take_ms = round_ms(t0.elapsed());
        shared.book().end_take();
        let (status, ok) = match take {
            Ok(r) => r,
            Err(e) => {
                shared.fail(e);
                (None, false)
            }
        };
        // Run to the end, and on until a write issued after the take has completed (bounded).
        sleep_until(&shared, end_at);
        let grace_end = Instant::now() + AFTER_GRACE;
        while !shared.stop.load(Ordering::SeqCst)
            && shared.book().after_completed == 0
            && Instant::now() < grace_end
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        shared.stop.store(true, Ordering::SeqCst);
        (status, ok, take_ms)
    });
    if let Some(e) = shared
        .error
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
    {
        return Err(e);
    }
    for (f, path) in &files {
        f.sync_all().map_err(io_err(path, "fsync"))?;
    }
    let book = shared.book.into_inner().unwrap_or_else(|p| p.into_inner());
    let window_blocks = book.window.iter().map(|w| w.len() as u64).sum();
    let window_seqs = book
        .window
        .iter()
        .flat_map(|w| w.values())
        .map(|v| v.len() as u64)
        .sum();
    let log = PatternLog {
        version: LOG_VERSION,
        block_size: BLOCK as u64,
        seed: a.seed,
        threads: a.threads,
        seconds: a.seconds,
        take_after: a.take_after,
        take_cmd: a.take_cmd.to_string(),
        take_status,
        take_ok,
        take_ms,
        prefill: a.prefill,
        take_start_seq: book.take_start_seq,
        take_end_seq: book.take_end_seq,
        writes: book.issued,
        files: files
            .iter()
            .zip(book.before)
            .zip(book.window)
            .enumerate()
            .map(|(tag, (((_, path), before), window))| FileLog {
                path: path.clone(),
                tag: tag as u64,
                size: a.size,
                blocks,
                before,
                window: window.into_iter().collect(),
            })
            .collect(),
    };
    log.store(a.log)?;
    Ok(WriteSummary {
        log: a.log.to_path_buf(),
        files: a.files.to_vec(),
        size: a.size,
        threads: a.threads,
        writes: book.issued,
        take_status,
        take_ok,
        take_ms,
        take_start_seq: book.take_start_seq,
        take_end_seq: book.take_end_seq,
        window_blocks,
        window_seqs,
        elapsed_ms: round_ms(start_all.elapsed()),
        ok: take_ok && book.issued.after > 0,
    })
}

#[cfg(test)]
mod tests {
    use super::super::pattern::{self, Verdict};
    use super::*;

    #[test]
    fn the_cut_puts_in_flight_writes_in_the_window() {
        let mut rng = Rng::new(1);
        let mut b = Book::new(1, 8, 1, Some(0));
        let (b1, s1, p1) = b.issue(0, 8, &mut rng);
        b.complete(0, b1, s1, p1);
        let (b2, s2, _) = b.issue(0, 8, &mut rng); // in flight across the take start
        assert_ne!(b1, b2, "a block with a write in flight is not chosen");
        b.start_take();
        let (b3, s3, p3) = b.issue(0, 8, &mut rng);
        assert_eq!(p3, Phase::During);
        b.complete(0, b3, s3, p3);
        b.complete(0, b2, s2, Phase::Before);
        b.end_take();
        let (b4, s4, p4) = b.issue(0, 8, &mut rng);
        b.complete(0, b4, s4, p4);

        assert_eq!(b.before[0][b1 as usize], Some(s1));
        assert_eq!(
            b.before[0][b2 as usize],
            Some(0),
            "prefill: still seq 0 then"
        );
        assert!(b.window[0][&b2].contains(&s2));
        assert!(b.window[0][&b3].contains(&s3));
        assert!(b.window[0].get(&b4).is_none_or(|w| !w.contains(&s4)));
        assert_eq!(
            (
                b.issued.before,
                b.issued.during,
                b.issued.after,
                b.after_completed
            ),
            (2, 1, 1, 1)
        );
        assert_eq!((b.take_start_seq, b.take_end_seq), (3, 4));
        // The later write must not appear in a snapshot unless it was allowed already.
        let w: Vec<u64> = b.window[0].get(&b4).cloned().unwrap_or_default();
        assert_eq!(
            pattern::judge(b.before[0][b4 as usize], &w, Some(s4)),
            Verdict::Future
        );
    }

    #[test]
    fn arguments_are_checked() {
        let files = [PathBuf::from("/tmp/x")];
        let ok = WriteArgs {
            files: &files,
            size: 1 << 20,
            threads: 4,
            seconds: 3.0,
            take_after: 1.0,
            take_cmd: "true",
            log: Path::new("/tmp/log"),
            seed: 1,
            prefill: true,
        };
        assert_eq!(check_args(&ok).unwrap(), 256);
        let bad = [
            WriteArgs { size: 4097, ..ok },
            WriteArgs { size: 0, ..ok },
            WriteArgs { threads: 0, ..ok },
            WriteArgs {
                size: 4 * 4096,
                ..ok
            },
            WriteArgs {
                take_after: 3.0,
                ..ok
            },
            WriteArgs {
                take_after: -1.0,
                ..ok
            },
            WriteArgs { files: &[], ..ok },
        ];
        for a in &bad {
            assert!(check_args(a).is_err());
        }
    }

    /// The whole tool on a regular file (O_DIRECT works on ext4/xfs; skipped where the
    /// temporary directory has no O_DIRECT, e.g. tmpfs before 6.6).
    #[test]
    fn write_then_verify_a_copy_taken_by_the_take_command() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("p0");
        if OpenOptions::new()
            .write(true)
            .create(true)
            .custom_flags(libc::O_DIRECT)
            .open(&f)
            .is_err()
        {
            eprintln!("no O_DIRECT in {}: skipped", dir.path().display());
            return;
        }
        let files = [f.clone(), dir.path().join("p1")];
        let copy = dir.path().join("copy");
        let log = dir.path().join("log.json");
        // The "snapshot": a copy made while the writers run (not atomic, so blocks written
        // during the copy are in the window; blocks written after must not show).
        let take_cmd = format!("cp {} {} && sleep 0.1", f.display(), copy.display());
        let s = run(&WriteArgs {
            files: &files,
            size: 256 * BLOCK as u64,
            threads: 3,
            seconds: 0.6,
            take_after: 0.2,
            take_cmd: &take_cmd,
            log: &log,
            seed: 7,
            prefill: true,
        })
        .unwrap();
        assert!(s.ok, "{s:?}");
        assert!(s.writes.before > 0 && s.writes.after > 0, "{s:?}");
        let v = pattern::verify(&log, 0, &copy).unwrap();
        assert!(v.ok, "{v:?}");
        assert_eq!(v.counts.blocks, 256);
        // The file itself, now, shows writes after the take: it must fail.
        let v = pattern::verify(&log, 0, &f).unwrap();
        assert!(!v.ok && v.counts.future > 0, "{v:?}");
        // A failing take command fails the run but still leaves a log.
        let s = run(&WriteArgs {
            files: &files,
            size: 256 * BLOCK as u64,
            threads: 1,
            seconds: 0.2,
            take_after: 0.05,
            take_cmd: "exit 3",
            log: &log,
            seed: 7,
            prefill: false,
        })
        .unwrap();
        assert!(!s.ok && s.take_status == Some(3), "{s:?}");
        let v = pattern::verify(&log, 1, &files[1]).unwrap();
        assert!(!v.ok, "a failed take fails the verification");
    }
}
