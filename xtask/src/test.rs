//! `cargo xtask test`: kernels → module build → guest image → one VM per kernel → scenarios
//! back to back in it → results/<run>/.

use crate::guest;
use crate::prepare::{self, Prepared};
use anyhow::{bail, Context, Result};
use bdsnap_host::{cache_dir, CmdLog};
use bdsnap_kernels::Matrix;
use bdsnap_report::{CaseResult, KernelInfo, RunSummary};
use bdsnap_scenario::Scenario;
use bdsnap_vm::Vm;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Instant, SystemTime};

#[derive(clap::Args, Debug)]
pub struct TestArgs {
    #[command(flatten)]
    pub kernels: crate::KernelArgs,
    /// A scenario file or directory of scenarios (repeatable); default: scenarios/.
    #[arg(long = "scenario", value_name = "PATH")]
    pub scenarios: Vec<PathBuf>,
    /// How many VMs run at once; default: one per two host CPUs, at least two.
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Leave a failed case's VM running (its disks attached), print how to get a shell in
    /// it, and wait until you are done; VMs then run one at a time.
    #[arg(long)]
    pub keep_failed: bool,
    #[command(flatten)]
    pub vm: crate::VmArgs,
}

/// Loads every scenario named on the command line (files or directories), reporting all errors
/// of all files at once, before anything is built or booted.
pub fn load_scenarios(
    paths: &[PathBuf],
    default_dir: &Path,
    kernels: &[String],
) -> Result<Vec<Scenario>> {
    let paths = if paths.is_empty() {
        vec![default_dir.to_path_buf()]
    } else {
        paths.to_vec()
    };
    let mut scenarios = Vec::new();
    let mut errors = Vec::new();
    for path in &paths {
        let loaded = if path.is_dir() {
            bdsnap_scenario::load_dir(path, kernels)
        } else {
            bdsnap_scenario::load(path, kernels).map(|s| vec![s])
        };
        match loaded {
            Ok(mut s) => scenarios.append(&mut s),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if !errors.is_empty() {
        bail!("invalid scenarios:\n{}", errors.join("\n"));
    }
    if scenarios.is_empty() {
        bail!(
            "no scenarios found in {}",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let mut names = std::collections::BTreeSet::new();
    for s in &scenarios {
        if !names.insert(s.name.clone()) {
            bail!(
                "{}: scenario name {:?} is used twice in this run",
                s.source.display(),
                s.name
            );
        }
    }
    Ok(scenarios)
}

/// `20261127-014512`, UTC.
pub fn run_id(now: SystemTime) -> String {
    let stamp = humantime::format_rfc3339_seconds(now).to_string();
    stamp
        .trim_end_matches('Z')
        .replace(['-', ':'], "")
        .replace('T', "-")
}

pub fn run(root: &Path, args: TestArgs) -> Result<bool> {
    let started = Instant::now();
    let started_at = SystemTime::now();
    let matrix = Matrix::load(&args.kernels.matrix)?;
    let scenarios = load_scenarios(
        &args.scenarios,
        &root.join("scenarios"),
        &args.kernels.known_names(&matrix),
    )?;
    let selected = args.kernels.specs(&matrix, false)?;

    let results = root.join(&args.vm.results);
    std::fs::create_dir_all(&results).with_context(|| format!("creating {}", results.display()))?;
    // Absolute: QEMU and its sockets must not depend on anybody's working directory. Runs
    // started in the same second get a suffix instead of sharing a directory.
    let (id, run_dir) = (1..100)
        .map(|n| match n {
            1 => run_id(started_at),
            n => format!("{}-{n}", run_id(started_at)),
        })
        .map(|id| (id.clone(), results.join(id)))
        .find(|(_, dir)| std::fs::create_dir(dir).is_ok())
        .context("no free run directory")?;
    let log = CmdLog::to_file(&run_dir.join("host-commands.log"))?;
    eprintln!(
        "run {id}: {} scenario(s) on {} kernel(s); evidence in {}",
        scenarios.len(),
        selected.len(),
        run_dir.display()
    );
    crate::hostdeps::ensure(&log)?;

    let prep_started = Instant::now();
    let prepared = prepare::prepare(&args.kernels, false, &log)?;
    let tools = guest::build_guest_tools(&log)?;
    let key = guest::ssh_key(&cache_dir(), &log)?;
    let image = guest::image(root, &prepared, &key, &log)?;
    let prep_secs = prep_started.elapsed().as_secs_f64();

    let accel = args.vm.accel(&prepared[0].kernel.vmlinuz);
    let host_cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    // Guests spend much of a scenario waiting (sleeps, device probes, SSH round trips), so two
    // VMs share two CPUs well: measured on 2 cores under TCG, 2 at a time halves the wall time.
    // A held VM waits for its person on this terminal: one at a time.
    let jobs = match args.keep_failed {
        true => 1,
        false => args.jobs.unwrap_or((host_cpus / 2).max(2)),
    }
    .clamp(1, prepared.len().max(1));
    eprintln!("accelerator: {accel}; {jobs} VM(s) at a time; preparation took {prep_secs:.1}s");

    let mut ctx = guest::RunContext::new(&run_dir, &image.path, &key, tools, accel, &args.vm);
    ctx.keep_failed = args.keep_failed.then(|| guest::KeepFailed {
        key: key.clone(),
        dir: run_dir.clone(),
    });
    let board = crate::progress::Board::new();
    let queue = Mutex::new(prepared.iter().collect::<Vec<&Prepared>>());
    let collected = Mutex::new(Vec::<KernelRun>::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| loop {
                let next = queue.lock().ok().and_then(|mut q| {
                    if q.is_empty() {
                        None
                    } else {
                        Some(q.remove(0))
                    }
                });
                let Some(p) = next else { break };
                let bar = board.task(&p.kernel.spec.name);
                let result = run_kernel(&ctx, p, &scenarios, &bar);
                bar.finish(format!(
                    "{} passed, {} failed, {} skipped (boot {:.1}s)",
                    result.cases.iter().filter(|c| c.passed()).count(),
                    result.cases.iter().filter(|c| c.failed()).count(),
                    result.cases.iter().filter(|c| c.is_skipped()).count(),
                    result.boot_secs.first().copied().unwrap_or(0.0)
                ));
                if let Ok(mut c) = collected.lock() {
                    c.push(result);
                }
            });
        }
    });
    let mut runs = collected.into_inner().unwrap_or_default();
    let order = |name: &str| {
        prepared
            .iter()
            .position(|p| p.kernel.spec.name == name)
            .unwrap_or(usize::MAX)
    };
    runs.sort_by_key(|r| order(&r.info.name));

    let summary = RunSummary {
        run_id: id.clone(),
        started_unix: started_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        accel: accel.to_string(),
        host: hostname(),
        boot_options: guest::TEST_BOOT_OPTIONS
            .iter()
            .map(|o| o.to_string())
            .collect(),
        kernels: runs.iter().map(|r| r.info.clone()).collect(),
        cases: runs.iter().flat_map(|r| r.cases.clone()).collect(),
        duration_ms: started.elapsed().as_millis() as u64,
    };
    bdsnap_report::write_junit(&summary, &run_dir.join("junit.xml"))?;
    bdsnap_report::write_ktap(&summary, &run_dir.join("results.ktap"))?;
    bdsnap_report::write_summary_json(&summary, &run_dir.join("summary.json"))?;
    let timings = serde_json::json!({
        "preparation_secs": prep_secs,
        "image_cached": image.cached,
        "kernels": runs.iter().map(|r| serde_json::json!({
            "name": r.info.name,
            "prepare_secs": prepared.iter().find(|p| p.kernel.spec.name == r.info.name).map(|p| p.prepare_secs),
            "kernel_cached": prepared.iter().find(|p| p.kernel.spec.name == r.info.name).map(|p| p.kernel.cached),
            "module_cached": prepared.iter().find(|p| p.kernel.spec.name == r.info.name).map(|p| p.build.cached),
            "boot_to_ssh_secs": r.boot_secs,
            "wall_secs": r.wall_secs,
        })).collect::<Vec<_>>(),
        "total_secs": started.elapsed().as_secs_f64(),
    });
    std::fs::write(
        run_dir.join("timings.json"),
        serde_json::to_string_pretty(&timings)?,
    )?;
    // On GitHub Actions the run's page shows the table too.
    if let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) {
        use std::io::Write as _;
        let written = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .and_then(|mut f| {
                f.write_all(bdsnap_report::render_markdown_summary(&summary).as_bytes())
            });
        if let Err(e) = written {
            eprintln!(
                "writing $GITHUB_STEP_SUMMARY ({}): {e}",
                std::path::Path::new(&path).display()
            );
        }
    }
    println!("{}", bdsnap_report::render_terminal_summary(&summary));
    println!(
        "results: {} ({:.0}s)",
        run_dir.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(summary.passed())
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

struct KernelRun {
    info: KernelInfo,
    cases: Vec<CaseResult>,
    boot_secs: Vec<f64>,
    wall_secs: f64,
}

/// Boots `p`'s kernel once and runs the scenarios back to back; a case that failed or upset
/// the kernel gets the next scenario a fresh VM, so one failure cannot leak into another.
fn run_kernel(
    ctx: &guest::RunContext,
    p: &Prepared,
    scenarios: &[Scenario],
    bar: &crate::progress::Task,
) -> KernelRun {
    let started = Instant::now();
    let k = &p.kernel;
    let info = KernelInfo {
        name: k.spec.name.clone(),
        suite: k.spec.suite.clone(),
        release: k.versions.release.clone(),
        package_version: k.versions.package_version.clone(),
        compiler: k.versions.compiler.clone(),
        packages: k.versions.packages.clone(),
        source: k.versions.source.clone(),
        config_fragments: k.versions.config_fragments.clone(),
        extra_cmdline: ctx.kernel_options(p),
    };
    let kdir = ctx.run_dir.join(&k.spec.name);
    let mut cases = Vec::new();
    let mut boot_secs = Vec::new();
    let mut vm: Option<Vm> = None;
    let mut boots = 0;
    let mut boot_error: Option<String> = None;
    // What `requires: config` is checked against; a kernel without a readable config has no
    // option a scenario could require.
    let config = std::fs::read_to_string(&k.config)
        .map(|c| bdsnap_kernels::source::parse_config(&c))
        .unwrap_or_default();
    for sc in scenarios.iter().filter(|s| s.applies_to(&k.spec.name)) {
        let case_started = Instant::now();
        let mut case = CaseResult {
            skipped: None,
            kernel: k.spec.name.clone(),
            scenario: sc.name.clone(),
            scenario_file: sc.source.display().to_string(),
            outcome: None,
            findings: Vec::new(),
            error: None,
            duration_ms: 0,
            expected_failure: sc
                .expect_failure
                .as_ref()
                .map(|f| bdsnap_report::ExpectedFailure {
                    step: f.step,
                    console: f.console.clone(),
                }),
        };
        if let Some(why) = sc.requires.unmet_on_host(&k.versions.release, &config) {
            skip(ctx, bar, &k.versions.release, case, why, &mut cases);
            continue;
        }
        // Lockdep turns itself off after its first report and whenever the kernel is tainted
        // by a KASAN, UBSAN or DEBUG_OBJECTS report (a self-test's): a scenario that relies on
        // it gets a fresh VM then.
        if needs_lockdep(sc) && vm.as_mut().is_some_and(guest::lockdep_off) {
            if let Some(v) = vm.take() {
                stop(v);
            }
        }
        if vm.is_none() && boot_error.is_none() {
            boots += 1;
            bar.stage(format!("{}: booting ({})", k.versions.release, ctx.accel));
            match ctx.boot(p, &kdir.join(format!("vm-{boots}"))) {
                Ok(v) => {
                    boot_secs.push(v.boot_duration().as_secs_f64());
                    vm = Some(v);
                }
                Err(e) => boot_error = Some(format!("{e:#}")),
            }
        }
        if let (Some(v), Some(check)) = (vm.as_mut(), sc.requires.guest_check()) {
            let t = std::time::Duration::from_secs(30).mul_f64(v.config().timeout_scale());
            match v.exec(&check, &[], t) {
                Ok(o) => {
                    if let Some(why) = bdsnap_scenario::Requires::unmet_in_guest(&o.stdout) {
                        skip(ctx, bar, &k.versions.release, case, why, &mut cases);
                        continue;
                    }
                }
                Err(e) => case.error = Some(format!("checking requires in the guest: {e}")),
            }
        }
        // Without a VM there is a boot error: the boot above either succeeded or set it.
        let (excerpt, dmesg, kmemleak) = match &mut vm {
            Some(v) => {
                bar.stage(format!("{}: {} started", k.versions.release, sc.name));
                let r = guest::run_scenario(v, sc, &kdir.join("disks"), ctx.keep_failed.as_ref());
                case.outcome = r.outcome;
                case.error = case.error.take().or(r.error);
                (r.console, r.dmesg, r.kmemleak)
            }
            None => {
                let why = boot_error.as_deref().unwrap_or("no VM");
                case.error = Some(format!("boot failed: {why}"));
                (String::new(), String::new(), String::new())
            }
        };
        case.findings = bdsnap_report::scan(&excerpt);
        case.findings
            .extend(bdsnap_report::kmemleak::findings(&kmemleak));
        case.duration_ms = case_started.elapsed().as_millis() as u64;
        if let Err(e) = bdsnap_report::write_case_dir(&ctx.run_dir, &case, &excerpt, &dmesg) {
            case.error.get_or_insert(format!("writing results: {e}"));
        }
        if !kmemleak.is_empty() {
            let path = bdsnap_report::case_dir(&ctx.run_dir, &case).join("kmemleak.txt");
            if let Err(e) = std::fs::write(&path, &kmemleak) {
                case.error
                    .get_or_insert(format!("writing {}: {e}", path.display()));
            }
        }
        let vm_dead = vm.as_mut().is_some_and(|v| !v.is_running());
        // A self-test that failed exactly as declared passed: its VM carries on. Any other
        // failure leaves the VM suspect, so the next scenario gets a fresh one.
        if !case.passed() || vm_dead {
            if let Some(v) = vm.take() {
                stop(v);
            }
        }
        bar.record(&format!(
            "{}: {} {} in {:.1}s",
            k.versions.release,
            sc.name,
            case_verdict(&case),
            case.duration_ms as f64 / 1000.0
        ));
        cases.push(case);
    }
    if let Some(v) = vm.take() {
        stop(v);
    }
    KernelRun {
        info,
        cases,
        boot_secs,
        wall_secs: started.elapsed().as_secs_f64(),
    }
}

/// The word the run's table shows for a finished case.
fn case_verdict(case: &CaseResult) -> &'static str {
    if case.is_skipped() {
        "SKIP"
    } else if case.passed() {
        "PASS"
    } else {
        "FAIL"
    }
}

/// Records `case` as skipped for `why` (its directory holds steps.json saying so).
fn skip(
    ctx: &guest::RunContext,
    bar: &crate::progress::Task,
    release: &str,
    mut case: CaseResult,
    why: String,
    cases: &mut Vec<CaseResult>,
) {
    bar.record(&format!("{release}: {} SKIP: {why}", case.scenario));
    case.skipped = Some(why);
    if let Err(e) = bdsnap_report::write_case_dir(&ctx.run_dir, &case, "", "") {
        eprintln!("writing the skipped case {}: {e}", case.scenario);
    }
    cases.push(case);
}

/// Whether a scenario needs lockdep working: every one but the self-tests that expect
/// another checker's report.
fn needs_lockdep(sc: &Scenario) -> bool {
    const LOCKDEP: &[bdsnap_report::Marker] = &[
        bdsnap_report::Marker::CircularLocking,
        bdsnap_report::Marker::Lockdep,
    ];
    match sc
        .expect_failure
        .as_ref()
        .and_then(|f| f.console.as_deref())
    {
        Some(label) => {
            bdsnap_report::Marker::from_label(label).is_some_and(|m| LOCKDEP.contains(&m))
        }
        None => true,
    }
}

/// Stops a VM and drops its overlay; its console log and command line stay as evidence.
fn stop(vm: Vm) {
    guest::stop_vm(vm, &[]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn run_ids_sort_by_time() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_739_112);
        assert_eq!(run_id(t), "20261127-002512");
    }
}
