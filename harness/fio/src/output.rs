//! fio's `--output-format=json+` output (fio 3.x), with `--lat_percentiles=1`.
//!
//! Only what the harness reads is modelled; fio adds fields between versions and serde skips
//! the ones not named here. Missing sections (an old fio without `trim`, a job with no reads)
//! default to zeros rather than failing, because "no I/O in that direction" is what they mean.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Why fio output could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FioError {
    #[error("{}: cannot read fio output: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Nothing that looks like a JSON object: fio failed before printing its report.
    #[error("{origin}: no JSON object in fio's output (first line: {first_line:?})")]
    NoJson { origin: String, first_line: String },
    #[error("{origin}:{line}:{column}: not fio JSON output: {source}")]
    Json {
        origin: String,
        line: usize,
        column: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("{origin}: fio's report has no jobs")]
    NoJobs { origin: String },
}

/// The whole report of one fio invocation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FioOutput {
    #[serde(rename = "fio version", default)]
    pub fio_version: String,
    #[serde(default)]
    pub timestamp: u64,
    #[serde(default)]
    pub time: String,
    pub jobs: Vec<Job>,
    #[serde(default)]
    pub disk_util: Vec<DiskUtil>,
}

/// One job (or one group, with `group_reporting`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub jobname: String,
    #[serde(default)]
    pub groupid: u32,
    /// fio's error number for the job; 0 when it ran cleanly.
    #[serde(default)]
    pub error: i32,
    /// The options the job ran with, as fio prints them (all values are strings).
    #[serde(rename = "job options", default)]
    pub options: BTreeMap<String, String>,
    #[serde(default)]
    pub read: IoStats,
    #[serde(default)]
    pub write: IoStats,
    #[serde(default)]
    pub trim: IoStats,
    /// Milliseconds the job ran (excluding ramp time).
    #[serde(default)]
    pub job_runtime: u64,
    /// Percent of one CPU spent in user space.
    #[serde(default)]
    pub usr_cpu: f64,
    /// Percent of one CPU spent in the kernel.
    #[serde(default)]
    pub sys_cpu: f64,
    /// Context switches.
    #[serde(default)]
    pub ctx: u64,
}

/// One direction (read, write or trim) of a job.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IoStats {
    #[serde(default)]
    pub io_bytes: u64,
    /// Bytes per second.
    #[serde(default)]
    pub bw_bytes: u64,
    /// KiB per second, as fio prints it.
    #[serde(default)]
    pub bw: u64,
    #[serde(default)]
    pub iops: f64,
    /// Milliseconds.
    #[serde(default)]
    pub runtime: u64,
    #[serde(default)]
    pub total_ios: u64,
    #[serde(default)]
    pub short_ios: u64,
    #[serde(default)]
    pub drop_ios: u64,
    /// Submission latency.
    #[serde(default)]
    pub slat_ns: Latency,
    /// Completion latency (from submission to completion).
    #[serde(default)]
    pub clat_ns: Latency,
    /// Total latency (slat + clat): what an application waits.
    #[serde(default)]
    pub lat_ns: Latency,
    #[serde(default)]
    pub iops_stddev: f64,
    #[serde(default)]
    pub iops_samples: u64,
}

/// A latency distribution in nanoseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Latency {
    #[serde(default)]
    pub min: u64,
    #[serde(default)]
    pub max: u64,
    #[serde(default)]
    pub mean: f64,
    #[serde(default)]
    pub stddev: f64,
    #[serde(rename = "N", default)]
    pub samples: u64,
    /// fio's percentiles: keys are the percent as text with six decimals (`"99.900000"`),
    /// values nanoseconds. Present only for directions that saw I/O.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub percentile: BTreeMap<String, u64>,
}

impl Latency {
    /// The latency at percent `p` (e.g. `99.9`), when fio reported that percentile. Keys are
    /// compared as numbers, so `"99.900000"` and `99.9` match.
    pub fn percentile(&self, p: f64) -> Option<u64> {
        self.percentile.iter().find_map(|(key, value)| {
            let at: f64 = key.trim().parse().ok()?;
            ((at - p).abs() < 1e-6).then_some(*value)
        })
    }

    /// p50, p99 and p99.9.
    pub fn percentiles(&self) -> Percentiles {
        Percentiles {
            p50_ns: self.percentile(50.0),
            p99_ns: self.percentile(99.0),
            p99_9_ns: self.percentile(99.9),
        }
    }
}

/// Per-device utilisation fio measured on the host it ran on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DiskUtil {
    pub name: String,
    #[serde(default)]
    pub read_ios: u64,
    #[serde(default)]
    pub write_ios: u64,
    #[serde(default)]
    pub util: f64,
}

/// The latency percentiles the reports show, in nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50_ns: Option<u64>,
    pub p99_ns: Option<u64>,
    pub p99_9_ns: Option<u64>,
}

/// The figures of one direction that benchmarks keep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirectionSummary {
    pub iops: f64,
    pub bw_bytes: u64,
    pub io_bytes: u64,
    pub total_ios: u64,
    pub runtime_ms: u64,
    pub lat_mean_ns: f64,
    pub lat_stddev_ns: f64,
    pub lat_min_ns: u64,
    pub lat_max_ns: u64,
    /// From the total latency (`lat_ns`) when fio ran with `--lat_percentiles=1`, otherwise
    /// from the completion latency.
    pub percentiles: Percentiles,
}

impl DirectionSummary {
    /// `None` when the direction saw no I/O.
    pub fn of(stats: &IoStats) -> Option<DirectionSummary> {
        if stats.total_ios == 0 && stats.io_bytes == 0 {
            return None;
        }
        let lat = if stats.lat_ns.percentile.is_empty() && !stats.clat_ns.percentile.is_empty() {
            stats.clat_ns.percentiles()
        } else {
            stats.lat_ns.percentiles()
        };
        Some(DirectionSummary {
            iops: stats.iops,
            bw_bytes: stats.bw_bytes,
            io_bytes: stats.io_bytes,
            total_ios: stats.total_ios,
            runtime_ms: stats.runtime,
            lat_mean_ns: stats.lat_ns.mean,
            lat_stddev_ns: stats.lat_ns.stddev,
            lat_min_ns: stats.lat_ns.min,
            lat_max_ns: stats.lat_ns.max,
            percentiles: lat,
        })
    }
}

/// The figures of one job that benchmarks keep: small enough to store for every sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSummary {
    pub name: String,
    pub error: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read: Option<DirectionSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write: Option<DirectionSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trim: Option<DirectionSummary>,
    pub runtime_ms: u64,
    pub usr_cpu: f64,
    pub sys_cpu: f64,
    pub ctx: u64,
}

impl JobSummary {
    /// IOPS of all directions together.
    pub fn total_iops(&self) -> f64 {
        self.directions().map(|d| d.iops).sum()
    }

    /// Bytes per second of all directions together.
    pub fn total_bw_bytes(&self) -> u64 {
        self.directions().map(|d| d.bw_bytes).sum()
    }

    /// Bytes moved in all directions.
    pub fn total_io_bytes(&self) -> u64 {
        self.directions().map(|d| d.io_bytes).sum()
    }

    fn directions(&self) -> impl Iterator<Item = &DirectionSummary> {
        [&self.read, &self.write, &self.trim]
            .into_iter()
            .filter_map(Option::as_ref)
    }
}

impl Job {
    pub fn summary(&self) -> JobSummary {
        JobSummary {
            name: self.jobname.clone(),
            error: self.error,
            read: DirectionSummary::of(&self.read),
            write: DirectionSummary::of(&self.write),
            trim: DirectionSummary::of(&self.trim),
            runtime_ms: self.job_runtime,
            usr_cpu: self.usr_cpu,
            sys_cpu: self.sys_cpu,
            ctx: self.ctx,
        }
    }
}

impl FioOutput {
    /// Parses what fio printed. `origin` names the source in errors (a file, or a step).
    ///
    /// fio sometimes prints notes (`note: both iodepth >= 1 and synchronous I/O engine...`)
    /// on standard output before the report: text before the first line that starts with `{`
    /// is skipped, and so is anything after the report's closing brace.
    pub fn parse(text: &str, origin: &str) -> Result<FioOutput, FioError> {
        let mut offset = 0;
        let mut skipped_lines = 0;
        for line in text.split_inclusive('\n') {
            if line.trim_start().starts_with('{') {
                break;
            }
            offset += line.len();
            skipped_lines += 1;
        }
        let body = &text[offset..];
        if body.trim().is_empty() {
            return Err(FioError::NoJson {
                origin: origin.to_string(),
                first_line: text
                    .lines()
                    .next()
                    .unwrap_or("")
                    .chars()
                    .take(200)
                    .collect(),
            });
        }
        let mut stream = serde_json::Deserializer::from_str(body).into_iter::<FioOutput>();
        let parsed = match stream.next() {
            Some(Ok(output)) => output,
            Some(Err(source)) => {
                return Err(FioError::Json {
                    origin: origin.to_string(),
                    line: source.line() + skipped_lines,
                    column: source.column(),
                    source,
                })
            }
            None => {
                return Err(FioError::NoJson {
                    origin: origin.to_string(),
                    first_line: String::new(),
                })
            }
        };
        if parsed.jobs.is_empty() {
            return Err(FioError::NoJobs {
                origin: origin.to_string(),
            });
        }
        Ok(parsed)
    }

    /// Reads and parses a file fio wrote; errors name the file.
    pub fn load(path: &Path) -> Result<FioOutput, FioError> {
        let text = std::fs::read_to_string(path).map_err(|source| FioError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        FioOutput::parse(&text, &path.display().to_string())
    }

    /// Jobs that fio says failed, as (name, error number).
    pub fn failed_jobs(&self) -> Vec<(&str, i32)> {
        self.jobs
            .iter()
            .filter(|j| j.error != 0)
            .map(|j| (j.jobname.as_str(), j.error))
            .collect()
    }

    /// One summary per job.
    pub fn summaries(&self) -> Vec<JobSummary> {
        self.jobs.iter().map(Job::summary).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_keys_compare_as_numbers() {
        let mut lat = Latency::default();
        lat.percentile.insert("50.000000".into(), 10);
        lat.percentile.insert("99.000000".into(), 20);
        lat.percentile.insert("99.900000".into(), 30);
        lat.percentile.insert("99.990000".into(), 40);
        assert_eq!(
            lat.percentiles(),
            Percentiles {
                p50_ns: Some(10),
                p99_ns: Some(20),
                p99_9_ns: Some(30)
            }
        );
        assert_eq!(lat.percentile(99.99), Some(40));
        assert_eq!(lat.percentile(95.0), None);
    }

    #[test]
    fn text_without_json_is_an_error_naming_its_origin() {
        let err = FioOutput::parse("fio: failed to open\n", "step 3").unwrap_err();
        assert!(matches!(err, FioError::NoJson { .. }));
        assert_eq!(
            err.to_string(),
            "step 3: no JSON object in fio's output (first line: \"fio: failed to open\")"
        );
        assert!(matches!(
            FioOutput::parse("", "x").unwrap_err(),
            FioError::NoJson { .. }
        ));
    }

    #[test]
    fn broken_json_reports_line_and_column_after_the_preamble() {
        let err = FioOutput::parse("note: hello\n{\n  \"jobs\": [1,\n", "out.json").unwrap_err();
        let FioError::Json { line, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(*line, 3, "{err}");
        assert!(err.to_string().starts_with("out.json:3:"), "{err}");
    }

    #[test]
    fn a_report_without_jobs_is_refused() {
        let err = FioOutput::parse("{\"jobs\": []}", "x").unwrap_err();
        assert!(matches!(err, FioError::NoJobs { .. }), "{err}");
    }
}
