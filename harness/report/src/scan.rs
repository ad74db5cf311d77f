//! Finds the kernel's own distress messages in a serial console log or in `dmesg` output.
//!
//! A scenario fails when the kernel complained, whatever its commands returned: an oops in a
//! workqueue or a lockdep splat never reaches a command's exit status. The scanner therefore
//! looks for the texts the kernel itself prints (`printk` formats in `kernel/panic.c`,
//! `arch/x86/mm/fault.c`, `kernel/watchdog.c`, `kernel/hung_task.c`, lockdep, KASAN, UBSAN,
//! RCU, and the memory checkers stock kernels have without a rebuild: `slub_debug` in
//! `mm/slub.c` and KFENCE in `mm/kfence/report.c`), and only where the kernel puts them: at the start of a message, after the console
//! decorations (timestamp, caller id, log level, syslog prefix). Anchoring is what keeps the
//! command line echo (`panic=-1`), `taints kernel.` notices, lower-case "warning" from user
//! space and words that merely contain a marker from firing.

use serde::{Deserialize, Serialize};
use std::fmt;

/// One kind of kernel complaint. A line gets the most specific marker that matches
/// (`BUG: KASAN: ...` is [`Marker::Kasan`], not [`Marker::Bug`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Marker {
    /// `Kernel panic - not syncing: ...`
    KernelPanic,
    /// `kernel BUG at file:line!` (`BUG()`/`BUG_ON()`).
    KernelBugAt,
    /// `BUG: KASAN: ...` or `KASAN: ...` (the latter with general protection faults).
    Kasan,
    /// KFENCE's `BUG: KFENCE: out-of-bounds write in f+0x1/0x2` (and `use-after-free`,
    /// `invalid free`, `memory corruption`, `invalid read`...).
    Kfence,
    /// `slub_debug`'s report header, `BUG kmalloc-64 (Tainted: G    B      ): Right Redzone
    /// overwritten` (and `Poison overwritten`, `Object already free`, `Freepointer corrupt`,
    /// `Objects remaining in ...`): no colon after `BUG`, the cache's name and the taint in
    /// parentheses instead.
    Slub,
    /// `UBSAN: ...`
    Ubsan,
    /// lockdep's `possible circular locking dependency detected`.
    CircularLocking,
    /// lockdep's other reports (PROVE_LOCKING): `WARNING: possible recursive locking
    /// detected`, `inconsistent lock state`, `possible irq lock inversion dependency`,
    /// `suspicious RCU usage`, `lock held when returning to user space!`, `held lock freed!`,
    /// `bad unlock balance detected!`, `BUG: MAX_LOCKDEP_KEYS too low!`...
    Lockdep,
    /// DEBUG_OBJECTS: `ODEBUG: free active (active state 0) object: ... object type: timer_list`.
    DebugObjects,
    /// DEBUG_LIST: `list_add corruption. next->prev should be prev (...)`, `list_del
    /// corruption, ... ->next is LIST_POISON1 (...)`.
    ListCorruption,
    /// kmemleak's automatic scan: `kmemleak: 3 new suspected memory leaks (see
    /// /sys/kernel/debug/kmemleak)`. The harness's own scan after each scenario reads the
    /// reports themselves (see `kmemleak`).
    Kmemleak,
    /// `watchdog: BUG: soft lockup - CPU#N stuck for Ns!`
    SoftLockup,
    /// `INFO: task NAME:PID blocked for more than N seconds.` (khungtaskd).
    HungTask,
    /// `rcu: INFO: rcu_preempt detected stalls ...`, `... self-detected stall on CPU`.
    RcuStall,
    /// `general protection fault ...`, also as `Oops: general protection fault ...` (6.10+).
    GeneralProtectionFault,
    /// `Oops: 0000 [#1] ...`, arm's `Internal error: Oops: ...`.
    Oops,
    /// Any other `BUG: ...` (NULL pointer dereference, sleeping in atomic, bad page state...).
    Bug,
    /// Any other `WARNING: ...` (`WARN_ON()` splats, lockdep and RCU-lockdep reports).
    Warning,
}

impl Marker {
    /// Every marker, most specific first: the order in which a line is tested.
    pub const ALL: [Marker; 18] = [
        Marker::KernelPanic,
        Marker::KernelBugAt,
        Marker::Kasan,
        Marker::Kfence,
        Marker::Slub,
        Marker::Ubsan,
        Marker::CircularLocking,
        Marker::Lockdep,
        Marker::DebugObjects,
        Marker::ListCorruption,
        Marker::Kmemleak,
        Marker::SoftLockup,
        Marker::HungTask,
        Marker::RcuStall,
        Marker::GeneralProtectionFault,
        Marker::Oops,
        Marker::Bug,
        Marker::Warning,
    ];

    /// How the marker is shown to people: the kernel's own wording.
    pub fn label(self) -> &'static str {
        match self {
            Marker::KernelPanic => "Kernel panic",
            Marker::KernelBugAt => "kernel BUG at",
            Marker::Kasan => "KASAN",
            Marker::Kfence => "KFENCE",
            Marker::Slub => "SLUB",
            Marker::Ubsan => "UBSAN",
            Marker::CircularLocking => "possible circular locking",
            Marker::Lockdep => "lockdep",
            Marker::DebugObjects => "ODEBUG",
            Marker::ListCorruption => "list corruption",
            Marker::Kmemleak => "kmemleak",
            Marker::SoftLockup => "soft lockup",
            Marker::HungTask => "hung task",
            Marker::RcuStall => "RCU stall",
            Marker::GeneralProtectionFault => "general protection fault",
            Marker::Oops => "Oops",
            Marker::Bug => "BUG",
            Marker::Warning => "WARNING",
        }
    }

    /// The marker whose [`Marker::label`] is `label` (as a self-test scenario names it).
    pub fn from_label(label: &str) -> Option<Marker> {
        Marker::ALL.into_iter().find(|m| m.label() == label)
    }

    /// Whether `msg`, a console line stripped of its decorations, is this complaint.
    fn matches(self, msg: &str) -> bool {
        match self {
            Marker::KernelPanic => msg.starts_with("Kernel panic - "),
            Marker::KernelBugAt => msg.starts_with("kernel BUG at "),
            Marker::Kasan => msg.starts_with("BUG: KASAN: ") || msg.starts_with("KASAN: "),
            Marker::Kfence => msg.starts_with("BUG: KFENCE: "),
            Marker::Slub => is_slub_report(msg),
            Marker::Ubsan => msg.starts_with("UBSAN: "),
            // Current lockdep prints `WARNING: possible ...`; before 4.15 it was
            // `[ INFO: possible ... ]`. The phrase itself is specific enough to search for.
            Marker::CircularLocking => {
                msg.contains("possible circular locking dependency detected")
            }
            // `watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [comm:pid]`, with `NMI ` before
            // it on older kernels.
            Marker::Lockdep => is_lockdep_report(msg),
            Marker::DebugObjects => msg.starts_with("ODEBUG: "),
            Marker::ListCorruption => {
                (msg.starts_with("list_") || msg.starts_with("hlist_"))
                    && msg.contains(" corruption")
            }
            Marker::Kmemleak => {
                msg.starts_with("kmemleak: ") && msg.contains("suspected memory leak")
            }
            Marker::SoftLockup => {
                msg.starts_with("BUG: soft lockup - CPU#")
                    || msg.starts_with("watchdog: BUG: soft lockup - CPU#")
                    || msg.starts_with("NMI watchdog: BUG: soft lockup - CPU#")
            }
            Marker::HungTask => {
                (msg.starts_with("INFO: task ") || msg.starts_with("task "))
                    && msg.contains(" blocked for more than ")
            }
            Marker::RcuStall => {
                (msg.starts_with("rcu: INFO: ") || msg.starts_with("INFO: "))
                    && msg.contains("detected stall")
            }
            // Only the kernel's own fault, not `traps: prog[1] general protection fault ip:...`,
            // which reports a user-space process the kernel killed.
            Marker::GeneralProtectionFault => {
                msg.starts_with("general protection fault")
                    || msg.starts_with("Oops: general protection fault")
            }
            Marker::Oops => msg.starts_with("Oops: ") || msg.starts_with("Internal error: Oops"),
            Marker::Bug => msg.starts_with("BUG: "),
            Marker::Warning => msg.starts_with("WARNING: "),
        }
    }
}

/// lockdep's report headers (kernel/locking/lockdep.c, kernel/rcu/update.c's
/// `lockdep_rcu_suspicious`): `WARNING: ` or `BUG: ` followed by one of its phrases.
fn is_lockdep_report(msg: &str) -> bool {
    const PHRASES: &[&str] = &[
        "possible recursive locking detected",
        "inconsistent lock state",
        "possible irq lock inversion dependency detected",
        "suspicious RCU usage",
        "lock held when returning to user space!",
        "held lock freed!",
        "bad unlock balance detected!",
        "bad contention detected!",
        "nested lock was not taken",
        "lock held at task exit time!",
        "still has locks held!",
        "Nested lock was not taken",
        "HARDIRQ-safe -> HARDIRQ-unsafe lock order detected",
        "SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected",
        "held lock inconsistent state",
        "MAX_LOCKDEP",
        "looking up invalid subclass",
        "lockdep bfs error",
        "Invalid wait context",
    ];
    let rest = msg
        .strip_prefix("WARNING: ")
        .or_else(|| msg.strip_prefix("BUG: "))
        .unwrap_or("");
    PHRASES.iter().any(|p| rest.starts_with(p))
}

/// `slab_bug()`'s header in mm/slub.c: `BUG <cache> (<taint>): <problem>`, where the taint is
/// `print_tainted()`: `Not tainted` or `Tainted: <flags>`. Every part is required, so prose
/// that happens to start with "BUG " (`BUG fixed in 6.1 (see below): ...`) does not match.
fn is_slub_report(msg: &str) -> bool {
    let Some(rest) = msg.strip_prefix("BUG ") else {
        return false;
    };
    let Some((cache, rest)) = rest.split_once(" (") else {
        return false;
    };
    let Some((taint, problem)) = rest.split_once("): ") else {
        return false;
    };
    let cache_ok = !cache.is_empty() && !cache.contains([' ', '\t', ':', '(', ')']);
    let taint_ok = taint == "Not tainted" || taint.starts_with("Tainted: ");
    cache_ok && taint_ok && !problem.trim().is_empty()
}

impl fmt::Display for Marker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A console line on which the kernel complained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// 1-based line number in the whole text that was given (also with [`scan_since`]), so
    /// that it points into the `console.log` a person opens.
    pub line: usize,
    pub marker: Marker,
    /// The line as printed, without `\r` and terminal escape sequences.
    pub text: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}: {}", self.line, self.marker, self.text)
    }
}

/// Every complaint in `text`, one finding per line at most, in line order.
pub fn scan(text: &str) -> Vec<Finding> {
    scan_since(text, 0)
}

/// Like [`scan`], but only lines that end after byte `offset`: a caller remembers the
/// console log's length when a scenario starts and judges only what came after it. A line
/// already half written at `offset` is scanned whole, so a message the kernel was printing
/// when the scenario began is not lost. Line numbers stay those of the whole text.
pub fn scan_since(text: &str, offset: usize) -> Vec<Finding> {
    let bytes = text.as_bytes();
    if offset >= bytes.len() && !bytes.is_empty() {
        return Vec::new();
    }
    let offset = offset.min(bytes.len());
    // Back up to the start of the line holding `offset`. Working on bytes keeps an offset
    // that falls inside a multi-byte character harmless: '\n' is never part of one.
    let start = bytes[..offset]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |nl| nl + 1);
    let first_line = 1 + bytes[..start].iter().filter(|&&b| b == b'\n').count();

    text[start..]
        .split('\n')
        .enumerate()
        .filter_map(|(i, raw)| {
            let clean = clean_line(raw);
            let marker = classify(&clean)?;
            Some(Finding {
                line: first_line + i,
                marker,
                text: clean,
            })
        })
        .collect()
}

/// The marker for one console line, if the kernel complained on it.
pub fn classify(line: &str) -> Option<Marker> {
    if let Some(m) = first_match(message(line)) {
        return Some(m);
    }
    // On a serial console the kernel's message can start mid-line, after whatever user space
    // had written there (`/ # [90216.140000] watchdog: BUG: soft lockup ...`): try the
    // message after each later timestamp.
    // Only real clock stamps count here: `fio[321]` is a process id, not a timestamp.
    for (i, _) in line.match_indices('[').filter(|&(i, _)| i > 0) {
        let stamp = &line[i..line[i..].find(']').map_or(i, |end| i + end)];
        if stamp.contains(['.', ':']) && strip_bracketed(&line[i..]).is_some() {
            if let Some(m) = first_match(message(&line[i..])) {
                return Some(m);
            }
        }
    }
    // journalctl/syslog style: `Apr 18 08:58:32 host kernel: [  236.27] WARNING: ...`.
    let (_, rest) = line.split_once("kernel: ")?;
    first_match(message(rest))
}

fn first_match(msg: &str) -> Option<Marker> {
    Marker::ALL.into_iter().find(|m| m.matches(msg))
}

/// The line without `\r`, terminal escape sequences (SeaBIOS and the kernel's early console
/// clear the screen on the same line as the first message) and other control characters.
fn clean_line(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.peek() {
                // CSI: ESC [ parameters... final byte in '@'..='~'.
                Some('[') => {
                    chars.next();
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
                // Two-character escapes such as `ESC c` (reset).
                Some(_) => {
                    chars.next();
                }
                None => {}
            },
            '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.trim_end().to_string()
}

/// The kernel's message inside a console line: without leading blanks, a `<N>` log level,
/// a `[   12.345678]` timestamp and a `[T123]`/`[C1]` caller id (CONFIG_PRINTK_CALLER).
fn message(line: &str) -> &str {
    let mut s = line.trim_start();
    if let Some(rest) = strip_log_level(s) {
        s = rest;
    }
    for _ in 0..2 {
        match strip_bracketed(s) {
            Some(rest) => s = rest.trim_start(),
            None => break,
        }
    }
    s
}

fn strip_log_level(s: &str) -> Option<&str> {
    let rest = s.strip_prefix('<')?;
    let end = rest.find('>')?;
    let level = &rest[..end];
    (!level.is_empty() && level.bytes().all(|b| b.is_ascii_digit())).then(|| &rest[end + 1..])
}

/// Strips `[ 12.345678]`, `[Thu Mar 25 00:50:20 2021]` (`dmesg -T`), `[T42]` or
/// `[    C1]`: a timestamp or a caller id in brackets. Anything else in brackets (`[drm]`,
/// lockdep's old `[ INFO: ... ]`) is part of the message.
fn strip_bracketed(s: &str) -> Option<&str> {
    let rest = s.strip_prefix('[')?;
    let end = rest.find(']')?;
    let inner = rest[..end].trim();
    let has_digit = inner.bytes().any(|b| b.is_ascii_digit());
    let is_timestamp = has_digit && inner.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    let is_wall_clock = has_digit
        && inner.bytes().filter(|&b| b == b':').count() == 2
        && inner
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b' ' || b == b':');
    let is_caller = matches!(inner.as_bytes().first(), Some(b'T' | b'C'))
        && inner.len() > 1
        && inner[1..].bytes().all(|b| b.is_ascii_digit());
    (is_timestamp || is_wall_clock || is_caller).then(|| &rest[end + 1..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn markers(text: &str) -> Vec<(usize, Marker)> {
        scan(text).into_iter().map(|f| (f.line, f.marker)).collect()
    }

    #[test]
    fn timestamp_caller_id_and_cr_are_ignored() {
        let text = "[   12.345678] [  T123] WARNING: CPU: 1 PID: 42 at fs/x.c:12 f+0x1/0x2\r\n";
        let found = scan(text);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].marker, Marker::Warning);
        assert_eq!(found[0].line, 1);
        assert!(!found[0].text.ends_with('\r'));
    }

    #[test]
    fn most_specific_marker_wins() {
        let text = "\
[ 1.0] BUG: KASAN: slab-use-after-free in f+0x1/0x2
[ 1.1] watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [a:1]
[ 1.2] WARNING: possible circular locking dependency detected
[ 1.3] Oops: general protection fault, probably for non-canonical address 0xdead: 0000 [#1] SMP
[ 1.4] BUG: kernel NULL pointer dereference, address: 0000000000000000
[ 1.5] Oops: 0000 [#1] PREEMPT SMP NOPTI
[ 1.6] kernel BUG at block/bio.c:1234!
[ 1.7] UBSAN: array-index-out-of-bounds in drivers/x.c:9:3
[ 1.8] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:
[ 1.9] INFO: task kworker/0:1:12 blocked for more than 120 seconds.
[ 2.0] Kernel panic - not syncing: Fatal exception
[ 2.1] BUG: sleeping function called from invalid context at mm/slab.h:1
[ 2.2] KASAN: null-ptr-deref in range [0x0-0x7]
[ 2.3] general protection fault, probably for non-canonical address 0xdead: 0000 [#1] SMP KASAN
[ 2.4] INFO: rcu_sched self-detected stall on CPU
[ 2.5] BUG: scheduling while atomic: swapper/0/0/0x00000002
";
        use Marker::*;
        assert_eq!(
            markers(text),
            vec![
                (1, Kasan),
                (2, SoftLockup),
                (3, CircularLocking),
                (4, GeneralProtectionFault),
                (5, Bug),
                (6, Oops),
                (7, KernelBugAt),
                (8, Ubsan),
                (9, RcuStall),
                (10, HungTask),
                (11, KernelPanic),
                (12, Bug),
                (13, Kasan),
                (14, GeneralProtectionFault),
                (15, RcuStall),
                (16, Bug),
            ]
        );
    }

    #[test]
    fn harmless_lines_do_not_fire() {
        let text = "\
[    0.000000] Command line: BOOT_IMAGE=/vmlinuz console=ttyS0 panic=-1 oops=panic softlockup_panic=1
[    0.000000] Kernel command line: console=ttyS0 panic=-1 hung_task_panic=1
[   10.000000] bdsnap: loading out-of-tree module taints kernel.
[   10.000001] Disabling lock debugging due to kernel taint
[   11.000000] systemd[1]: warning: something in lower case
[   11.500000] PCI: Using host bridge windows from ACPI; if necessary, use \"pci=nocrs\" and report a bug
bdsnap-step: echo NOWARNING: and XBUG: and myOops: and DEBUG: done
[   12.000000] traps: fio[321] general protection fault ip:7f0 sp:7ff error:0 in libc.so.6
Warning: this is not the kernel's marker
[   12.100000] kasan: KernelAddressSanitizer initialized
[   12.200000] ---[ end trace 0000000000000000 ]---
[   12.300000] INFO: lockdep is turned off.
";
        assert_eq!(scan(text), vec![]);
    }

    #[test]
    fn memory_checker_reports_get_their_own_markers() {
        let text = "\
[ 1.0] BUG kmalloc-64 (Tainted: G    B      O      ): Right Redzone overwritten
[ 1.1] BUG kmalloc-64 (Not tainted): Poison overwritten
[ 1.2] BUG kmalloc-rnd-05-64 (Tainted: G           O     ): Object already free
[ 1.3] BUG: KFENCE: out-of-bounds write in memcheck_init+0x1/0x2 [bdsnap_memcheck]
[ 1.4] BUG: KFENCE: use-after-free read in f+0x1/0x2
[ 1.5] BUG: KFENCE: invalid free in f+0x1/0x2
[ 1.6] BUG: KFENCE: memory corruption in f+0x1/0x2
[ 1.7] BUG: kernel NULL pointer dereference, address: 0000000000000000
";
        use Marker::*;
        assert_eq!(
            markers(text),
            vec![
                (1, Slub),
                (2, Slub),
                (3, Slub),
                (4, Kfence),
                (5, Kfence),
                (6, Kfence),
                (7, Kfence),
                (8, Bug),
            ]
        );
    }

    #[test]
    fn memory_checker_look_alikes_do_not_fire() {
        let text = "\
[    0.000000] Command line: console=ttyS0 panic=-1 slub_debug=FZP kfence.sample_interval=100
[    0.000000] Kernel command line: console=ttyS0 slub_debug=FZP kfence.sample_interval=100
[    0.010000] kfence: initialized - using 2097152 bytes for 255 objects at 0x(____ptrval____)
[    0.020000] **********************************************************************
[    0.030000] **   NOTICE NOTICE NOTICE NOTICE NOTICE NOTICE NOTICE NOTICE NOTICE  **
[    0.040000] **   This system shows unhashed kernel memory addresses   **
[    1.000000] FIX kmalloc-64: Restoring Right Redzone 0x1-0x2=0xcc
[    1.100000] INFO: 0x000000001-0x000000002 @offset=64. First byte 0x2a instead of 0xcc
[    1.200000] Out-of-bounds write at 0x00000000 (32B right of kfence-#17):
bdsnap-step: echo BUG fixed (see below): nothing to do
BUG kmalloc-64: an old header without taint is not what 5.10+ print
[    2.000000] BUG report (see dmesg): the taint is what makes a header
[    2.100000] BUG kmalloc 64 (Not tainted): has a space in the name
[    2.200000] BUG kmalloc-64 (Not tainted):
";
        assert_eq!(scan(text), vec![]);
    }

    #[test]
    fn every_marker_has_a_distinct_label_found_by_from_label() {
        for m in Marker::ALL {
            assert_eq!(Marker::from_label(m.label()), Some(m));
        }
        assert_eq!(Marker::from_label("slub"), None);
        assert_eq!(Marker::from_label("KFENCE"), Some(Marker::Kfence));
        assert_eq!(Marker::from_label("SLUB"), Some(Marker::Slub));
    }

    #[test]
    fn syslog_prefixed_lines_are_understood() {
        let text = "Apr 18 08:58:32 host kernel: [  236.278671] WARNING: CPU: 5 PID: 0 at net/core/stream.c:212 f+0xc5/0xd2\n";
        assert_eq!(markers(text), vec![(1, Marker::Warning)]);
    }

    #[test]
    fn escape_sequences_before_the_message_are_removed() {
        let text = "\u{1b}c\u{1b}[?7l\u{1b}[2J[    1.0] Kernel panic - not syncing: x\n";
        let found = scan(text);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].marker, Marker::KernelPanic);
        assert_eq!(found[0].text, "[    1.0] Kernel panic - not syncing: x");
    }

    #[test]
    fn scan_since_skips_earlier_lines_but_keeps_whole_text_line_numbers() {
        let before = "[ 1.0] WARNING: CPU: 0 PID: 1 at a.c:1 f+0x1/0x2\nok\n";
        let after = "[ 2.0] BUG: kernel NULL pointer dereference, address: 0000000000000008\n";
        let text = format!("{before}{after}");
        assert_eq!(scan(&text).len(), 2);
        let since = scan_since(&text, before.len());
        assert_eq!(since.len(), 1);
        assert_eq!(since[0].line, 3);
        assert_eq!(since[0].marker, Marker::Bug);
        // An offset past the end finds nothing; one inside a line rescans that line.
        assert!(scan_since(&text, text.len()).is_empty());
        assert!(scan_since(&text, text.len() + 10).is_empty());
        let mid = scan_since(&text, before.len() + 5);
        assert_eq!(mid.len(), 1);
        assert_eq!(mid[0].line, 3);
    }

    #[test]
    fn scan_since_tolerates_offsets_inside_multibyte_characters() {
        let text = "é\n[ 1.0] Oops: 0000 [#1] SMP\n";
        assert_eq!(scan_since(text, 1).len(), 1);
        assert_eq!(scan_since(text, 1)[0].line, 2);
    }

    #[test]
    fn marker_serializes_as_kebab_case() {
        let json = serde_json::to_string(&Marker::KernelPanic).unwrap();
        assert_eq!(json, "\"kernel-panic\"");
        let back: Marker = serde_json::from_str("\"circular-locking\"").unwrap();
        assert_eq!(back, Marker::CircularLocking);
        assert_eq!(
            serde_json::to_string(&Marker::Kfence).unwrap(),
            "\"kfence\""
        );
        assert_eq!(serde_json::to_string(&Marker::Slub).unwrap(), "\"slub\"");
    }
}
