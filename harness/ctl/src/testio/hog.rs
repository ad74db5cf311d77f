//! `hog`: anonymous memory, every page written so that it is really backed, then held until a
//! time passes or the process is told to stop: memory pressure for the scenarios that check
//! copy-on-write under it (the copy reserve, `reserve_copies`).
//!
//! SIGTERM and SIGINT are blocked from the start and taken synchronously with `sigtimedwait`,
//! so a stop request, even one that arrives while the pages are being touched, ends the
//! process normally (exit 0) instead of killing it by the signal.

use super::mem::{page_size, Mapping};
use serde::Serialize;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum HogError {
    #[error("--mib {mib}: {why}")]
    Size { mib: u64, why: &'static str },
    #[error("allocating {mib} MiB of anonymous memory: {error}")]
    Alloc { mib: u64, error: std::io::Error },
    #[error("{what}: {error}")]
    Signal {
        what: &'static str,
        error: std::io::Error,
    },
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub pid: u32,
    pub mib: u64,
    pub bytes: u64,
    pub page_size: usize,
    pub pages: u64,
    /// Time to write every page.
    pub touch_ms: f64,
    pub mib_per_sec: f64,
    /// `VmRSS` of `/proc/self/status` after the touch, when readable.
    pub vm_rss_kib: Option<u64>,
    /// How long the memory is held; `null`: until SIGTERM or SIGINT.
    pub hold_secs: Option<u64>,
}

/// How the hold ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldEnd {
    Elapsed,
    Signal(libc::c_int),
}

/// Bytes of `mib` MiB, when that is a size this machine can map.
pub fn hog_bytes(mib: u64) -> Result<usize, HogError> {
    if mib == 0 {
        return Err(HogError::Size {
            mib,
            why: "must be at least 1",
        });
    }
    mib.checked_mul(1 << 20)
        .and_then(|b| usize::try_from(b).ok())
        .filter(|&b| b <= isize::MAX as usize)
        .ok_or(HogError::Size {
            mib,
            why: "too large for this address space",
        })
}

fn stop_signals() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and fill a local sigset_t; the values are
    // valid signal numbers.
    unsafe {
        let mut set = std::mem::zeroed::<libc::sigset_t>();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        set
    }
}

/// Blocks SIGTERM and SIGINT in this (single) thread, so that [`hold`] receives them. Call it
/// first, before any thread is started.
pub fn block_stop_signals() -> Result<(), HogError> {
    let set = stop_signals();
    // SAFETY: `set` is an initialised sigset_t; the old mask is not wanted (null).
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(HogError::Signal {
            what: "blocking SIGTERM and SIGINT",
            error: std::io::Error::from_raw_os_error(rc),
        });
    }
    Ok(())
}

/// Maps `mib` MiB and writes every page; the mapping must live as long as the memory is to be
/// held.
pub fn allocate(mib: u64, hold_secs: Option<u64>) -> Result<(Mapping, Summary), HogError> {
    let bytes = hog_bytes(mib)?;
    let mut map = Mapping::anonymous(bytes).map_err(|error| HogError::Alloc { mib, error })?;
    let page = page_size();
    let started = Instant::now();
    map.touch_pages(page, 0x5a);
    let touch = started.elapsed().as_secs_f64();
    let summary = Summary {
        pid: std::process::id(),
        mib,
        bytes: bytes as u64,
        page_size: page,
        pages: bytes.div_ceil(page) as u64,
        touch_ms: touch * 1e3,
        mib_per_sec: if touch > 0.0 { mib as f64 / touch } else { 0.0 },
        vm_rss_kib: std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| vm_rss_kib(&s)),
        hold_secs,
    };
    Ok((map, summary))
}

/// `VmRSS` in KiB from the text of `/proc/<pid>/status`.
pub fn vm_rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// Waits for SIGTERM or SIGINT (blocked by [`block_stop_signals`]), or until `hold` passed.
pub fn hold(hold: Option<Duration>) -> Result<HoldEnd, HogError> {
    let set = stop_signals();
    let deadline = hold.map(|d| Instant::now() + d);
    loop {
        let rc = match deadline {
            None => {
                // SAFETY: `set` is initialised; the siginfo is not wanted (null).
                unsafe { libc::sigwaitinfo(&set, std::ptr::null_mut()) }
            }
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(HoldEnd::Elapsed);
                }
                let ts = libc::timespec {
                    tv_sec: libc::time_t::try_from(left.as_secs()).unwrap_or(libc::time_t::MAX),
                    tv_nsec: left.subsec_nanos() as libc::c_long,
                };
                // SAFETY: `set` and `ts` are initialised locals; the siginfo is not wanted.
                unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &ts) }
            }
        };
        if rc > 0 {
            return Ok(HoldEnd::Signal(rc));
        }
        let error = std::io::Error::last_os_error();
        match error.raw_os_error() {
            // Another signal interrupted the wait, or the timeout passed (checked above).
            Some(libc::EINTR) | Some(libc::EAGAIN) => continue,
            _ => {
                return Err(HogError::Signal {
                    what: "waiting for SIGTERM",
                    error,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_checked() {
        assert_eq!(hog_bytes(1).unwrap(), 1 << 20);
        assert_eq!(hog_bytes(300).unwrap(), 300 << 20);
        let e = hog_bytes(0).unwrap_err();
        assert_eq!(e.to_string(), "--mib 0: must be at least 1");
        assert!(hog_bytes(u64::MAX).is_err());
    }

    #[test]
    fn rss_is_read_from_proc_status_text() {
        let status = "Name:\tbdsnap-testio\nVmPeak:\t  9000 kB\nVmRSS:\t  204812 kB\nThreads:\t1\n";
        assert_eq!(vm_rss_kib(status), Some(204812));
        assert_eq!(vm_rss_kib("Name: x\n"), None);
    }

    #[test]
    fn a_small_hog_is_touched_and_reported() {
        let (map, s) = allocate(2, Some(0)).unwrap();
        assert_eq!(map.len(), 2 << 20);
        assert!(map
            .as_slice()
            .iter()
            .step_by(s.page_size)
            .all(|&b| b == 0x5a));
        assert_eq!(s.pages, (2 << 20) / s.page_size as u64);
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["mib"], 2);
        assert_eq!(v["hold_secs"], 0);
        assert_eq!(v["pid"], std::process::id());
    }

    #[test]
    fn a_timed_hold_ends_by_itself() {
        // No signal is blocked in the test harness's threads, so this only waits.
        let started = Instant::now();
        assert_eq!(
            hold(Some(Duration::from_millis(30))).unwrap(),
            HoldEnd::Elapsed
        );
        assert!(started.elapsed() >= Duration::from_millis(30));
        assert_eq!(hold(Some(Duration::ZERO)).unwrap(), HoldEnd::Elapsed);
    }
}
