//! A fio job as scenarios describe it, and the command line that runs it.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// fio's `rw=` modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RwMode {
    Read,
    Write,
    RandRead,
    RandWrite,
    #[serde(alias = "readwrite")]
    Rw,
    RandRw,
    Trim,
    RandTrim,
    TrimWrite,
}

/// Every mode by the name written in YAML and passed to fio.
pub const RW_MODES: &[(&str, RwMode)] = &[
    ("read", RwMode::Read),
    ("write", RwMode::Write),
    ("randread", RwMode::RandRead),
    ("randwrite", RwMode::RandWrite),
    ("rw", RwMode::Rw),
    ("readwrite", RwMode::Rw),
    ("randrw", RwMode::RandRw),
    ("trim", RwMode::Trim),
    ("randtrim", RwMode::RandTrim),
    ("trimwrite", RwMode::TrimWrite),
];

impl RwMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RwMode::Read => "read",
            RwMode::Write => "write",
            RwMode::RandRead => "randread",
            RwMode::RandWrite => "randwrite",
            RwMode::Rw => "rw",
            RwMode::RandRw => "randrw",
            RwMode::Trim => "trim",
            RwMode::RandTrim => "randtrim",
            RwMode::TrimWrite => "trimwrite",
        }
    }

    pub fn from_name(name: &str) -> Option<RwMode> {
        RW_MODES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, mode)| *mode)
    }

    /// Whether the job writes to its target (so snapshots and CBT have work to do).
    pub fn writes(self) -> bool {
        matches!(
            self,
            RwMode::Write | RwMode::RandWrite | RwMode::Rw | RwMode::RandRw | RwMode::TrimWrite
        )
    }

    pub fn reads(self) -> bool {
        matches!(
            self,
            RwMode::Read | RwMode::RandRead | RwMode::Rw | RwMode::RandRw
        )
    }

    /// Reads and writes mixed: the only modes `rwmixread` applies to.
    pub fn mixed(self) -> bool {
        matches!(self, RwMode::Rw | RwMode::RandRw)
    }
}

impl fmt::Display for RwMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One fio job. Without `runtime` the job makes one pass over `size` bytes of its target
/// (fio's random map makes a random pass touch every block exactly once); with `runtime` and
/// `time_based` it runs for that long, looping over the region; with `runtime` alone the pass
/// stops early when the time is up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FioJob {
    /// `[A-Za-z0-9._-]+`: names the job in fio's report and in results.
    pub name: String,
    pub rw: RwMode,
    /// Block size in bytes.
    pub bs: u64,
    pub iodepth: u32,
    /// Bytes of the target the job works on, from offset 0.
    pub size: u64,
    pub runtime: Option<Duration>,
    pub time_based: bool,
    /// Time fio runs before it starts counting.
    pub ramp_time: Option<Duration>,
    /// The target, expanded by the guest's shell inside double quotes, so `$DISK_data` and
    /// `$(cat /run/target)` work.
    pub filename: String,
    pub ioengine: String,
    /// O_DIRECT (bypass the guest's page cache).
    pub direct: bool,
    /// Percent of reads in a mixed job.
    pub rwmixread: Option<u8>,
    /// Identical jobs run at once, reported as one group.
    pub numjobs: u32,
}

/// The biggest queue depth accepted: fio's own limit is far higher, but nothing in a VM
/// benefits from more and a typo (`iodepth: 3200`) should be caught.
pub const MAX_IODEPTH: u32 = 4096;

impl FioJob {
    /// A job with the harness's defaults (libaio, O_DIRECT, QD1, one job, no runtime).
    pub fn new(name: &str, rw: RwMode, bs: u64, size: u64, filename: &str) -> FioJob {
        FioJob {
            name: name.to_string(),
            rw,
            bs,
            iodepth: 1,
            size,
            runtime: None,
            time_based: false,
            ramp_time: None,
            filename: filename.to_string(),
            ioengine: "libaio".to_string(),
            direct: true,
            rwmixread: None,
            numjobs: 1,
        }
    }

    /// Every problem with the job, as (field, message), so a loader can point at each field.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut found = Vec::new();
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            found.push((
                "name",
                format!(
                    "job name {:?} must be letters, digits, '.', '_' or '-'",
                    self.name
                ),
            ));
        }
        if self.bs == 0 || !self.bs.is_multiple_of(512) {
            found.push((
                "bs",
                format!("block size {} is not a multiple of 512 bytes", self.bs),
            ));
        } else if self.size < self.bs {
            found.push((
                "size",
                format!(
                    "size {} is smaller than the block size {}",
                    self.size, self.bs
                ),
            ));
        }
        if self.iodepth == 0 || self.iodepth > MAX_IODEPTH {
            found.push((
                "iodepth",
                format!("iodepth {} is outside 1..{MAX_IODEPTH}", self.iodepth),
            ));
        }
        if self.numjobs == 0 || self.numjobs > 64 {
            found.push((
                "numjobs",
                format!("numjobs {} is outside 1..64", self.numjobs),
            ));
        }
        if self.time_based && self.runtime.is_none() {
            found.push((
                "time_based",
                "time_based needs a runtime (otherwise fio would run for ever)".to_string(),
            ));
        }
        match self.rwmixread {
            Some(_) if !self.rw.mixed() => found.push((
                "rwmixread",
                format!(
                    "rwmixread applies to mixed jobs (rw or randrw), not to {}",
                    self.rw
                ),
            )),
            Some(p) if p > 100 => found.push((
                "rwmixread",
                format!("rwmixread {p} is not a percentage (0..100)"),
            )),
            _ => {}
        }
        if self.filename.is_empty() {
            found.push(("filename", "filename is empty".to_string()));
        } else if let Some(bad) = self
            .filename
            .chars()
            .find(|c| matches!(c, '"' | '\\' | '`' | '\n' | '\r' | '\0'))
        {
            found.push((
                "filename",
                format!(
                    "filename {:?} contains {bad:?}; it is expanded inside double quotes, \
                     where only $VARIABLE and $(command) are meant to work",
                    self.filename
                ),
            ));
        }
        if self.ioengine.is_empty()
            || !self
                .ioengine
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            found.push((
                "ioengine",
                format!("ioengine {:?} is not an engine name", self.ioengine),
            ));
        }
        found
    }

    /// The shell command that runs the job and prints fio's `json+` report with total-latency
    /// percentiles on standard output.
    pub fn command(&self) -> String {
        let mut args = vec![
            "fio".to_string(),
            "--output-format=json+".to_string(),
            "--lat_percentiles=1".to_string(),
            format!("--name={}", self.name),
            format!("--filename=\"{}\"", self.filename),
            format!("--rw={}", self.rw),
            format!("--bs={}", self.bs),
            format!("--iodepth={}", self.iodepth),
            format!("--size={}", self.size),
            format!("--ioengine={}", self.ioengine),
            format!("--direct={}", u8::from(self.direct)),
        ];
        if let Some(p) = self.rwmixread {
            args.push(format!("--rwmixread={p}"));
        }
        if let Some(t) = self.runtime {
            args.push(format!("--runtime={}ms", t.as_millis()));
        }
        if self.time_based {
            args.push("--time_based".to_string());
        }
        if let Some(t) = self.ramp_time {
            args.push(format!("--ramp_time={}ms", t.as_millis()));
        }
        args.push(format!("--numjobs={}", self.numjobs));
        args.push("--group_reporting".to_string());
        args.join(" ")
    }

    /// The longest the job should take, before any accelerator scaling: its runtime and ramp
    /// time, or for a pass without runtime `None` (the caller picks a default).
    pub fn expected_duration(&self) -> Option<Duration> {
        self.runtime.map(|r| r + self.ramp_time.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_has_json_plus_and_latency_percentiles() {
        let mut job = FioJob::new("qd1", RwMode::RandRw, 4096, 64 << 20, "$DISK_data");
        job.rwmixread = Some(70);
        job.runtime = Some(Duration::from_millis(1500));
        job.time_based = true;
        assert_eq!(
            job.command(),
            "fio --output-format=json+ --lat_percentiles=1 --name=qd1 --filename=\"$DISK_data\" \
             --rw=randrw --bs=4096 --iodepth=1 --size=67108864 --ioengine=libaio --direct=1 \
             --rwmixread=70 --runtime=1500ms --time_based --numjobs=1 --group_reporting"
        );
        assert!(job.problems().is_empty());
    }

    #[test]
    fn problems_name_their_field() {
        let mut job = FioJob::new("a b", RwMode::RandWrite, 1000, 512, "x\"y");
        job.iodepth = 0;
        job.rwmixread = Some(70);
        job.time_based = true;
        let fields: Vec<&str> = job.problems().iter().map(|(f, _)| *f).collect();
        assert_eq!(
            fields,
            [
                "name",
                "bs",
                "iodepth",
                "time_based",
                "rwmixread",
                "filename"
            ]
        );
    }

    #[test]
    fn modes_by_name() {
        assert_eq!(RwMode::from_name("readwrite"), Some(RwMode::Rw));
        assert_eq!(RwMode::from_name("randrw"), Some(RwMode::RandRw));
        assert_eq!(RwMode::from_name("rand"), None);
        assert!(RwMode::RandRw.writes() && RwMode::RandRw.reads());
        assert!(!RwMode::RandRead.writes());
        for (name, mode) in RW_MODES {
            if *name != "readwrite" {
                assert_eq!(mode.as_str(), *name);
            }
        }
    }
}
