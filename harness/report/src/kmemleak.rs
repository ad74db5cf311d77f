//! Reports of kmemleak (`/sys/kernel/debug/kmemleak` after `echo scan`): which leaks are ours.
//!
//! Each report is an `unreferenced object 0x... (size N):` header followed by indented lines:
//! the allocating task, a hex dump, and the allocation's backtrace, one `%pS` frame per line
//! (`debugcheck_init+0x1c/0x1000 [bdsnap_debugcheck]`). A leak is blamed on a module when a
//! frame names it, or when a frame is an address the kernel could no longer symbolise: those
//! belong to a module that has been unloaded since, and the test guests unload only ours.

use crate::scan::{Finding, Marker};

/// One `unreferenced object` report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeakReport {
    /// The header line, trimmed.
    pub header: String,
    /// The whole report as printed.
    pub text: String,
}

/// Modules whose leaks fail a case: the product's, and the harness's own test modules (whose
/// self-tests prove the check works).
pub const BLAMED_MODULES: &[&str] = &["bdsnap", "bdfilter", "bdsnap_debugcheck", "bdsnap_memcheck"];

/// Splits kmemleak's output into its reports.
pub fn parse(text: &str) -> Vec<LeakReport> {
    let mut out: Vec<LeakReport> = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("unreferenced object ") {
            out.push(LeakReport {
                header: line.trim().to_string(),
                text: format!("{line}\n"),
            });
        } else if let Some(last) = out.last_mut() {
            last.text.push_str(line);
            last.text.push('\n');
        }
    }
    out
}

/// Whether a backtrace frame (`func+0x1/0x2 [module]`) names `module`.
fn frame_names(frame: &str, module: &str) -> bool {
    frame.contains(&format!(" [{module}]")) || frame.starts_with(&format!("{module}_"))
}

/// A frame that is a bare kernel-module-area address: `0xffffffffc0a01234` or
/// `[<ffffffffc0a01234>] 0xffffffffc0a01234`. x86-64 keeps modules at 0xffffffffa0000000 and up,
/// above the kernel image; vmlinux's own frames always have a symbol.
fn unsymbolised(frame: &str) -> bool {
    let last = frame.split_whitespace().last().unwrap_or("");
    let Some(hex) = last.strip_prefix("0x") else {
        return false;
    };
    u64::from_str_radix(hex, 16).is_ok_and(|a| a >= 0xffff_ffff_a000_0000)
}

impl LeakReport {
    /// The backtrace's frames, without the `[<address>]` prefix older kernels print.
    pub fn frames(&self) -> Vec<String> {
        let mut frames = Vec::new();
        let mut in_trace = false;
        for line in self.text.lines().skip(1) {
            let t = line.trim();
            if t.starts_with("backtrace") {
                in_trace = true;
                continue;
            }
            if !in_trace || t.is_empty() {
                continue;
            }
            let frame = match t.strip_prefix("[<") {
                Some(rest) => rest.split_once(">]").map_or(rest, |(_, f)| f).trim(),
                None => t,
            };
            frames.push(frame.to_string());
        }
        frames
    }

    /// The module this leak is blamed on: one of [`BLAMED_MODULES`] a frame names, or
    /// "an unloaded module" for an unsymbolised module address.
    pub fn blame(&self) -> Option<String> {
        let frames = self.frames();
        for m in BLAMED_MODULES {
            if frames.iter().any(|f| frame_names(f, m)) {
                return Some((*m).to_string());
            }
        }
        frames
            .iter()
            .any(|f| unsymbolised(f))
            .then(|| "an unloaded module".to_string())
    }
}

/// One [`Marker::Kmemleak`] finding per report blamed on our modules; `line` is the report's
/// position (1-based) in the kmemleak output the harness saved beside the console.
pub fn findings(text: &str) -> Vec<Finding> {
    parse(text)
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            r.blame().map(|who| Finding {
                line: i + 1,
                marker: Marker::Kmemleak,
                text: format!("{} allocated by {who} (kmemleak.txt)", r.header),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: &str = "unreferenced object 0xffff888003a1c0c0 (size 64):
  comm \"modprobe\", pid 312, jiffies 4294940000
  hex dump (first 32 bytes):
    2a 2a 2a 2a 2a 2a 2a 2a 2a 2a 2a 2a 2a 2a 2a 2a  ****************
  backtrace (crc 5d0a3b21):
    __kmalloc_cache_noprof+0x2d4/0x3a0
    debugcheck_init+0x1c/0x1000 [bdsnap_debugcheck]
    do_one_initcall+0xa4/0x380
unreferenced object 0xffff888004b2d000 (size 1024):
  comm \"swapper/0\", pid 1, jiffies 4294892000
  backtrace (crc 0):
    [<ffffffff8134a1b2>] kmalloc_trace+0x2a/0x60
    [<ffffffff81f2a0c1>] acpi_os_map_memory+0x51/0x160
";

    #[test]
    fn reports_are_split_and_blamed() {
        let r = parse(OURS);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].blame().as_deref(), Some("bdsnap_debugcheck"));
        assert_eq!(r[1].blame(), None);
        assert_eq!(r[1].frames()[1], "acpi_os_map_memory+0x51/0x160");
        let f = findings(OURS);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].marker, Marker::Kmemleak);
        assert!(f[0].text.contains("0xffff888003a1c0c0"), "{}", f[0].text);
    }

    #[test]
    fn unloaded_module_frames_are_blamed() {
        let t = "unreferenced object 0xffff8880 (size 8):\n  backtrace (crc 1):\n    __kmalloc_noprof+0x1/0x2\n    0xffffffffc0a01234\n";
        assert_eq!(parse(t)[0].blame().as_deref(), Some("an unloaded module"));
        let t = "unreferenced object 0xffff8880 (size 8):\n  backtrace:\n    [<ffffffffc0a01234>] 0xffffffffc0a01234\n";
        assert_eq!(parse(t)[0].blame().as_deref(), Some("an unloaded module"));
    }

    #[test]
    fn names_inside_other_words_are_not_blamed() {
        let t = "unreferenced object 0x1 (size 8):\n  comm \"bdsnap-worker\"\n  backtrace:\n    kvmalloc_node+0x1/0x2\n    mybdsnap_thing+0x1/0x2 [mybdsnap]\n";
        assert_eq!(parse(t)[0].blame(), None);
        assert!(findings("").is_empty());
    }
}
