//! bdsnap-fio: fio jobs as the harness describes them, and fio's JSON output as typed values.
//!
//! Two halves, both small: [`FioJob`] turns a job into the exact fio command line the guest
//! runs (always `--output-format=json+ --lat_percentiles=1`), and [`FioOutput`] reads what that
//! command prints. [`JobSummary`] keeps the figures the benchmarks and reports use: IOPS,
//! bandwidth, bytes, runtime, latency mean, standard deviation and percentiles, CPU.

pub mod job;
pub mod output;

pub use job::{FioJob, RwMode, RW_MODES};
pub use output::{
    DirectionSummary, FioError, FioOutput, IoStats, Job, JobSummary, Latency, Percentiles,
};
