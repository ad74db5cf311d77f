//! Loading and validation: every class of mistake is reported with its exact file, line,
//! column and field, and valid files load into the expected model.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bdsnap_scenario::{
    bdsnap_fio::RwMode, load, load_dir, load_str, Action, Bus, ErrorKind, ExitExpect, Kernels,
    LoadErrors, Scenario,
};

// The names of images/kernels.yaml (checked against it by bdsnap-kernels' own tests).
const KERNELS: [&str; 5] = ["5.10", "6.1", "6.12", "7.2", "6.12-debug"];
const FILE: &str = "scenarios/t.yaml";

/// A valid scenario; tests break one thing in it at a time.
const VALID: &str = "\
name: t
description: a test scenario
kernels: all
timeout: 5m
disks:
  - {name: data, size: 256MiB, bus: virtio}
  - name: cow
    size: 64MiB
    bus: nvme
steps:
  - run: modprobe bdsnap
  - run: test -b $DISK_data
  - unplug: data
  - run: \"! test -e ${DISK_data}\"
    expect: {exit: 0}
    timeout: 30s
";

fn errors(text: &str) -> Vec<String> {
    match load_str(text, Path::new(FILE), &KERNELS) {
        Ok(s) => panic!("expected errors, loaded {s:?}"),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

fn only_error(text: &str) -> String {
    let all = errors(text);
    assert_eq!(all.len(), 1, "{all:#?}");
    all.into_iter().next().unwrap()
}

fn kinds(text: &str) -> Vec<ErrorKind> {
    let err: LoadErrors = load_str(text, Path::new(FILE), &KERNELS).unwrap_err();
    err.diagnostics().map(|d| d.kind).collect()
}

#[test]
fn valid_scenario_loads() {
    let s = load_str(VALID, Path::new(FILE), &KERNELS).unwrap();
    assert_eq!(s.name(), "t");
    assert_eq!(s.source(), Path::new(FILE));
    assert_eq!(s.timeout, Some(Duration::from_secs(300)));
    let disks: Vec<_> = s
        .disks()
        .iter()
        .map(|d| (d.name.as_str(), d.size_bytes, d.bus, d.location.line))
        .collect();
    assert_eq!(
        disks,
        [
            ("data", 256 << 20, Bus::Virtio, 6),
            ("cow", 64 << 20, Bus::Nvme, 7)
        ]
    );
    let lines: Vec<usize> = s.steps().iter().map(|st| st.location.line).collect();
    assert_eq!(lines, [11, 12, 13, 14]);
    match &s.steps()[3].action {
        Action::Run(run) => {
            assert_eq!(run.command, "! test -e ${DISK_data}");
            assert_eq!(run.timeout, Some(Duration::from_secs(30)));
            assert_eq!(run.expect.exit, ExitExpect::Code(0));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(&s.steps()[2].action, Action::Unplug(u) if u.disk == "data"));
    assert!(s.applies_to("6.1") && s.applies_to("anything"));
}

#[test]
fn kernels_list_selects_kernels() {
    // Unquoted 5.10 would be the float 5.1 in YAML 1.1; it must stay the text "5.10".
    let text = VALID.replace("kernels: all", "kernels: [5.10, \"7.2\"]");
    let s = load_str(&text, Path::new(FILE), &KERNELS).unwrap();
    assert_eq!(s.kernels, Kernels::Only(vec!["5.10".into(), "7.2".into()]));
    assert!(s.applies_to("5.10") && s.applies_to("7.2"));
    assert!(!s.applies_to("6.1") && !s.applies_to("5.1"));
}

#[test]
fn round_trip_through_yaml() {
    let text = VALID.replace("kernels: all", "kernels: [\"6.1\"]").replace(
        "  - run: modprobe bdsnap\n",
        "  - run: modprobe bdsnap\n    expect: {exit: any, stdout: \"x\", stdout_contains: y, stderr_contains: z}\n    timeout: 1500ms\n",
    );
    let first = load_str(&text, Path::new(FILE), &KERNELS).unwrap();
    let yaml = first.to_yaml().unwrap();
    let second = load_str(&yaml, Path::new(FILE), &KERNELS).unwrap();
    let strip = |s: &Scenario| {
        let mut s = s.clone();
        s.name_location = Default::default();
        s.disks
            .iter_mut()
            .for_each(|d| d.location = Default::default());
        s.steps
            .iter_mut()
            .for_each(|st| st.location = Default::default());
        s
    };
    assert_eq!(strip(&first), strip(&second), "{yaml}");
    match &second.steps[0].action {
        Action::Run(run) => {
            assert_eq!(run.expect.exit, ExitExpect::Any);
            assert_eq!(run.timeout, Some(Duration::from_millis(1500)));
            assert_eq!(run.expect.stderr_contains.as_deref(), Some("z"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn unknown_field() {
    let text = VALID.replace("    timeout: 30s\n", "    timeout: 30s\n    retries: 3\n");
    assert_eq!(
        only_error(&text),
        "scenarios/t.yaml:17:5: steps[3].retries: unknown field `retries`, expected one of \
         `run`, `unplug`, `fio`, `expect`, `timeout`, `capture`"
    );
    let text = VALID.replace("{exit: 0}", "{exit: 0, stdot: x}");
    assert_eq!(
        only_error(&text),
        "scenarios/t.yaml:15:23: steps[3].expect.stdot: unknown field `stdot`, expected one of \
         `exit`, `stdout`, `stdout_contains`, `stderr_contains`"
    );
}

#[test]
fn wrong_type() {
    let text = VALID.replace("  - run: modprobe bdsnap", "  - run: [modprobe, bdsnap]");
    assert_eq!(
        only_error(&text),
        "scenarios/t.yaml:11:10: steps[0].run: invalid type: sequence, expected a string"
    );
    let text = VALID.replace("{exit: 0}", "{exit: zero}");
    assert_eq!(
        only_error(&text),
        "scenarios/t.yaml:15:20: steps[3].expect.exit: invalid value: string \"zero\", \
         expected an exit status (0..255) or `any`"
    );
}

#[test]
fn bad_size() {
    let text = VALID.replace("size: 256MiB", "size: 256MB");
    assert_eq!(
        only_error(&text),
        "scenarios/t.yaml:6:24: disks[0].size: size \"256MB\": use binary units KiB, MiB, GiB \
         or TiB (decimal units are ambiguous)"
    );
    let text = VALID.replace("    size: 64MiB", "    size: 1000");
    assert_eq!(
        only_error(&text),
        "scenarios/t.yaml:8:11: disks[1].size: size \"1000\" (1000 bytes) is not a multiple of \
         512 bytes"
    );
}

#[test]
fn bad_duration() {
    let text = VALID.replace("timeout: 30s", "timeout: 30");
    assert_eq!(
        only_error(&text),
        "scenarios/t.yaml:16:14: steps[3].timeout: duration \"30\" needs a unit: ms, s, m or h \
         (e.g. 30s)"
    );
    let text = VALID.replace("timeout: 5m", "timeout: 5 minutes");
    assert_eq!(
        only_error(&text),
        "scenarios/t.yaml:4:10: timeout: duration \"5 minutes\": unknown unit \"minutes\" (use \
         ms, s, m or h)"
    );
}

#[test]
fn unknown_bus() {
    let text = VALID.replace("bus: nvme", "bus: ide");
    assert_eq!(
        only_error(&text),
        "scenarios/t.yaml:9:10: disks[1].bus: unknown variant `ide`, expected one of `virtio`, \
         `scsi`, `nvme`"
    );
}

#[test]
fn missing_field() {
    let text = VALID.replace("    size: 64MiB\n", "");
    assert_eq!(
        only_error(&text),
        "scenarios/t.yaml:7:5: disks[1].size: missing field `size`"
    );
}

#[test]
fn invalid_disk_names() {
    let text = VALID.replace("name: cow", "name: Cow-1");
    assert_eq!(
        only_error(&text),
        "scenarios/t.yaml:7:5: disks[1].name: disk name \"Cow-1\" must match \
         [a-z][a-z0-9_]{0,15} (it becomes $DISK_<name> in the guest)"
    );
    let text = VALID.replace("name: cow", "name: abcdefghijklmnopq");
    assert_eq!(kinds(&text), [ErrorKind::DiskName]);
    let text = VALID.replace("name: cow", "name: abcdefghijklmnop");
    assert!(
        load_str(&text, Path::new(FILE), &KERNELS).is_ok(),
        "16 chars is allowed"
    );
}

#[test]
fn duplicate_disk_names() {
    let text = VALID.replace("name: cow", "name: data");
    assert_eq!(
        only_error(&text),
        "scenarios/t.yaml:7:5: disks[1].name: disk \"data\" is declared twice (first at line 6)"
    );
}

#[test]
fn unplug_of_undeclared_disk() {
    // Line 12, column 5, as in the format's documentation.
    let text = "\
name: smoke
kernels: all
disks:
  - {name: data, size: 256MiB, bus: virtio}
steps:
  - run: modprobe bdsnap
  - run: grep -c '^bdsnap ' /proc/modules
    expect:
      exit: 0
      stdout: \"1\"
    timeout: 60s
  - unplug: dta
";
    assert_eq!(
        only_error(text),
        "scenarios/t.yaml:12:5: steps[2].unplug: disk \"dta\" is not declared in disks \
         (declared: data)"
    );
}

#[test]
fn run_refers_to_undeclared_disk() {
    let text = VALID.replace(
        "test -b $DISK_data",
        "test -b $DISK_dat && cat ${DISK_cows}",
    );
    assert_eq!(
        errors(&text),
        [
            "scenarios/t.yaml:12:5: steps[1].run: $DISK_dat refers to disk \"dat\", which is \
             not declared in disks (declared: data, cow)",
            "scenarios/t.yaml:12:5: steps[1].run: ${DISK_cows} refers to disk \"cows\", which \
             is not declared in disks (declared: data, cow)",
        ]
    );
    // Using a disk after it was unplugged is legitimate: the variable keeps the old path.
    assert!(load_str(VALID, Path::new(FILE), &KERNELS).is_ok());
}

#[test]
fn unknown_kernel() {
    let text = VALID.replace("kernels: all", "kernels: [\"6.1\", \"6.2\"]");
    assert_eq!(
        only_error(&text),
        "scenarios/t.yaml:3:18: kernels[1]: kernel \"6.2\" is not in the matrix (known: 5.10, \
         6.1, 6.12, 7.2, 6.12-debug)"
    );
    let text = VALID.replace("kernels: all", "kernels: []");
    assert_eq!(kinds(&text), [ErrorKind::UnknownKernel]);
}

#[test]
fn empty_steps() {
    let text = VALID.split("steps:").next().unwrap().to_string() + "steps: []\n";
    assert_eq!(
        only_error(&text),
        "scenarios/t.yaml:10:1: steps: a scenario needs at least one step"
    );
}

#[test]
fn step_shapes() {
    let text = VALID.replace("  - unplug: data\n", "  - unplug: data\n    run: ls\n");
    assert_eq!(
        only_error(&text),
        "scenarios/t.yaml:13:5: steps[2]: a step has exactly one action, but this one \
         has run and unplug"
    );
    let text = VALID.replace("  - unplug: data\n", "  - timeout: 3s\n");
    assert_eq!(
        only_error(&text),
        "scenarios/t.yaml:13:5: steps[2]: a step needs one action key: one of run, unplug, fio"
    );
    let text = VALID.replace("  - unplug: data\n", "  - unplug: data\n    timeout: 3s\n");
    assert_eq!(
        only_error(&text),
        "scenarios/t.yaml:14:5: steps[2].timeout: `timeout` belongs to run steps, not to unplug"
    );
    let text = VALID.replace("{exit: 0}", "{exit: 300}");
    assert_eq!(kinds(&text), [ErrorKind::ExitStatus]);
}

#[test]
fn double_unplug() {
    let text = VALID.replace("  - unplug: data\n", "  - unplug: data\n  - unplug: data\n");
    assert_eq!(
        only_error(&text),
        "scenarios/t.yaml:14:5: steps[3].unplug: disk \"data\" was already unplugged at line 13"
    );
}

#[test]
fn every_semantic_error_of_a_file_is_reported() {
    let text = VALID
        .replace("kernels: all", "kernels: [\"9.9\"]")
        .replace("name: cow", "name: data")
        .replace("  - unplug: data", "  - unplug: nope");
    assert_eq!(
        kinds(&text),
        [
            ErrorKind::UnknownKernel,
            ErrorKind::DuplicateDisk,
            ErrorKind::UndeclaredDisk
        ]
    );
}

#[test]
fn syntax_errors_have_a_location() {
    let all = errors("name: t\nsteps:\n  - run: [oops\n");
    assert_eq!(all.len(), 1);
    assert!(all[0].starts_with("scenarios/t.yaml:"), "{all:?}");
    let all = errors("- a\n- b\n");
    assert_eq!(
        all,
        ["scenarios/t.yaml:1:1: (document): invalid type: sequence, expected a scenario: a mapping with name, steps and optional description, kernels, timeout, requires, disks, cleanup"]
    );
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn load_dir_reports_all_errors_of_all_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "b_bad.yaml",
        &VALID
            .replace("name: t", "name: b")
            .replace("bus: nvme", "bus: ide"),
    );
    write(
        d,
        "a_bad.yaml",
        &VALID
            .replace("name: t", "name: a")
            .replace("unplug: data", "unplug: dta")
            .replace("kernels: all", "kernels: [\"4.19\"]"),
    );
    write(d, "c_good.yaml", VALID);
    write(d, "d_dup.yaml", VALID);
    write(d, "notes.txt", "not a scenario");
    write(d, "e.yml", "ignored: only .yaml files are scenarios");
    std::fs::create_dir(d.join("sub")).unwrap();
    write(&d.join("sub"), "deep.yaml", "not: [read");

    let err = load_dir(d, &KERNELS).unwrap_err();
    let lines: Vec<String> = err
        .diagnostics()
        .map(|e| {
            format!(
                "{}:{}: {:?}",
                e.file.file_name().unwrap().to_string_lossy(),
                e.location,
                e.kind
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            "a_bad.yaml:3:11: UnknownKernel",
            "a_bad.yaml:13:5: UndeclaredDisk",
            "b_bad.yaml:9:10: Parse",
            "d_dup.yaml:1:1: DuplicateScenario",
        ]
    );
    assert!(err.to_string().contains("already used by"), "{err}");
    assert_eq!(err.to_string().lines().count(), 4);

    std::fs::remove_file(d.join("a_bad.yaml")).unwrap();
    std::fs::remove_file(d.join("b_bad.yaml")).unwrap();
    std::fs::remove_file(d.join("d_dup.yaml")).unwrap();
    let loaded = load_dir(d, &KERNELS).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].source, d.join("c_good.yaml"));
}

#[test]
fn unreadable_file_is_an_error_not_a_panic() {
    let err = load(Path::new("/nonexistent/x.yaml"), &KERNELS).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("/nonexistent/x.yaml: cannot read"),
        "{err}"
    );
}

/// The scenarios shipped in the repository must stay valid.
#[test]
fn repository_scenarios_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
    let scenarios = load_dir(&dir, &KERNELS).unwrap_or_else(|e| panic!("{e}"));
    let smoke = scenarios
        .iter()
        .find(|s| s.name == "smoke")
        .expect("smoke.yaml");
    let names: Vec<&str> = smoke.disks().iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["data", "spare", "fast"]);
    assert!(KERNELS.iter().all(|k| smoke.applies_to(k)));
    let actions: Vec<String> = smoke.steps().iter().map(|s| s.action.describe()).collect();
    assert!(
        actions.contains(&"modprobe bdsnap".to_string()),
        "{actions:?}"
    );
    assert!(actions.contains(&"unplug data".to_string()), "{actions:?}");
    assert!(actions.contains(&"rmmod bdsnap".to_string()), "{actions:?}");
    let selftests = load_dir(&dir.join("selftest"), &KERNELS).unwrap_or_else(|e| panic!("{e}"));
    assert!(selftests.len() >= 2);
    assert!(selftests.iter().all(|s| s.expect_failure.is_some()));
}

/// VALID with a fio step in place of the unplug (line 13).
fn with_fio(job: &str) -> String {
    VALID.replace("  - unplug: data\n", &format!("  - fio: {job}\n"))
}

const FIO: &str = "{name: qd1, rw: randrw, bs: 4k, size: 64MiB, filename: \"$DISK_data\", \
                   iodepth: 32, runtime: 5s, time_based: true, rwmixread: 70}";

#[test]
fn fio_step_loads_with_defaults() {
    let s = load_str(&with_fio(FIO), Path::new(FILE), &KERNELS).unwrap();
    let Action::Fio(fio) = &s.steps[2].action else {
        panic!("{:?}", s.steps[2].action)
    };
    let job = &fio.job;
    assert_eq!(
        (job.rw, job.bs, job.size, job.iodepth, job.rwmixread),
        (RwMode::RandRw, 4096, 64 << 20, 32, Some(70))
    );
    assert_eq!(job.runtime, Some(Duration::from_secs(5)));
    assert!(job.time_based && job.direct);
    assert_eq!((job.ioengine.as_str(), job.numjobs), ("libaio", 1));
    assert_eq!(s.steps[2].action.kind(), "fio");
    assert!(s.steps[2]
        .action
        .describe()
        .starts_with("fio --output-format=json+ --lat_percentiles=1 --name=qd1 "));
    // 5 s of runtime: twice that plus a minute is still below the 120 s default.
    assert_eq!(fio.timeout(), Duration::from_secs(120));

    let minimal = with_fio("{name: r, rw: read, bs: 1MiB, size: 1m, filename: /dev/vdb}");
    let s = load_str(&minimal, Path::new(FILE), &KERNELS).unwrap();
    let Action::Fio(fio) = &s.steps[2].action else {
        panic!()
    };
    assert_eq!((fio.job.iodepth, fio.job.runtime), (1, None));
}

#[test]
fn fio_step_round_trips() {
    let text = with_fio(FIO).replace(
        "  - fio: {",
        "  - timeout: 90s\n    fio: {ramp_time: 1500ms, direct: false, numjobs: 2, ioengine: psync, ",
    );
    let first = load_str(&text, Path::new(FILE), &KERNELS).unwrap();
    let yaml = first.to_yaml().unwrap();
    let second = load_str(&yaml, Path::new(FILE), &KERNELS).unwrap();
    let (Action::Fio(a), Action::Fio(b)) = (&first.steps[2].action, &second.steps[2].action) else {
        panic!("{yaml}")
    };
    assert_eq!(a, b, "{yaml}");
    assert_eq!(b.timeout, Some(Duration::from_secs(90)));
    assert_eq!(b.job.ramp_time, Some(Duration::from_millis(1500)));
    assert!(!b.job.direct);
}

#[test]
fn fio_mistakes_name_file_line_and_field() {
    assert_eq!(
        only_error(&with_fio(&FIO.replace("randrw", "randrwx"))),
        "scenarios/t.yaml:13:22: steps[2].fio.rw: rw \"randrwx\" is not a fio mode (one of read, \
         write, randread, randwrite, rw, readwrite, randrw, trim, randtrim, trimwrite)"
    );
    assert_eq!(
        only_error(&with_fio(&FIO.replace("rw: randrw", "rw: randwrite"))),
        "scenarios/t.yaml:13:126: steps[2].fio.rwmixread: rwmixread applies to mixed jobs (rw or \
         randrw), not to randwrite"
    );
    assert_eq!(
        only_error(&with_fio(&FIO.replace("rwmixread: 70", "rwmixread: 170"))),
        "scenarios/t.yaml:13:123: steps[2].fio.rwmixread: rwmixread 170 is not a percentage (0..100)"
    );
    assert_eq!(
        only_error(&with_fio(&FIO.replace("$DISK_data", "$DISK_nope"))),
        "scenarios/t.yaml:13:55: steps[2].fio.filename: $DISK_nope refers to disk \"nope\", which \
         is not declared in disks (declared: data, cow)"
    );
    assert_eq!(
        kinds(&with_fio(
            &FIO.replace("iodepth: 32", "iodepth: 0")
                .replace("size: 64MiB", "size: 2k")
        )),
        [ErrorKind::FioJob, ErrorKind::FioJob]
    );
    let all = errors(&with_fio(&FIO.replace("bs: 4k", "bs: 4KB")));
    assert_eq!(all.len(), 1, "{all:?}");
    assert!(all[0].starts_with("scenarios/t.yaml:13:"), "{all:?}");
    assert!(all[0].contains("binary units"), "{all:?}");
    let all = errors(&with_fio(&FIO.replace("iodepth", "queue_depth")));
    assert!(
        all[0].contains("steps[2].fio.queue_depth") && all[0].contains("unknown field"),
        "{all:?}"
    );
    assert!(errors(&with_fio(&FIO.replace("name: qd1, ", "")))[0].contains("fio.name"));
    assert_eq!(
        only_error(&with_fio(FIO).replace("  - fio:", "  - expect: {exit: 0}\n    fio:")),
        "scenarios/t.yaml:13:5: steps[2].expect: `expect` belongs to run steps; a fio step \
         passes when fio exits 0 with a report and no job error"
    );
    assert_eq!(
        only_error(&with_fio(FIO).replace("  - fio:", "  - run: ls\n    fio:")),
        "scenarios/t.yaml:13:5: steps[2]: a step has exactly one action, but this one has run \
         and fio"
    );
}

#[test]
fn cleanup_steps_load_with_positions_and_round_trip() {
    let text = "\
name: tidy
disks:
  - {name: data, size: 64MiB}
steps:
  - unplug: data
cleanup:
  - run: echo \"$DISK_data\"
  - unplug: data
";
    let sc = load_str(text, Path::new("tidy.yaml"), &["6.1"]).unwrap();
    assert_eq!(sc.cleanup.len(), 2);
    assert_eq!(sc.cleanup[0].location.line, 7);
    // A disk a step unplugged may still be there when cleanup runs after an earlier failure.
    let again = load_str(&sc.to_yaml().unwrap(), Path::new("again.yaml"), &["6.1"]).unwrap();
    assert_eq!(again.cleanup.len(), 2);

    let bad = "\
name: tidy
steps:
  - run: true
cleanup:
  - run: cat \"$DISK_nope\"
  - {run: true, unplug: x}
";
    let err = load_str(bad, Path::new("bad.yaml"), &["6.1"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("bad.yaml:5"), "{err}");
    assert!(err.contains("bad.yaml:6"), "{err}");
}

#[test]
fn requirements_load_and_bad_ones_are_located() {
    let text = "\
name: needs
requires:
  kernel: \">=5.15, <7\"
  config: [CONFIG_BLK_DEV_ZONED, XFS_FS]
  programs: [mkfs.xfs]
  modules: [null_blk]
steps:
  - run: true
";
    let sc = load_str(text, Path::new("needs.yaml"), &["6.1"]).unwrap();
    assert_eq!(sc.requires.config, ["BLK_DEV_ZONED", "XFS_FS"]);
    assert_eq!(sc.requires.programs, ["mkfs.xfs"]);
    assert_eq!(sc.requires.modules, ["null_blk"]);
    assert_eq!(
        sc.requires
            .unmet_on_host("7.2.13+deb14-cloud-amd64", &Default::default()),
        Some(
            "requires: kernel 7.2.13 is not >=5.15, <7; kernel config lacks \
             CONFIG_BLK_DEV_ZONED, CONFIG_XFS_FS"
                .to_string()
        )
    );
    let again = load_str(&sc.to_yaml().unwrap(), Path::new("again.yaml"), &["6.1"]).unwrap();
    assert_eq!(again.requires, sc.requires);

    let bad = "\
name: needs
requires:
  kernel: \"~6.1\"
  config: [xfs]
  programs: [\"mkfs.xfs; reboot\"]
  cpus: 4
steps:
  - run: true
";
    let err = load_str(bad, Path::new("bad.yaml"), &["6.1"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("bad.yaml:6") && err.contains("cpus"), "{err}");
    let bad = bad.replace("  cpus: 4\n", "");
    let err = load_str(&bad, Path::new("bad.yaml"), &["6.1"])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bad.yaml:3:3: requires.kernel: kernel range"),
        "{err}"
    );
    assert!(err.contains("bad.yaml:4:12: requires.config[0]"), "{err}");
    assert!(err.contains("bad.yaml:5:14: requires.programs[0]"), "{err}");
}

#[test]
fn capture_names_are_shell_variables_on_run_steps() {
    let bad = "\
name: capture
disks:
  - {name: data, size: 64MiB}
steps:
  - run: echo x
    capture: 2bad
  - run: echo y
    capture: DISK_data
  - unplug: data
    capture: X
";
    let err = load_str(bad, Path::new("c.yaml"), &["6.1"])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("c.yaml:6") && err.contains("\"2bad\""),
        "{err}"
    );
    assert!(
        err.contains("c.yaml:8") && err.contains("\"DISK_data\""),
        "{err}"
    );
    assert!(
        err.contains("c.yaml:10") && err.contains("belongs to run steps"),
        "{err}"
    );
    let good = "name: c\nsteps:\n  - {run: echo, capture: _ID2}\n";
    let sc = load_str(good, Path::new("c.yaml"), &["6.1"]).unwrap();
    let again = load_str(&sc.to_yaml().unwrap(), Path::new("c.yaml"), &["6.1"]).unwrap();
    assert_eq!(again.steps[0].action, sc.steps[0].action);
}
