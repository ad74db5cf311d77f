//! `cargo xtask bench`: for each kernel one VM, and in it every workload of
//! `scenarios/bench/` under every configuration, interleaved and repeated; then
//! `results/<run>/bench.json`, `report.md` and SVG charts.
//!
//! Kernels run one after another, never side by side: two guests on two host CPUs would
//! measure each other.

use crate::guest;
use crate::prepare::{self, Prepared};
use anyhow::{bail, Context, Result};
use bdsnap_bench::plan::{prepare_script, PlannedUnit, RESET_SCRIPT};
use bdsnap_bench::{
    BenchKernel, BenchRun, Config, ConsoleFinding, Sample, UnitFailure, Workload, WorkloadInfo,
};
use bdsnap_host::{cache_dir, CmdLog};
use bdsnap_kernels::Matrix;
use bdsnap_scenario::Verdict;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    pub kernels: crate::KernelArgs,
    /// A workload file or directory of them (repeatable); default: scenarios/bench/.
    #[arg(long = "workload", value_name = "PATH")]
    pub workloads: Vec<PathBuf>,
    /// One round over regions a quarter the size: a first look in minutes, not a result.
    #[arg(long)]
    pub quick: bool,
    /// Rounds of every configuration; default 3 (1 with --quick).
    #[arg(long, value_name = "N")]
    pub rounds: Option<u32>,
    /// A previous run (its directory or its bench.json): flag ratios that got worse beyond
    /// the noise both runs measured; exit 1 when any did.
    #[arg(long, value_name = "DIR")]
    pub compare: Option<PathBuf>,
    /// Kernels benchmarked at once, each in its own VM; default 1. Ratios stay side by side
    /// within one VM, but VMs sharing the host's CPUs widen every spread: more than one is
    /// for big machines, or for a first look.
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Boot nothing: rebuild the report and charts of an earlier run from its bench.json and
    /// unit evidence (after a change to the report, or to add what older runs lacked).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["quick", "rounds", "jobs"])]
    pub report_from: Option<PathBuf>,
    #[command(flatten)]
    pub vm: crate::VmArgs,
}

/// Reads and checks the workloads before anything is built or booted.
fn load_workloads(root: &Path, args: &BenchArgs, kernels: &[String]) -> Result<Vec<Workload>> {
    let scenarios =
        crate::test::load_scenarios(&args.workloads, &root.join("scenarios/bench"), kernels)?;
    let mut workloads = Vec::new();
    let mut errors = Vec::new();
    for sc in &scenarios {
        match Workload::from_scenario(sc) {
            Ok(mut w) => {
                w.source = relative(root, Path::new(&w.source));
                workloads.push(if args.quick { w.quick() } else { w });
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    if !errors.is_empty() {
        bail!("invalid benchmark workloads:\n{}", errors.join("\n"));
    }
    Ok(workloads)
}

pub fn run(root: &Path, args: BenchArgs) -> Result<bool> {
    if let Some(dir) = &args.report_from {
        return rerender(dir, args.compare.as_deref());
    }
    let started = Instant::now();
    let started_at = SystemTime::now();
    let matrix = Matrix::load(&args.kernels.matrix)?;
    let workloads = load_workloads(root, &args, &args.kernels.known_names(&matrix))?;
    let rounds = args.rounds.unwrap_or(if args.quick { 1 } else { 3 }).max(1);
    let baseline = match &args.compare {
        Some(dir) => Some(bdsnap_bench::load_run(dir)?),
        None => None,
    };

    let results = root.join(&args.vm.results);
    std::fs::create_dir_all(&results).with_context(|| format!("creating {}", results.display()))?;
    let stamp = crate::test::run_id(started_at);
    let (id, run_dir) = (1..100)
        .map(|n| match n {
            1 => format!("bench-{stamp}"),
            n => format!("bench-{stamp}-{n}"),
        })
        .map(|id| (id.clone(), results.join(id)))
        .find(|(_, dir)| std::fs::create_dir(dir).is_ok())
        .context("no free run directory")?;
    let log = CmdLog::to_file(&run_dir.join("host-commands.log"))?;
    let units = bdsnap_bench::plan(&workloads, rounds);
    eprintln!(
        "bench {id}: {} workload(s), {rounds} round(s), {} unit(s) per kernel; evidence in {}",
        workloads.len(),
        units.len(),
        run_dir.display()
    );
    crate::hostdeps::ensure(&log)?;
    let prepared = prepare::prepare(&args.kernels, true, &log)?;
    let tools = guest::build_guest_tools(&log)?;
    let key = guest::ssh_key(&cache_dir(), &log)?;
    let image = guest::image(root, &prepared, &key, &log)?;
    let accel = args.vm.accel(&prepared[0].kernel.vmlinuz);
    let jobs = args.jobs.unwrap_or(1).clamp(1, prepared.len().max(1));
    eprintln!("accelerator: {accel}; {jobs} kernel(s) at a time");

    let ctx = guest::RunContext::new(&run_dir, &image.path, &key, tools, accel, &args.vm);
    let mut bench = BenchRun {
        schema: bdsnap_bench::SCHEMA_VERSION,
        run_id: id.clone(),
        started_unix: started_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        accel: accel.to_string(),
        host: std::fs::read_to_string("/etc/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
        quick: args.quick,
        rounds,
        kernels: Vec::new(),
        workloads: workloads.iter().map(workload_info).collect(),
        samples: Vec::new(),
        failures: Vec::new(),
        console_findings: Vec::new(),
        results: Vec::new(),
    };
    // Each kernel fills its own copy of the (empty) run; they are merged in matrix order.
    let board = crate::progress::Board::new();
    let next = AtomicUsize::new(0);
    let mut parts: Vec<(usize, BenchRun)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..jobs)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some(p) = prepared.get(i) else { break };
                        let mut part = bench.clone();
                        run_kernel(&ctx, p, &workloads, &units, &mut part, &board);
                        done.push((i, part));
                    }
                    done
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_default())
            .collect()
    });
    parts.sort_by_key(|(i, _)| *i);
    if parts.len() != prepared.len() {
        anyhow::bail!(
            "a benchmark thread panicked; partial results are in {}",
            run_dir.display()
        );
    }
    for (_, part) in parts {
        bench.kernels.extend(part.kernels);
        bench.samples.extend(part.samples);
        bench.failures.extend(part.failures);
        bench.console_findings.extend(part.console_findings);
    }
    let copy_failures = bdsnap_bench::copies::check(&bench);
    bench.failures.extend(copy_failures);
    finish(
        bench,
        &run_dir,
        baseline.as_ref(),
        args.compare.as_deref(),
        &log,
        started,
    )
}

/// `--report-from`: the outputs of an earlier run again, its samples completed from evidence.
fn rerender(dir: &Path, compare: Option<&Path>) -> Result<bool> {
    let started = Instant::now();
    let mut bench = bdsnap_bench::load_run(dir)?;
    let filled = bdsnap_bench::copies::fill_from_evidence(&mut bench, dir);
    eprintln!(
        "{}: {filled} first-pass sample(s) completed from evidence",
        dir.display()
    );
    for f in bdsnap_bench::copies::check(&bench) {
        if !bench.failures.contains(&f) {
            bench.failures.push(f);
        }
    }
    let baseline = match compare {
        Some(b) => Some(bdsnap_bench::load_run(b)?),
        None => None,
    };
    let log = CmdLog::to_file(&dir.join("host-commands.log"))?;
    finish(bench, dir, baseline.as_ref(), compare, &log, started)
}

/// Statistics, outputs, the headline on stdout, failures and regressions on stderr.
fn finish(
    mut bench: BenchRun,
    run_dir: &Path,
    baseline: Option<&BenchRun>,
    compare: Option<&Path>,
    log: &CmdLog,
    started: Instant,
) -> Result<bool> {
    bench.compute();
    let comparisons =
        baseline.map(|b| bdsnap_bench::compare(b, &bench, bdsnap_bench::compare::MIN_TOLERANCE));
    let baseline_name = compare.map(|p| p.display().to_string()).unwrap_or_default();
    let outputs = bdsnap_bench::write_outputs(
        &bench,
        run_dir,
        comparisons.as_deref().map(|c| (baseline_name.as_str(), c)),
    )?;
    convert_to_png(run_dir, &outputs.plots, log);

    for kernel in &bench.kernels {
        for (workload, cells) in bdsnap_bench::report::headline_rows(&bench, &kernel.name) {
            println!(
                "{:5} {workload:20} {}",
                kernel.name,
                cells
                    .iter()
                    .map(|(label, v)| format!("{label} {v}"))
                    .collect::<Vec<_>>()
                    .join("  ")
            );
        }
    }
    let mut ok = true;
    if !bench.failures.is_empty() {
        ok = false;
        eprintln!("{} unit(s) failed:", bench.failures.len());
        for f in &bench.failures {
            eprintln!("  {} {}: {}", f.kernel, f.unit, f.message);
        }
    }
    if let Some(c) = &comparisons {
        let worse = bdsnap_bench::regressions(c);
        if !worse.is_empty() {
            ok = false;
            eprintln!("{} regression(s) against {baseline_name}:", worse.len());
            for r in worse {
                eprintln!(
                    "  {} {} {}: {:.2} -> {:.2} ({:+.1} %, threshold {:.2})",
                    r.kernel,
                    r.workload,
                    r.config.name(),
                    r.baseline,
                    r.current,
                    r.change() * 100.0,
                    r.threshold
                );
            }
        }
    }
    println!(
        "report: {} ({:.0}s)",
        outputs.report.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(ok)
}

fn workload_info(w: &Workload) -> WorkloadInfo {
    WorkloadInfo {
        name: w.name.clone(),
        description: w.description.clone(),
        source: w.source.clone(),
        rw: w.job.rw.as_str().to_string(),
        bs: w.job.bs,
        iodepth: w.job.iodepth,
        size: w.job.size,
        writes: w.job.rw.writes(),
        command: w.job.command(),
    }
}

/// PNG copies of the charts where `rsvg-convert` (Debian's librsvg2-bin) and fonts exist; the
/// SVGs are the result, so a missing converter is only noted.
fn convert_to_png(dir: &Path, plots: &[PathBuf], log: &CmdLog) {
    let available = std::process::Command::new("rsvg-convert")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        log.note("rsvg-convert not found: SVG charts only (apt-get install librsvg2-bin for PNG)");
        return;
    }
    for plot in plots {
        let svg = dir.join(plot);
        let mut cmd = std::process::Command::new("rsvg-convert");
        cmd.arg(&svg).arg("-o").arg(svg.with_extension("png"));
        if let Err(e) = log.run(&mut cmd) {
            log.note(&format!("PNG of {} not made: {e}", svg.display()));
        }
    }
}

fn console_since(path: &Path, offset: u64) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

fn relative(run_dir: &Path, path: &Path) -> String {
    path.strip_prefix(run_dir)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Boots one kernel, attaches the data and store disks, fills them once, then runs every
/// unit in order, resetting the guest after each; samples, failures and console findings go
/// into `bench`.
fn run_kernel(
    ctx: &guest::RunContext,
    p: &Prepared,
    workloads: &[Workload],
    units: &[PlannedUnit],
    bench: &mut BenchRun,
    board: &crate::progress::Board,
) {
    let started = Instant::now();
    let k = &p.kernel;
    let name = k.spec.name.clone();
    let kdir = ctx.run_dir.join(&name);
    let fail_all = |bench: &mut BenchRun, why: String| {
        bench.failures.push(UnitFailure {
            kernel: name.clone(),
            workload: String::new(),
            unit: "setup".to_string(),
            round: 0,
            message: why,
            evidence: relative(&ctx.run_dir, &kdir),
        });
    };
    let bar = board.counted(&name, units.len() as u64);
    bar.stage(format!("{}: booting ({})", k.versions.release, ctx.accel));
    let mut vm = match ctx.boot_for_benchmark(p, &kdir.join("vm")) {
        Ok(vm) => vm,
        Err(e) => {
            bar.finish(format!("boot failed: {e:#}"));
            fail_all(bench, format!("boot failed: {e:#}"));
            return;
        }
    };
    let boot_secs = vm.boot_duration().as_secs_f64();

    // The biggest data and store disks any workload declares.
    let mut disks: Vec<bdsnap_scenario::Disk> = Vec::new();
    for w in workloads {
        for d in [&w.data, &w.store] {
            match disks.iter_mut().find(|x| x.name == d.name) {
                Some(x) if x.size_bytes < d.size_bytes => *x = d.clone(),
                Some(_) => {}
                None => disks.push(d.clone()),
            }
        }
    }
    let mut nodes: Vec<(String, String)> = Vec::new();
    let mut files = Vec::new();
    let attach = guest::attach_disks(
        &mut vm,
        &disks,
        &kdir.join("disks"),
        "",
        &mut files,
        &mut nodes,
    );
    let env: Vec<(String, String)> = nodes
        .iter()
        .map(|(n, node)| (format!("DISK_{n}"), node.clone()))
        .collect();
    let size = |n: &str| {
        disks
            .iter()
            .find(|d| d.name == n)
            .map_or(0, |d| d.size_bytes)
    };
    let setup = attach.and_then(|()| {
        bar.stage("filling the disks once");
        let script = prepare_script(
            size(bdsnap_bench::plan::DATA_DISK),
            size(bdsnap_bench::plan::STORE_DISK),
        );
        let out = vm.exec(
            &script,
            &env,
            guest::scaled(ctx.accel, Duration::from_secs(600)),
        )?;
        std::fs::write(
            kdir.join("prepare.log"),
            format!(
                "$ {script}\nexit {}\n{}{}",
                out.exit, out.stdout, out.stderr
            ),
        )?;
        if out.exit != 0 {
            bail!("preparing the guest failed: {}", out.stderr.trim());
        }
        Ok(())
    });

    if let Err(e) = setup {
        fail_all(bench, format!("{e:#}"));
    } else {
        for unit in units {
            let Some(workload) = workloads.get(unit.workload) else {
                continue;
            };
            let id = unit.id(workloads);
            bar.stage(id.clone());
            let sc = unit.scenario(workload);
            let unit_started = Instant::now();
            let offset = vm.console_len();
            let outcome = {
                let scale = vm.config().timeout_scale();
                let mut g = guest::VmGuest { vm: &mut vm, scale };
                bdsnap_scenario::run(&sc, &mut g, &nodes, scale)
            };
            // Back to the plain state whatever happened; a failure here is the next unit's
            // problem, and its own evidence shows it.
            let reset = vm.exec(
                RESET_SCRIPT,
                &env,
                guest::scaled(ctx.accel, Duration::from_secs(120)),
            );
            let console = console_since(vm.console_path(), offset);
            let findings = bdsnap_report::scan(&console);
            let case = bdsnap_report::CaseResult {
                skipped: None,
                kernel: name.clone(),
                scenario: id.clone(),
                scenario_file: workload.source.clone(),
                outcome: Some(outcome.clone()),
                findings: findings.clone(),
                error: reset.as_ref().err().map(|e| format!("reset: {e}")),
                duration_ms: u64::try_from(unit_started.elapsed().as_millis()).unwrap_or(0),
                expected_failure: None,
            };
            let case_dir = match bdsnap_report::write_case_dir(&ctx.run_dir, &case, &console, "") {
                Ok(dir) => {
                    if let Ok(yaml) = sc.to_yaml() {
                        let _ = std::fs::write(dir.join("scenario.yaml"), yaml);
                    }
                    dir
                }
                Err(_) => bdsnap_report::case_dir(&ctx.run_dir, &case),
            };
            // The evidence command runs last: what the snapshot's store holds, for the
            // first pass's sample.
            let copied = outcome
                .steps
                .last()
                .filter(|step| step.kind == "run" && step.verdict == Verdict::Pass)
                .and_then(|step| bdsnap_bench::copies::copied_bytes(unit.kind, &step.stdout));
            let configs = unit.kind.configs();
            let mut fio_index = 0;
            for step in &outcome.steps {
                if step.kind != "fio" {
                    continue;
                }
                let config = configs.get(fio_index).copied();
                fio_index += 1;
                if let (Verdict::Pass, Some(config), Some(summary)) =
                    (&step.verdict, config, step.fio.first())
                {
                    bench.samples.push(Sample {
                        kernel: name.clone(),
                        workload: workload.name.clone(),
                        config,
                        round: unit.round,
                        evidence: relative(
                            &ctx.run_dir,
                            &case_dir.join(bdsnap_report::fio_report_name(step)),
                        ),
                        fio: summary.clone(),
                        copied_bytes: copied
                            .filter(|_| matches!(config, Config::Cow | Config::DmCow)),
                    });
                }
            }
            if let Some(step) = outcome.first_failure() {
                let why = match &step.verdict {
                    Verdict::Fail(why) => why.clone(),
                    _ => String::new(),
                };
                bench.failures.push(UnitFailure {
                    kernel: name.clone(),
                    workload: workload.name.clone(),
                    unit: id.clone(),
                    round: unit.round,
                    message: format!("step {} ({}): {why}", step.index, step.kind),
                    evidence: relative(&ctx.run_dir, &case_dir),
                });
            }
            for f in findings {
                bench.console_findings.push(ConsoleFinding {
                    kernel: name.clone(),
                    unit: id.clone(),
                    finding: f.to_string(),
                });
            }
            bar.inc();
            if !vm.is_running() {
                fail_all(
                    bench,
                    format!("QEMU exited during {id} (see vm/console.log)"),
                );
                break;
            }
        }
    }
    if vm.is_running() {
        if let Ok(o) = vm.exec(
            "dmesg",
            &[],
            guest::scaled(ctx.accel, Duration::from_secs(30)),
        ) {
            let _ = std::fs::write(kdir.join("dmesg.txt"), o.stdout);
        }
        for d in &disks {
            let _ = vm.remove_disk_if_present(&d.name);
        }
    }
    guest::stop_vm(vm, &files);
    let wall_secs = started.elapsed().as_secs_f64();
    bar.finish(format!(
        "{} samples, {} failed unit(s) in {wall_secs:.0}s",
        bench.samples.iter().filter(|s| s.kernel == name).count(),
        bench.failures.iter().filter(|f| f.kernel == name).count()
    ));
    bench.kernels.push(BenchKernel {
        name: name.clone(),
        release: k.versions.release.clone(),
        package_version: k.versions.package_version.clone(),
        compiler: k.versions.compiler.clone(),
        boot_secs,
        wall_secs,
    });
}
