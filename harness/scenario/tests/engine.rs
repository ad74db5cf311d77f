//! The engine against a scripted fake guest: verdicts, skipping, records, timeouts, env.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use bdsnap_scenario::{load_str, run, ExecResult, Guest, GuestError, Partial, Scenario, Verdict};

/// Answers commands from a script and records every call, so tests can check what the
/// engine asked for as well as what it concluded.
#[derive(Default)]
struct FakeGuest {
    replies: HashMap<String, Result<ExecResult, GuestError>>,
    unplug_error: Option<GuestError>,
    calls: Vec<String>,
    envs: Vec<Vec<(String, String)>>,
    timeouts: Vec<Duration>,
}

impl FakeGuest {
    fn reply(mut self, command: &str, exit: i32, stdout: &str, stderr: &str) -> Self {
        self.replies.insert(
            command.to_string(),
            Ok(ExecResult {
                stdout: stdout.to_string(),
                stderr: stderr.to_string(),
                exit,
                duration: Duration::from_millis(7),
            }),
        );
        self
    }

    fn fail(mut self, command: &str, err: GuestError) -> Self {
        self.replies.insert(command.to_string(), Err(err));
        self
    }
}

impl Guest for FakeGuest {
    fn exec(
        &mut self,
        command: &str,
        env: &[(String, String)],
        timeout: Duration,
    ) -> Result<ExecResult, GuestError> {
        self.calls.push(command.to_string());
        self.envs.push(env.to_vec());
        self.timeouts.push(timeout);
        self.replies.get(command).cloned().unwrap_or(Ok(ExecResult {
            stdout: String::new(),
            stderr: String::new(),
            exit: 0,
            duration: Duration::from_millis(1),
        }))
    }

    fn unplug(&mut self, name: &str) -> Result<(), GuestError> {
        self.calls.push(format!("unplug {name}"));
        match &self.unplug_error {
            Some(err) => Err(err.clone()),
            None => Ok(()),
        }
    }
}

const SCENARIO: &str = "\
name: engine
timeout: 10m
disks:
  - {name: data, size: 1MiB}
steps:
  - run: modprobe bdsnap
  - run: grep -c '^bdsnap ' /proc/modules
    expect: {stdout: \"1\"}
    timeout: 10s
  - unplug: data
  - run: dmesg
    expect: {exit: any, stdout_contains: \"bdsnap: version\", stderr_contains: warn}
  - run: rmmod bdsnap
";

fn scenario() -> Scenario {
    load_str(SCENARIO, Path::new("engine.yaml"), &["6.1"]).unwrap()
}

fn disk_env() -> Vec<(String, String)> {
    vec![("data".to_string(), "/dev/vdb".to_string())]
}

fn verdicts(outcome: &bdsnap_scenario::ScenarioOutcome) -> Vec<Verdict> {
    outcome.steps.iter().map(|s| s.verdict.clone()).collect()
}

#[test]
fn all_steps_pass() {
    let mut guest = FakeGuest::default()
        .reply("grep -c '^bdsnap ' /proc/modules", 0, "1\n", "")
        .reply("dmesg", 3, "[ 1.0] bdsnap: version 0.1\n", "warning: x\n");
    let outcome = run(&scenario(), &mut guest, &disk_env(), 1.0);
    assert!(outcome.passed(), "{outcome:#?}");
    assert_eq!(outcome.scenario, "engine");
    assert_eq!(
        guest.calls,
        [
            "modprobe bdsnap",
            "grep -c '^bdsnap ' /proc/modules",
            "unplug data",
            "dmesg",
            "rmmod bdsnap"
        ]
    );
    let shape: Vec<(usize, usize, &str, &str, Option<i32>)> = outcome
        .steps
        .iter()
        .map(|s| (s.index, s.line, s.kind.as_str(), s.action.as_str(), s.exit))
        .collect();
    assert_eq!(
        shape,
        [
            (1, 6, "run", "modprobe bdsnap", Some(0)),
            (2, 7, "run", "grep -c '^bdsnap ' /proc/modules", Some(0)),
            (3, 10, "unplug", "unplug data", None),
            (4, 11, "run", "dmesg", Some(3)),
            (5, 13, "run", "rmmod bdsnap", Some(0)),
        ]
    );
    assert_eq!(outcome.steps[1].stdout, "1\n");
    assert_eq!(outcome.steps[3].stderr, "warning: x\n");
    assert_eq!(outcome.steps[1].duration_ms, 7);
    // Every command sees the disk's node under $DISK_<name>.
    assert!(guest
        .envs
        .iter()
        .all(|env| env == &[("DISK_data".to_string(), "/dev/vdb".to_string())]));
}

#[test]
fn wrong_exit_fails_and_skips_the_rest() {
    let mut guest = FakeGuest::default().reply("modprobe bdsnap", 1, "", "modprobe: FATAL\n");
    let outcome = run(&scenario(), &mut guest, &disk_env(), 1.0);
    assert_eq!(
        verdicts(&outcome),
        [
            Verdict::Fail("exit status 1, expected 0".to_string()),
            Verdict::Skipped,
            Verdict::Skipped,
            Verdict::Skipped,
            Verdict::Skipped,
        ]
    );
    assert_eq!(
        guest.calls,
        ["modprobe bdsnap"],
        "nothing runs after a failure"
    );
    assert_eq!(outcome.first_failure().unwrap().line, 6);
    assert_eq!(outcome.steps[0].stderr, "modprobe: FATAL\n");
    assert_eq!(outcome.steps[4].line, 13, "skipped steps keep their line");
}

#[test]
fn stdout_mismatch_fails() {
    let mut guest = FakeGuest::default().reply("grep -c '^bdsnap ' /proc/modules", 0, "0\n", "");
    let outcome = run(&scenario(), &mut guest, &disk_env(), 1.0);
    assert_eq!(
        outcome.steps[1].verdict,
        Verdict::Fail("stdout was \"0\", expected \"1\"".to_string())
    );
    assert_eq!(outcome.steps[2].verdict, Verdict::Skipped);
}

#[test]
fn contains_checks_report_every_mismatch() {
    let mut guest = FakeGuest::default()
        .reply("grep -c '^bdsnap ' /proc/modules", 0, "1", "")
        .reply("dmesg", 0, "nothing here", "");
    let outcome = run(&scenario(), &mut guest, &disk_env(), 1.0);
    assert_eq!(
        outcome.steps[3].verdict,
        Verdict::Fail(
            "stdout does not contain \"bdsnap: version\"; stderr does not contain \"warn\""
                .to_string()
        )
    );
}

#[test]
fn transport_error_fails_the_step() {
    let mut guest = FakeGuest::default()
        .reply("grep -c '^bdsnap ' /proc/modules", 0, "1", "")
        .reply("dmesg", 0, "bdsnap: version", "warn")
        .fail(
            "rmmod bdsnap",
            GuestError::Transport("ssh: connection reset".into()),
        );
    let outcome = run(&scenario(), &mut guest, &disk_env(), 1.0);
    assert_eq!(
        outcome.steps[4].verdict,
        Verdict::Fail("guest: ssh: connection reset".to_string())
    );
    assert_eq!(outcome.steps[4].exit, None);
    assert!(!outcome.passed());

    let mut guest = FakeGuest::default().fail(
        "modprobe bdsnap",
        GuestError::timeout(Duration::from_secs(240)),
    );
    let outcome = run(&scenario(), &mut guest, &disk_env(), 1.0);
    assert_eq!(
        outcome.steps[0].verdict,
        Verdict::Fail("guest: timed out after 240s".to_string())
    );
}

#[test]
fn a_timed_out_step_keeps_its_output_and_says_how_it_ended() {
    let partial = Partial {
        stdout: "round 1\nround 2\n".into(),
        stderr: "slow\n".into(),
        ended: Some("its 3 processes were killed".into()),
    };
    let mut guest = FakeGuest::default().fail(
        "modprobe bdsnap",
        GuestError::Timeout {
            after: Duration::from_secs(240),
            partial,
        },
    );
    let outcome = run(&scenario(), &mut guest, &disk_env(), 1.0);
    let step = &outcome.steps[0];
    assert_eq!(
        step.verdict,
        Verdict::Fail("guest: timed out after 240s (its 3 processes were killed)".to_string())
    );
    assert_eq!(step.stdout, "round 1\nround 2\n");
    assert_eq!(step.stderr, "slow\n");
    assert_eq!(step.duration_ms, 240_000);
    assert_eq!(step.exit, None);
    assert!(outcome.steps[1..]
        .iter()
        .all(|s| s.verdict == Verdict::Skipped));
}

#[test]
fn unplug_failure_fails_and_skips() {
    let mut guest = FakeGuest::default().reply("grep -c '^bdsnap ' /proc/modules", 0, "1", "");
    guest.unplug_error = Some(GuestError::Transport("no DEVICE_DELETED within 30s".into()));
    let outcome = run(&scenario(), &mut guest, &disk_env(), 1.0);
    assert_eq!(
        verdicts(&outcome)[2..],
        [
            Verdict::Fail("unplug failed: no DEVICE_DELETED within 30s".to_string()),
            Verdict::Skipped,
            Verdict::Skipped,
        ]
    );
    assert_eq!(guest.calls.last().map(String::as_str), Some("unplug data"));
}

#[test]
fn timeouts_are_scaled_and_capped_by_the_scenario_budget() {
    let mut guest = FakeGuest::default()
        .reply("grep -c '^bdsnap ' /proc/modules", 0, "1", "")
        .reply("dmesg", 0, "bdsnap: version", "warn");
    run(&scenario(), &mut guest, &disk_env(), 3.0);
    // Default 120 s and the step's own 10 s, both tripled.
    assert_eq!(guest.timeouts[0], Duration::from_secs(360));
    assert_eq!(guest.timeouts[1], Duration::from_secs(30));

    let tight = SCENARIO.replace("timeout: 10m", "timeout: 20s");
    let tight = load_str(&tight, Path::new("engine.yaml"), &["6.1"]).unwrap();
    let mut guest = FakeGuest::default();
    run(&tight, &mut guest, &disk_env(), 2.0);
    // The scenario's 20 s (x2) leaves at most 40 s for any step.
    assert!(
        guest.timeouts[0] <= Duration::from_secs(40),
        "{:?}",
        guest.timeouts
    );
    assert!(
        guest.timeouts[0] > Duration::from_secs(39),
        "{:?}",
        guest.timeouts
    );
}

#[test]
fn missing_disk_node_fails_before_running_anything() {
    let mut guest = FakeGuest::default();
    let outcome = run(&scenario(), &mut guest, &[], 1.0);
    assert_eq!(
        outcome.steps[0].verdict,
        Verdict::Fail("the harness gave no device node for disk(s): data".to_string())
    );
    assert!(guest.calls.is_empty());
    assert_eq!(outcome.steps.len(), 5);
}

const FIO_SCENARIO: &str = "\
name: fio
disks:
  - {name: data, size: 64MiB}
steps:
  - fio: {name: randwrite-qd1, rw: randwrite, bs: 4k, size: 16MiB, filename: \"$DISK_data\", runtime: 100s}
  - run: echo after
";

fn fio_fixture() -> String {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../fio/tests/fixtures/randwrite-qd1.json");
    std::fs::read_to_string(path).unwrap()
}

fn fio_scenario() -> (Scenario, String) {
    let sc = load_str(FIO_SCENARIO, Path::new("fio.yaml"), &["6.1"]).unwrap();
    let bdsnap_scenario::Action::Fio(fio) = &sc.steps[0].action else {
        panic!()
    };
    let command = fio.job.command();
    (sc, command)
}

#[test]
fn fio_step_keeps_the_report_and_its_figures() {
    let (sc, command) = fio_scenario();
    assert!(command.contains("--filename=\"$DISK_data\""), "{command}");
    let mut guest = FakeGuest::default().reply(&command, 0, &fio_fixture(), "");
    let outcome = run(&sc, &mut guest, &disk_env(), 2.0);
    assert!(outcome.passed(), "{outcome:#?}");
    let step = &outcome.steps[0];
    assert_eq!(step.kind, "fio");
    assert_eq!(step.action, command);
    assert!(step.stdout.contains("\"fio version\""));
    assert_eq!(step.fio.len(), 1);
    assert_eq!(step.fio[0].name, "randwrite-qd1");
    assert!(step.fio[0].write.as_ref().is_some_and(|w| w.iops > 0.0));
    // 100 s of runtime: twice that plus a minute, doubled by the scale.
    assert_eq!(guest.timeouts[0], Duration::from_secs(520));
    assert_eq!(guest.calls[1], "echo after");
}

#[test]
fn fio_failures_fail_the_step() {
    let (sc, command) = fio_scenario();
    let mut guest =
        FakeGuest::default().reply(&command, 1, "", "fio: file:filesetup.c: no such file\n");
    let outcome = run(&sc, &mut guest, &disk_env(), 1.0);
    assert_eq!(
        outcome.steps[0].verdict,
        Verdict::Fail("fio exited with status 1: fio: file:filesetup.c: no such file".into())
    );
    assert_eq!(outcome.steps[1].verdict, Verdict::Skipped);

    let mut guest = FakeGuest::default().reply(&command, 0, "{\"jobs\": [", "");
    let outcome = run(&sc, &mut guest, &disk_env(), 1.0);
    let Verdict::Fail(why) = &outcome.steps[0].verdict else {
        panic!("{outcome:#?}")
    };
    assert!(why.starts_with("step 1 (fio randwrite-qd1):1:"), "{why}");

    let failed = fio_fixture().replacen("\"error\" : 0", "\"error\" : 5", 1);
    assert_ne!(failed, fio_fixture(), "the fixture's error field moved");
    let mut guest = FakeGuest::default().reply(&command, 0, &failed, "");
    let outcome = run(&sc, &mut guest, &disk_env(), 1.0);
    assert_eq!(
        outcome.steps[0].verdict,
        Verdict::Fail("fio reported errors: job randwrite-qd1: error 5".into())
    );
}

const WITH_CLEANUP: &str = "\
name: tidy
timeout: 1m
disks:
  - {name: data, size: 64MiB}
steps:
  - run: mount \"$DISK_data\" /mnt
  - run: make-a-mess
  - run: never-reached
cleanup:
  - run: umount /mnt
  - run: rmmod bdsnap
";

fn tidy() -> Scenario {
    load_str(WITH_CLEANUP, Path::new("tidy.yaml"), &["6.1"]).unwrap()
}

#[test]
fn cleanup_runs_after_a_failure_every_step_of_it() {
    let mut guest = FakeGuest::default()
        .reply("make-a-mess", 1, "", "no")
        .reply("umount /mnt", 32, "", "not mounted");
    let outcome = run(&tidy(), &mut guest, &disk_env(), 1.0);
    assert_eq!(
        guest.calls,
        [
            "mount \"$DISK_data\" /mnt",
            "make-a-mess",
            "umount /mnt",
            "rmmod bdsnap"
        ]
    );
    assert_eq!(verdicts(&outcome)[2], Verdict::Skipped);
    let cleanup: Vec<(usize, usize, Verdict)> = outcome
        .cleanup
        .iter()
        .map(|s| (s.index, s.line, s.verdict.clone()))
        .collect();
    assert_eq!(
        cleanup,
        [
            (1, 10, Verdict::Fail("exit status 32, expected 0".into())),
            (2, 11, Verdict::Pass),
        ]
    );
    // The steps' first failure stays the steps' own; the cleanup's is apart.
    assert_eq!(outcome.first_failure().map(|s| s.index), Some(2));
    assert_eq!(outcome.first_cleanup_failure().map(|s| s.index), Some(1));
    assert!(!outcome.passed());
    // Cleanup sees the disks too.
    assert_eq!(
        guest.envs[2],
        [("DISK_data".to_string(), "/dev/vdb".to_string())]
    );
}

#[test]
fn cleanup_runs_after_a_timeout_and_a_passing_run_needs_it_to_pass() {
    let mut guest =
        FakeGuest::default().fail("make-a-mess", GuestError::timeout(Duration::from_secs(60)));
    let outcome = run(&tidy(), &mut guest, &disk_env(), 1.0);
    assert_eq!(guest.calls[2..], ["umount /mnt", "rmmod bdsnap"]);
    assert!(outcome.cleanup.iter().all(|s| s.verdict == Verdict::Pass));
    // Its own timeout, not what is left of the scenario's budget.
    assert_eq!(guest.timeouts[2], Duration::from_secs(120));

    let mut guest = FakeGuest::default().reply("rmmod bdsnap", 1, "", "in use");
    let outcome = run(&tidy(), &mut guest, &disk_env(), 1.0);
    assert!(outcome.first_failure().is_none());
    assert!(!outcome.passed(), "a failed cleanup fails the outcome");
}

#[test]
fn a_captured_output_reaches_later_steps_and_the_cleanup() {
    let text = "\
name: capture
steps:
  - run: bdsnapctl snapshot create
    capture: SNAP
  - run: bdsnapctl snapshot take \"$SNAP\"
  - run: echo again
    capture: SNAP
  - run: use-it
cleanup:
  - run: bdsnapctl snapshot destroy \"$SNAP\"
";
    let sc = load_str(text, Path::new("capture.yaml"), &["6.1"]).unwrap();
    let mut guest = FakeGuest::default()
        .reply("bdsnapctl snapshot create", 0, "  7f3a\n", "")
        .reply("echo again", 0, "second\n", "");
    let outcome = run(&sc, &mut guest, &[], 1.0);
    assert!(outcome.passed(), "{outcome:#?}");
    let snap = |i: usize| {
        guest.envs[i]
            .iter()
            .find(|(n, _)| n == "SNAP")
            .map(|(_, v)| v.clone())
    };
    assert_eq!(snap(0), None);
    assert_eq!(snap(1).as_deref(), Some("7f3a"));
    assert_eq!(snap(3).as_deref(), Some("second"));
    assert_eq!(snap(4).as_deref(), Some("second"));
    assert_eq!(guest.envs[3].iter().filter(|(n, _)| n == "SNAP").count(), 1);

    // A failed step captures nothing.
    let mut guest = FakeGuest::default().reply("bdsnapctl snapshot create", 1, "junk", "");
    run(&sc, &mut guest, &[], 1.0);
    assert_eq!(guest.calls.len(), 2, "{:?}", guest.calls);
    assert!(guest.envs[1].iter().all(|(n, _)| n != "SNAP"));
}
