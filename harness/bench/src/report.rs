//! `report.md`: what a person reads first. Every number in it comes from `bench.json`.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::compare::{Comparison, Verdict};
use crate::model::{BenchRun, Sample};
use crate::plan::Config;
use crate::stats::{ratios_by_round, RatioStats};

/// `0.93 [0.90–0.97]`: median of per-round ratios and their range.
pub fn format_ratio(r: &RatioStats) -> String {
    if r.spread.n > 1 {
        format!(
            "{:.2} [{:.2}–{:.2}]",
            r.spread.median, r.spread.min, r.spread.max
        )
    } else {
        format!("{:.2}", r.spread.median)
    }
}

fn format_ns(ns: Option<f64>) -> String {
    match ns {
        None => "–".to_string(),
        Some(v) if v >= 1e6 => format!("{:.2} ms", v / 1e6),
        Some(v) => format!("{:.0} µs", v / 1e3),
    }
}

fn iops_of(run: &BenchRun, kernel: &str, workload: &str, config: Config) -> Vec<(u32, f64)> {
    run.samples
        .iter()
        .filter(|s: &&Sample| s.kernel == kernel && s.workload == workload && s.config == config)
        .map(|s| (s.round, s.fio.total_iops()))
        .collect()
}

/// The ratio of two configurations round by round (e.g. bdsnap's COW against dm-snapshot's).
pub fn pair_ratio(
    run: &BenchRun,
    kernel: &str,
    workload: &str,
    numerator: Config,
    denominator: Config,
) -> Option<RatioStats> {
    ratios_by_round(
        &iops_of(run, kernel, workload, numerator),
        &iops_of(run, kernel, workload, denominator),
    )
}

/// The headline figures per kernel and workload: tracked/raw, COW/raw, overwrite/raw, bdsnap
/// COW against dm-snapshot COW, image read/raw.
pub fn headline_rows(run: &BenchRun, kernel: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut rows = Vec::new();
    for w in &run.workloads {
        let mut cells = Vec::new();
        let ratio = |c: Config| {
            run.result(kernel, &w.name, c)
                .and_then(|r| r.ratio.as_ref())
                .map(format_ratio)
        };
        for (label, config) in [
            ("filter/raw", Config::Filter),
            ("tracked/raw", Config::Tracked),
            ("cow/raw", Config::Cow),
            ("overwrite/raw", Config::Overwrite),
            ("dm-cow/raw", Config::DmCow),
            ("image/raw", Config::Image),
            ("dm-image/raw", Config::DmImage),
        ] {
            if let Some(text) = ratio(config) {
                cells.push((label.to_string(), text));
            }
        }
        for (label, a, b) in [
            ("cow/dm-cow", Config::Cow, Config::DmCow),
            (
                "overwrite/dm-overwrite",
                Config::Overwrite,
                Config::DmOverwrite,
            ),
            ("image/dm-image", Config::Image, Config::DmImage),
        ] {
            if let Some(r) = pair_ratio(run, kernel, &w.name, a, b) {
                cells.push((label.to_string(), format_ratio(&r)));
            }
        }
        if !cells.is_empty() {
            rows.push((w.name.clone(), cells));
        }
    }
    rows
}

/// The whole report. `plots` are file names relative to the report; `comparison` is the
/// baseline's directory and the comparisons, when `--compare` was given.
/// Table rows of the first-pass copies of `kernel`, one per writing workload with any.
fn copies_rows(run: &BenchRun, kernel: &str) -> Vec<String> {
    let mib = |config: Config, workload: &str| -> String {
        let v: Vec<f64> = run
            .samples
            .iter()
            .filter(|s| s.kernel == kernel && s.workload == workload && s.config == config)
            .filter_map(|s| s.copied_bytes)
            .map(|b| b as f64 / f64::from(1u32 << 20))
            .collect();
        match crate::stats::Spread::of(&v) {
            Some(sp) => format!("{:.1} [{:.1}–{:.1}]", sp.median, sp.min, sp.max),
            None => "–".to_string(),
        }
    };
    run.workloads
        .iter()
        .filter(|w| w.writes)
        .filter(|w| {
            run.samples
                .iter()
                .any(|s| s.kernel == kernel && s.workload == w.name && s.copied_bytes.is_some())
        })
        .map(|w| {
            format!(
                "| {} | {:.1} | {} | {} |",
                w.name,
                w.size as f64 / f64::from(1u32 << 20),
                mib(Config::Cow, &w.name),
                mib(Config::DmCow, &w.name)
            )
        })
        .collect()
}

pub fn render(
    run: &BenchRun,
    plots: &[PathBuf],
    comparison: Option<(&str, &[Comparison])>,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Benchmark {}\n", run.run_id);
    let _ = writeln!(
        out,
        "Accelerator **{}**, host `{}`, {} round(s){}. Every configuration of a workload ran \
         in the same VM, interleaved round by round (A B C … A B C …); ratios are IOPS of a \
         configuration divided by the raw device's IOPS **in the same round**, reported as the \
         median of the rounds with [min–max]. Absolute numbers under TCG are emulation speed, \
         not hardware speed: read the ratios.\n",
        run.accel,
        run.host,
        run.rounds,
        if run.quick {
            ", quick mode (smaller regions)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        out,
        "| kernel | release | package | compiler | boot | wall |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for k in &run.kernels {
        let _ = writeln!(
            out,
            "| {} | `{}` | `{}` | {} | {:.1} s | {:.0} s |",
            k.name, k.release, k.package_version, k.compiler, k.boot_secs, k.wall_secs
        );
    }
    let _ = writeln!(out, "\n## Configurations\n");
    let _ = writeln!(out, "| name | what |\n|---|---|");
    for c in run.configs_present() {
        let _ = writeln!(out, "| `{}` | {} |", c.name(), c.description());
    }
    let _ = writeln!(out, "\n## Workloads\n");
    let _ = writeln!(
        out,
        "| name | rw | bs | iodepth | region | file |\n|---|---|---|---|---|---|"
    );
    for w in &run.workloads {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} MiB | `{}` |",
            w.name,
            w.rw,
            w.bs,
            w.iodepth,
            w.size >> 20,
            w.source
        );
    }

    for k in &run.kernels {
        let _ = writeln!(out, "\n## Kernel {} (`{}`)\n", k.name, k.release);
        for p in plots {
            let name = p.display().to_string();
            if name == format!("ratio-{}.svg", crate::plots::file_part(&k.name)) {
                let _ = writeln!(out, "![IOPS relative to raw, kernel {}]({name})\n", k.name);
            }
        }
        let headline = headline_rows(run, &k.name);
        if !headline.is_empty() {
            let _ = writeln!(out, "### Ratios\n");
            for (workload, cells) in &headline {
                let _ = writeln!(
                    out,
                    "- **{workload}**: {}",
                    cells
                        .iter()
                        .map(|(label, v)| format!("{label} {v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        let _ = writeln!(out, "\n### Medians\n");
        let _ = writeln!(
            out,
            "| workload | config | samples | IOPS | MiB/s | ratio to raw | lat p50 | p99 | p99.9 | sys CPU |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
        for r in run.results.iter().filter(|r| r.kernel == k.name) {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.0} | {:.1} | {} | {} | {} | {} | {:.1} % |",
                r.workload,
                r.config.name(),
                r.samples,
                r.iops.median,
                r.bw_bytes.median / f64::from(1u32 << 20),
                r.ratio.as_ref().map_or("–".to_string(), format_ratio),
                format_ns(r.latency.p50_ns),
                format_ns(r.latency.p99_ns),
                format_ns(r.latency.p99_9_ns),
                r.cpu_sys_median
            );
        }
        let copies = copies_rows(run, &k.name);
        if !copies.is_empty() {
            let _ = writeln!(
                out,
                "\n### First-pass copies\n\nMiB the store held after each first pass (median \
                 [min–max] over rounds; the region of a writing workload is copied once):\n"
            );
            let _ = writeln!(out, "| workload | region | bdsnap | dm-snapshot |");
            let _ = writeln!(out, "|---|---|---|---|");
            for row in copies {
                let _ = writeln!(out, "{row}");
            }
        }
        let mine: Vec<_> = plots
            .iter()
            .map(|p| p.display().to_string())
            .filter(|p| {
                let k = crate::plots::file_part(&k.name);
                p.starts_with(&format!("latency-{k}-")) || p.starts_with(&format!("iops-qd-{k}-"))
            })
            .collect();
        if !mine.is_empty() {
            let _ = writeln!(out, "\n### Charts\n");
            for p in mine {
                let _ = writeln!(out, "- [{p}]({p})");
            }
        }
    }

    if !run.failures.is_empty() {
        let _ = writeln!(out, "\n## Units that failed\n");
        for f in &run.failures {
            let _ = writeln!(
                out,
                "- kernel {}, round {}, `{}`: {} (evidence: `{}`)",
                f.kernel, f.round, f.unit, f.message, f.evidence
            );
        }
    }
    if !run.console_findings.is_empty() {
        let _ = writeln!(out, "\n## Kernel console findings\n");
        for f in &run.console_findings {
            let _ = writeln!(
                out,
                "- kernel {}, during `{}`: {}",
                f.kernel, f.unit, f.finding
            );
        }
    }
    if let Some((baseline, comparisons)) = comparison {
        let _ = writeln!(out, "\n## Against the baseline `{baseline}`\n");
        let flagged: Vec<&Comparison> = comparisons
            .iter()
            .filter(|c| c.verdict != Verdict::Unchanged)
            .collect();
        let _ = writeln!(
            out,
            "{} ratio(s) compared, {} regression(s), {} improvement(s); a change is flagged \
             only beyond both runs' spread (half-ranges added) and at least {:.0} %.\n",
            comparisons.len(),
            comparisons
                .iter()
                .filter(|c| c.verdict == Verdict::Regression)
                .count(),
            comparisons
                .iter()
                .filter(|c| c.verdict == Verdict::Improvement)
                .count(),
            crate::compare::MIN_TOLERANCE * 100.0
        );
        if !flagged.is_empty() {
            let _ = writeln!(
                out,
                "| kernel | workload | config | baseline | now | change | verdict |"
            );
            let _ = writeln!(out, "|---|---|---|---|---|---|---|");
            for c in flagged {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {:.2} | {:.2} | {:+.1} % | {:?} |",
                    c.kernel,
                    c.workload,
                    c.config.name(),
                    c.baseline,
                    c.current,
                    c.change() * 100.0,
                    c.verdict
                );
            }
        }
    }
    out
}
