//! `--compare DIR`: this run's ratios to raw against a baseline run's, flagging only changes
//! larger than the noise both runs measured.
//!
//! Only ratios are compared, never absolute IOPS: two runs are two boots, possibly on two
//! machines, and only the ratio measured inside one VM survives that.

use serde::{Deserialize, Serialize};

use crate::model::BenchRun;
use crate::plan::Config;

/// The smallest change ever flagged, as a fraction of the baseline ratio: with one round
/// (`--quick`) there is no measured spread, and a few percent is what TCG moves between
/// identical runs.
pub const MIN_TOLERANCE: f64 = 0.05;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Regression,
    Improvement,
    Unchanged,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub kernel: String,
    pub workload: String,
    pub config: Config,
    pub baseline: f64,
    pub current: f64,
    /// The change that would have been flagged: the two runs' half-ranges added, or the
    /// minimum tolerance, whichever is larger.
    pub threshold: f64,
    pub verdict: Verdict,
}

impl Comparison {
    /// current / baseline - 1.
    pub fn change(&self) -> f64 {
        if self.baseline == 0.0 {
            0.0
        } else {
            self.current / self.baseline - 1.0
        }
    }
}

/// Every kernel × workload × configuration with a ratio in both runs.
pub fn compare(baseline: &BenchRun, current: &BenchRun, min_tolerance: f64) -> Vec<Comparison> {
    let mut found = Vec::new();
    for cur in &current.results {
        let Some(cur_ratio) = &cur.ratio else {
            continue;
        };
        let Some(base_ratio) = baseline
            .result(&cur.kernel, &cur.workload, cur.config)
            .and_then(|b| b.ratio.as_ref())
        else {
            continue;
        };
        let b = base_ratio.spread;
        let c = cur_ratio.spread;
        let threshold = (b.half_range() + c.half_range()).max(min_tolerance * b.median);
        let delta = c.median - b.median;
        let verdict = if delta < -threshold {
            Verdict::Regression
        } else if delta > threshold {
            Verdict::Improvement
        } else {
            Verdict::Unchanged
        };
        found.push(Comparison {
            kernel: cur.kernel.clone(),
            workload: cur.workload.clone(),
            config: cur.config,
            baseline: b.median,
            current: c.median,
            threshold,
            verdict,
        });
    }
    found
}

/// The regressions among `comparisons`.
pub fn regressions(comparisons: &[Comparison]) -> Vec<&Comparison> {
    comparisons
        .iter()
        .filter(|c| c.verdict == Verdict::Regression)
        .collect()
}
