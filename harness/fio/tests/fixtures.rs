//! Real fio output (see fixtures/README.md for the commands that made it) parses into
//! figures that agree with each other.

use std::path::{Path, PathBuf};

use bdsnap_fio::{DirectionSummary, FioError, FioOutput};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn load(name: &str) -> FioOutput {
    FioOutput::load(&fixtures().join(name)).unwrap_or_else(|e| panic!("{e}"))
}

/// The figures of a direction hang together: ordered percentiles, IOPS from the counts,
/// bandwidth from IOPS and the block size.
fn check_direction(d: &DirectionSummary, bs: u64, what: &str) {
    let p = d.percentiles;
    let (Some(p50), Some(p99), Some(p999)) = (p.p50_ns, p.p99_ns, p.p99_9_ns) else {
        panic!("{what}: missing percentiles {p:?}");
    };
    assert!(0 < p50 && p50 <= p99 && p99 <= p999, "{what}: {p:?}");
    assert!(d.lat_min_ns as f64 <= d.lat_mean_ns && d.lat_mean_ns <= d.lat_max_ns as f64);
    assert!(d.total_ios > 0 && d.runtime_ms > 0, "{what}");
    let iops = d.total_ios as f64 / (d.runtime_ms as f64 / 1000.0);
    assert!(
        (iops / d.iops - 1.0).abs() < 0.02,
        "{what}: {iops} vs {}",
        d.iops
    );
    assert_eq!(d.io_bytes, d.total_ios * bs, "{what}");
    let bw = d.iops * bs as f64;
    assert!(
        (bw / d.bw_bytes as f64 - 1.0).abs() < 0.02,
        "{what}: {bw} vs {}",
        d.bw_bytes
    );
}

#[test]
fn every_fixture_parses() {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(fixtures()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let out = FioOutput::load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(out.fio_version, "fio-3.33");
            assert_eq!(out.jobs.len(), 1, "{}", path.display());
            assert!(out.failed_jobs().is_empty());
            let job = &out.jobs[0];
            assert_eq!(
                job.options.get("lat_percentiles").map(String::as_str),
                Some("1")
            );
            assert!(job.usr_cpu + job.sys_cpu > 0.0);
            names.push(job.jobname.clone());
        }
    }
    names.sort();
    assert_eq!(
        names,
        [
            "randread-qd32",
            "randrw-70-30",
            "randwrite-qd1",
            "randwrite-qd32",
            "seqwrite-1m"
        ]
    );
}

#[test]
fn random_writes() {
    for name in ["randwrite-qd1", "randwrite-qd32"] {
        let s = load(&format!("{name}.json")).summaries().remove(0);
        assert_eq!(s.name, name);
        assert!(s.read.is_none() && s.trim.is_none(), "{name}");
        let w = s.write.as_ref().expect("writes");
        check_direction(w, 4096, name);
        assert_eq!(s.total_iops(), w.iops);
        assert_eq!(s.total_bw_bytes(), w.bw_bytes);
        assert!(s.runtime_ms >= 2900, "{}", s.runtime_ms);
    }
}

#[test]
fn random_reads() {
    let out = load("randread-qd32.json");
    assert_eq!(
        out.jobs[0].options.get("iodepth").map(String::as_str),
        Some("32")
    );
    let s = out.summaries().remove(0);
    assert!(s.write.is_none());
    check_direction(s.read.as_ref().expect("reads"), 4096, "randread");
}

#[test]
fn sequential_writes_of_one_mebibyte() {
    let s = load("seqwrite-1m.json").summaries().remove(0);
    check_direction(s.write.as_ref().expect("writes"), 1 << 20, "seqwrite");
}

#[test]
fn mixed_seventy_thirty() {
    let s = load("randrw-70-30.json").summaries().remove(0);
    let r = s.read.as_ref().expect("reads");
    let w = s.write.as_ref().expect("writes");
    check_direction(r, 4096, "randrw read");
    check_direction(w, 4096, "randrw write");
    let share = r.total_ios as f64 / (r.total_ios + w.total_ios) as f64;
    assert!((0.65..0.75).contains(&share), "read share {share}");
    assert!((s.total_iops() - (r.iops + w.iops)).abs() < 1e-9);
    assert_eq!(s.total_io_bytes(), r.io_bytes + w.io_bytes);
}

#[test]
fn a_note_before_the_report_is_skipped() {
    let text = std::fs::read_to_string(fixtures().join("randwrite-qd1.json")).unwrap();
    let noisy =
        format!("note: both iodepth >= 1 and synchronous I/O engine are selected\n{text}\n");
    let out = FioOutput::parse(&noisy, "stdout").unwrap();
    assert_eq!(out.jobs[0].jobname, "randwrite-qd1");
}

#[test]
fn damaged_files_are_typed_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(fixtures().join("seqwrite-1m.json")).unwrap();
    let cut = dir.path().join("cut.json");
    std::fs::write(&cut, &text[..text.len() / 2]).unwrap();
    let err = FioOutput::load(&cut).unwrap_err();
    assert!(matches!(err, FioError::Json { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with(&format!("{}:", cut.display())),
        "{err}"
    );

    let wrong = dir.path().join("wrong.json");
    std::fs::write(&wrong, "{\"jobs\": [{\"jobname\": 3}]}").unwrap();
    let err = FioOutput::load(&wrong).unwrap_err();
    assert!(matches!(err, FioError::Json { line: 1, .. }), "{err:?}");
    assert!(err.to_string().contains("wrong.json:1:"), "{err}");

    let missing = dir.path().join("missing.json");
    let err = FioOutput::load(&missing).unwrap_err();
    assert!(matches!(err, FioError::Read { .. }), "{err:?}");
    assert!(err.to_string().contains("missing.json"), "{err}");
}
