//! bdsnap-report: judges a run's console output and writes its results for people and CI.
//!
//! Data flows one way: the scenario runner hands over [`CaseResult`]s, [`scan`] adds what the
//! kernel complained about, and the writers turn a [`RunSummary`] into `results/<run-id>/`:
//! `junit.xml` for CI reporters, `results.ktap` for people and kernel tooling,
//! `summary.json`, and one directory per case with its logs.

pub mod junit;
pub mod kmemleak;
pub mod ktap;
pub mod model;
pub mod scan;
pub mod table;
pub mod write;

pub use junit::{render_junit, write_junit};
pub use ktap::{render_ktap, write_ktap};
pub use model::{CaseResult, ExpectedFailure, KernelInfo, RunSummary};
pub use scan::{classify, scan, scan_since, Finding, Marker};
pub use table::{render_markdown_summary, render_terminal_summary};
pub use write::{case_dir, failure_details, fio_report_name, write_case_dir, write_summary_json};

use std::path::PathBuf;

/// A result file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encode {path} as JSON: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

impl ReportError {
    pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| ReportError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
