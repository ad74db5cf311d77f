//! How much each snapshot's first pass copied, read from the units' evidence, and the check
//! that bdsnap and dm-snapshot did the same work: a first pass over a region copies every chunk
//! of it once. An early baseline compared against a dm-snapshot whose origin never split writes
//! at the chunk size and so copied one chunk in sixteen; this check fails such a run.

use std::path::Path;

use crate::model::{BenchRun, UnitFailure};
use crate::plan::{Config, UnitKind};

/// Accepted share of the region a first pass may copy: chunk rounding and metadata aside, it is
/// the whole region.
pub const MIN_SHARE: f64 = 0.9;
pub const MAX_SHARE: f64 = 1.1;

/// Bytes held by the snapshot's store after a unit, from its evidence command's output
/// (`bdsnapctl --json snapshot info` or `dmsetup status`); `None` for other units or output
/// that does not say.
pub fn copied_bytes(kind: UnitKind, evidence_stdout: &str) -> Option<u64> {
    match kind {
        UnitKind::Snapshot => bdsnap_storage_used(evidence_stdout),
        UnitKind::DmSnapshot => dm_snapshot_data_bytes(evidence_stdout),
        _ => None,
    }
}

/// `storage_used` of the first JSON line that has it.
fn bdsnap_storage_used(stdout: &str) -> Option<u64> {
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line.trim()).ok())
        .find_map(|v| v.get("storage_used").and_then(serde_json::Value::as_u64))
}

/// A snapshot target's status line, `<start> <len> snapshot <used>/<total> <metadata>`
/// (sectors): data bytes are used minus metadata.
fn dm_snapshot_data_bytes(stdout: &str) -> Option<u64> {
    stdout.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let at = fields.iter().position(|f| *f == "snapshot")?;
        let (used, _total) = fields.get(at + 1)?.split_once('/')?;
        let used: u64 = used.parse().ok()?;
        let metadata: u64 = fields.get(at + 2)?.parse().ok()?;
        Some(used.saturating_sub(metadata) * 512)
    })
}

/// Fills `copied_bytes` of first-pass samples that lack it from their units' `steps.json`
/// under `run_dir` (runs recorded before the field existed). Returns how many were filled.
pub fn fill_from_evidence(run: &mut BenchRun, run_dir: &Path) -> usize {
    let mut filled = 0;
    for s in &mut run.samples {
        let kind = match s.config {
            Config::Cow => UnitKind::Snapshot,
            Config::DmCow => UnitKind::DmSnapshot,
            _ => continue,
        };
        if s.copied_bytes.is_some() {
            continue;
        }
        let Some(unit_dir) = Path::new(&s.evidence).parent() else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(run_dir.join(unit_dir).join("steps.json")) else {
            continue;
        };
        let Ok(case) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        let last = case
            .pointer("/outcome/steps")
            .and_then(serde_json::Value::as_array)
            .and_then(|steps| steps.last());
        let Some(last) = last else { continue };
        let passed = last
            .pointer("/verdict/verdict")
            .and_then(serde_json::Value::as_str)
            == Some("pass");
        let stdout = last.get("stdout").and_then(serde_json::Value::as_str);
        if let (true, Some(stdout)) = (passed, stdout) {
            s.copied_bytes = copied_bytes(kind, stdout);
            filled += usize::from(s.copied_bytes.is_some());
        }
    }
    filled
}

/// A failure for every first-pass sample whose copies are not the whole region.
pub fn check(run: &BenchRun) -> Vec<UnitFailure> {
    let mut failures = Vec::new();
    for s in &run.samples {
        if !matches!(s.config, Config::Cow | Config::DmCow) {
            continue;
        }
        let (Some(copied), Some(w)) = (s.copied_bytes, run.workload(&s.workload)) else {
            continue;
        };
        if w.size == 0 {
            continue;
        }
        let share = copied as f64 / w.size as f64;
        if !(MIN_SHARE..=MAX_SHARE).contains(&share) {
            failures.push(UnitFailure {
                kernel: s.kernel.clone(),
                workload: s.workload.clone(),
                unit: s.config.name().to_string(),
                round: s.round,
                message: format!(
                    "the first pass copied {:.1} MiB of a {:.1} MiB region ({:.0} %): not the \
                     same work as the other configurations (set-up problem?)",
                    copied as f64 / 1048576.0,
                    w.size as f64 / 1048576.0,
                    share * 100.0
                ),
                evidence: s.evidence.clone(),
            });
        }
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_bdsnap_info() {
        let out = "{\"id\":1,\"state\":\"taken\",\"storage_used\":268435456,\"devices\":[]}\n";
        assert_eq!(copied_bytes(UnitKind::Snapshot, out), Some(268435456));
        assert_eq!(copied_bytes(UnitKind::Snapshot, "no json here"), None);
    }

    #[test]
    fn reads_dm_status() {
        // What the broken set-up left after 256 MiB of 1 MiB writes, then a correct one.
        let broken = "0 1048576 snapshot 33024/1310720 256\nbdbench-snap: 0 1048576 snapshot\n";
        assert_eq!(
            copied_bytes(UnitKind::DmSnapshot, broken),
            Some(32768 * 512)
        );
        let good = "0 1048576 snapshot 524672/1310720 384";
        assert_eq!(copied_bytes(UnitKind::DmSnapshot, good), Some(524288 * 512));
        assert_eq!(
            copied_bytes(UnitKind::DmSnapshot, "0 1048576 snapshot Invalid"),
            None
        );
        assert_eq!(copied_bytes(UnitKind::Raw, good), None);
    }

    #[test]
    fn flags_a_first_pass_that_copied_a_sixteenth() {
        let run: BenchRun = serde_json::from_value(serde_json::json!({
            "schema": 1, "run_id": "t", "started_unix": 0, "accel": "tcg", "host": "h",
            "quick": false, "rounds": 1, "kernels": [],
            "workloads": [{"name": "seq", "description": "", "source": "", "rw": "write",
                           "bs": 1048576, "iodepth": 4, "size": 268435456, "writes": true,
                           "command": ""}],
            "samples": [
                {"kernel": "6.1", "workload": "seq", "config": "cow", "round": 1,
                 "evidence": "a", "copied_bytes": 268435456,
                 "fio": {"name": "j", "error": 0, "runtime_ms": 1, "usr_cpu": 0.0,
                         "sys_cpu": 0.0, "ctx": 0}},
                {"kernel": "6.1", "workload": "seq", "config": "dm-cow", "round": 1,
                 "evidence": "b", "copied_bytes": 16777216,
                 "fio": {"name": "j", "error": 0, "runtime_ms": 1, "usr_cpu": 0.0,
                         "sys_cpu": 0.0, "ctx": 0}},
                {"kernel": "6.1", "workload": "seq", "config": "overwrite", "round": 1,
                 "evidence": "c", "copied_bytes": 0,
                 "fio": {"name": "j", "error": 0, "runtime_ms": 1, "usr_cpu": 0.0,
                         "sys_cpu": 0.0, "ctx": 0}}
            ],
            "failures": [], "console_findings": [], "results": []
        }))
        .expect("a valid run");
        let failures = check(&run);
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert_eq!(failures[0].unit, "dm-cow");
        assert!(
            failures[0].message.contains("16.0 MiB of a 256.0 MiB"),
            "{}",
            failures[0].message
        );
    }
}
