//! The writers, read back the way their consumers read them: JUnit through an XML parser,
//! KTAP through a small structural checker, JSON through serde.

use bdsnap_report::{
    render_junit, render_ktap, render_terminal_summary, write_case_dir, write_junit, write_ktap,
    write_summary_json, CaseResult, Finding, KernelInfo, Marker, RunSummary,
};
use bdsnap_scenario::{ScenarioOutcome, StepRecord, Verdict};
use quick_xml::events::Event;
use quick_xml::Reader;
use std::collections::BTreeMap;

fn step(index: usize, action: &str, exit: i32, verdict: Verdict) -> StepRecord {
    StepRecord {
        index,
        line: 4 + index,
        kind: "run".into(),
        action: action.into(),
        stdout: format!("out of {action}\n"),
        stderr: String::new(),
        exit: Some(exit),
        duration_ms: 100 * index as u64,
        verdict,
        fio: Vec::new(),
    }
}

fn case(kernel: &str, scenario: &str, steps: Vec<StepRecord>) -> CaseResult {
    CaseResult {
        skipped: None,
        expected_failure: None,
        kernel: kernel.into(),
        scenario: scenario.into(),
        scenario_file: format!("scenarios/{scenario}.yaml"),
        outcome: Some(ScenarioOutcome {
            scenario: scenario.into(),
            steps,
            cleanup: Vec::new(),
        }),
        findings: vec![],
        error: None,
        duration_ms: 1500,
    }
}

fn kernel(name: &str, suite: &str, release: &str, version: &str) -> KernelInfo {
    KernelInfo {
        packages: vec![format!("linux-image-{release}={version}")],
        name: name.into(),
        suite: suite.into(),
        release: release.into(),
        package_version: version.into(),
        compiler: "gcc-12 (Debian 12.2.0-14) 12.2.0".into(),
        source: None,
        config_fragments: Vec::new(),
        extra_cmdline: String::new(),
    }
}

/// Two kernels; on 6.1 one case passes and one fails a step whose output needs escaping;
/// on 6.12 one case oopses with every step passing and one could not boot.
fn summary() -> RunSummary {
    let pass = case(
        "6.1",
        "basic",
        vec![step(1, "modprobe bdsnap", 0, Verdict::Pass)],
    );
    let mut nasty = step(
        2,
        "echo '<a href=\"x\">' && cat /dev/x",
        3,
        Verdict::Fail("exit 3, expected 0".into()),
    );
    nasty.stdout = "less < more & \"quoted\" 'single' ]]> bell\u{7} nul\u{0} end".into();
    nasty.stderr = "cat: /dev/x: No such device\n".into();
    let step_fail = case(
        "6.1",
        "escape<&>",
        vec![
            step(1, "true", 0, Verdict::Pass),
            nasty,
            step(3, "never", 0, Verdict::Skipped),
        ],
    );
    let mut oops = case(
        "6.12",
        "unplug",
        vec![step(1, "unplug data", 0, Verdict::Pass)],
    );
    oops.findings.push(Finding {
        line: 812,
        marker: Marker::Oops,
        text: "[   81.000001] Oops: 0000 [#1] PREEMPT SMP NOPTI".into(),
    });
    let mut boot = case("6.12", "basic", vec![]);
    boot.outcome = None;
    boot.error = Some("boot failed: no login prompt after 300 s".into());
    RunSummary {
        run_id: "20250101-000000".into(),
        started_unix: 1_735_689_600,
        accel: "tcg".into(),
        host: "builder".into(),
        boot_options: vec!["slub_debug=FZP".into(), "kfence.sample_interval=100".into()],
        kernels: vec![
            kernel("6.1", "bookworm", "6.1.0-56-cloud-amd64", "6.1.192-2"),
            kernel("6.12", "trixie", "6.12.48+deb13-cloud-amd64", "6.12.48-1"),
        ],
        cases: vec![pass, step_fail, oops, boot],
        duration_ms: 61_234,
    }
}

/// A parsed XML element: name, attributes, text and children.
#[derive(Debug, Default)]
struct Element {
    name: String,
    attrs: BTreeMap<String, String>,
    text: String,
    children: Vec<Element>,
}

impl Element {
    fn all(&self, name: &str) -> Vec<&Element> {
        self.children.iter().filter(|c| c.name == name).collect()
    }
    fn attr(&self, name: &str) -> &str {
        self.attrs
            .get(name)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("<{}> has no attribute {name}: {:?}", self.name, self.attrs))
    }
}

fn parse_xml(xml: &str) -> Element {
    let mut reader = Reader::from_str(xml);
    let mut stack = vec![Element::default()];
    loop {
        match reader.read_event().expect("well-formed XML") {
            Event::Start(start) => stack.push(element(&start)),
            Event::Empty(start) => {
                let e = element(&start);
                stack.last_mut().unwrap().children.push(e);
            }
            Event::End(_) => {
                let done = stack.pop().unwrap();
                stack.last_mut().unwrap().children.push(done);
            }
            Event::Text(text) => {
                let t = text.unescape().expect("valid escapes");
                stack.last_mut().unwrap().text.push_str(&t);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(stack.len(), 1, "unclosed elements");
    let mut root = stack.pop().unwrap();
    assert_eq!(root.children.len(), 1, "exactly one root element");
    root.children.pop().unwrap()
}

fn element(start: &quick_xml::events::BytesStart) -> Element {
    let mut e = Element {
        name: String::from_utf8(start.name().as_ref().to_vec()).unwrap(),
        ..Element::default()
    };
    for attr in start.attributes() {
        let attr = attr.expect("valid attribute");
        let key = String::from_utf8(attr.key.as_ref().to_vec()).unwrap();
        let value = attr.unescape_value().expect("valid escapes").into_owned();
        e.attrs.insert(key, value);
    }
    e
}

#[test]
fn junit_parses_and_counts_failures_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run/junit.xml");
    write_junit(&summary(), &path).unwrap();
    let xml = std::fs::read_to_string(&path).unwrap();
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"));
    let root = parse_xml(&xml);
    assert_eq!(root.name, "testsuites");
    assert_eq!(root.attr("tests"), "4");
    assert_eq!(root.attr("failures"), "2");
    assert_eq!(root.attr("errors"), "1");
    assert_eq!(root.attr("time"), "61.234");

    let suites = root.all("testsuite");
    let names: Vec<_> = suites.iter().map(|s| s.attr("name")).collect();
    assert_eq!(names, vec!["bdsnap.6.1", "bdsnap.6.12"]);
    assert_eq!(
        (
            suites[0].attr("tests"),
            suites[0].attr("failures"),
            suites[0].attr("errors")
        ),
        ("2", "1", "0")
    );
    assert_eq!(
        (
            suites[1].attr("tests"),
            suites[1].attr("failures"),
            suites[1].attr("errors")
        ),
        ("2", "1", "1")
    );

    let props: BTreeMap<&str, &str> = suites[1].all("properties")[0]
        .all("property")
        .iter()
        .map(|p| (p.attr("name"), p.attr("value")))
        .collect();
    assert_eq!(props["kernel.release"], "6.12.48+deb13-cloud-amd64");
    assert_eq!(props["kernel.package_version"], "6.12.48-1");
    assert_eq!(props["kernel.suite"], "trixie");
    assert_eq!(
        props["boot_options"],
        "slub_debug=FZP kfence.sample_interval=100"
    );

    let cases = suites[0].all("testcase");
    assert_eq!(cases.len(), 2);
    assert!(cases.iter().all(|c| c.attr("classname") == "bdsnap.6.1"));
    assert_eq!(cases[0].attr("name"), "basic");
    assert_eq!(cases[0].attr("time"), "1.500");
    assert!(
        cases[0].children.is_empty(),
        "a passing case has no failure"
    );
}

#[test]
fn junit_failure_carries_the_step_and_survives_hostile_output() {
    let xml = bdsnap_report::junit::render_junit(&summary()).unwrap();
    let root = parse_xml(&xml);
    let case = &root.all("testsuite")[0].all("testcase")[1];
    assert_eq!(case.attr("name"), "escape<&>");
    let failure = &case.all("failure")[0];
    assert_eq!(failure.attr("type"), "step");
    let message = failure.attr("message");
    assert!(
        message.contains("`echo '<a href=\"x\">' && cat /dev/x` failed: exit 3, expected 0"),
        "{message}"
    );
    let body = &failure.text;
    assert!(body.contains("exit: 3"), "{body}");
    assert!(body.contains("cat: /dev/x: No such device"), "{body}");
    // Markup characters come back verbatim; control characters XML cannot hold are shown.
    assert!(
        body.contains("less < more & \"quoted\" 'single' ]]> bell\\x07 nul\\x00 end"),
        "{body}"
    );
}

#[test]
fn junit_reports_console_findings_and_harness_errors_distinctly() {
    let xml = bdsnap_report::junit::render_junit(&summary()).unwrap();
    let root = parse_xml(&xml);
    let cases = root.all("testsuite")[1].all("testcase");
    let oops = &cases[0].all("failure")[0];
    assert_eq!(oops.attr("type"), "kernel-console");
    assert!(
        oops.text
            .contains("line 812: Oops: [   81.000001] Oops: 0000 [#1]"),
        "{}",
        oops.text
    );
    let boot = &cases[1].all("error")[0];
    assert!(boot.attr("message").contains("boot failed"));
    assert!(cases[1].all("failure").is_empty());
}

/// Checks the KTAP structure: versions, plans matching the results at each level,
/// consecutive numbering, diagnostics only as `# ` lines.
fn check_ktap(text: &str) -> Vec<(usize, bool, String)> {
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "KTAP version 1");
    let mut top = Vec::new();
    let mut plan_top = None;
    let mut sub_plan: Option<usize> = None;
    let mut sub_count = 0;
    for line in &lines[1..] {
        if let Some(inner) = line.strip_prefix("  ") {
            if inner == "KTAP version 1" {
                assert!(sub_plan.is_none() || sub_count == sub_plan.unwrap());
                sub_plan = None;
                sub_count = 0;
            } else if let Some(n) = inner.strip_prefix("1..") {
                sub_plan = Some(n.parse().unwrap());
            } else if inner.starts_with("# ") {
            } else {
                let (_, number, _) = result_line(inner);
                sub_count += 1;
                assert_eq!(number, sub_count, "subtest numbering: {inner}");
            }
        } else if let Some(n) = line.strip_prefix("1..") {
            plan_top = Some(n.parse::<usize>().unwrap());
        } else if line.starts_with("# ") {
        } else {
            assert_eq!(Some(sub_count), sub_plan, "subtest plan before {line}");
            let (ok, number, name) = result_line(line);
            assert_eq!(number, top.len() + 1);
            top.push((number, ok, name));
        }
    }
    assert_eq!(plan_top, Some(top.len()));
    top
}

fn result_line(line: &str) -> (bool, usize, String) {
    let (ok, rest) = if let Some(rest) = line.strip_prefix("not ok ") {
        (false, rest)
    } else if let Some(rest) = line.strip_prefix("ok ") {
        (true, rest)
    } else {
        panic!("not a KTAP line: {line:?}");
    };
    let (number, name) = rest.split_once(' ').expect("number and name");
    assert!(!name.contains('#'), "{line}");
    (ok, number.parse().unwrap(), name.to_string())
}

#[test]
fn ktap_is_well_formed_and_explains_failures() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("results.ktap");
    write_ktap(&summary(), &path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let top = check_ktap(&text);
    assert_eq!(
        top,
        vec![
            (1, false, "bdsnap.6.1".to_string()),
            (2, false, "bdsnap.6.12".to_string())
        ]
    );
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.contains(&"  ok 1 basic"));
    // The reason sits in diagnostics right before the result it explains.
    let not_ok = lines
        .iter()
        .position(|l| *l == "  not ok 2 escape<&>")
        .unwrap();
    assert!(lines[not_ok - 1].starts_with("  # "));
    let diag: Vec<&str> = lines[..not_ok]
        .iter()
        .rev()
        .take_while(|l| l.starts_with("  # "))
        .copied()
        .collect();
    assert!(diag.iter().any(|l| l.contains("exit: 3")), "{diag:?}");
    assert!(text.contains("\n# boot options: slub_debug=FZP kfence.sample_interval=100\n"));
    assert!(text.contains("  # kernel 6.12 (trixie 6.12.48+deb13-cloud-amd64, package 6.12.48-1"));
    assert!(text.contains("  # unplug: console line 812 (Oops): [   81.000001] Oops: 0000 [#1]"));
    assert_eq!(
        text.matches("boot failed").count(),
        1,
        "a harness error is said once: {text}"
    );
    // No raw control character escapes into the stream.
    assert!(!text.contains('\u{7}') && !text.contains('\u{0}'));
}

#[test]
fn print_samples() {
    if std::env::var("SHOW").is_ok() {
        println!(
            "{}",
            bdsnap_report::junit::render_junit(&summary()).unwrap()
        );
        println!("{}", render_ktap(&summary()));
        println!("{}", render_terminal_summary(&summary()));
    }
}

#[test]
fn ktap_of_an_all_passing_run_is_all_ok() {
    let mut s = summary();
    s.cases.retain(|c| c.passed());
    let top = check_ktap(&render_ktap(&s));
    assert_eq!(top.len(), 2);
    assert!(top[0].1, "6.1 passed");
    // 6.12 has no cases left: an empty plan, and nothing failed.
    assert!(render_ktap(&s).contains("  1..0"));
}

#[test]
fn case_directory_holds_logs_steps_and_transcript() {
    let dir = tempfile::tempdir().unwrap();
    let s = summary();
    let case = &s.cases[1];
    let case_dir = write_case_dir(dir.path(), case, "[ 1.0] console\n", "[ 1.0] dmesg\n").unwrap();
    assert_eq!(case_dir, dir.path().join("6.1").join("escape<&>"));
    assert_eq!(
        std::fs::read_to_string(case_dir.join("console.log")).unwrap(),
        "[ 1.0] console\n"
    );
    assert_eq!(
        std::fs::read_to_string(case_dir.join("dmesg.txt")).unwrap(),
        "[ 1.0] dmesg\n"
    );
    let back: CaseResult =
        serde_json::from_str(&std::fs::read_to_string(case_dir.join("steps.json")).unwrap())
            .unwrap();
    assert_eq!(back.outcome.unwrap().steps.len(), 3);
    let log = std::fs::read_to_string(case_dir.join("commands.log")).unwrap();
    assert!(log.contains("== step 2 (line 6) run: echo '<a href=\"x\">' && cat /dev/x"));
    assert!(log.contains("exit: 3  duration: 200 ms  verdict: FAIL: exit 3, expected 0"));
    assert!(log.contains("--- stderr ---\ncat: /dev/x: No such device"));
    assert!(log.contains("verdict: skipped"));
}

#[test]
fn fio_steps_leave_their_json_report_in_the_case_directory() {
    let dir = tempfile::tempdir().unwrap();
    let mut fio = step(2, "fio --output-format=json+ --name=w", 0, Verdict::Pass);
    fio.kind = "fio".into();
    fio.stdout = "{\"fio version\" : \"fio-3.33\", \"jobs\" : []}\n".into();
    let mut empty = step(
        3,
        "fio --name=x",
        1,
        Verdict::Fail("fio exited with status 1".into()),
    );
    empty.kind = "fio".into();
    empty.stdout = String::new();
    let c = case(
        "6.1",
        "bench",
        vec![
            step(1, "modprobe bdsnap", 0, Verdict::Pass),
            fio.clone(),
            empty,
        ],
    );
    let case_dir = write_case_dir(dir.path(), &c, "", "").unwrap();
    assert_eq!(bdsnap_report::fio_report_name(&fio), "fio-step02.json");
    assert_eq!(
        std::fs::read_to_string(case_dir.join("fio-step02.json")).unwrap(),
        fio.stdout
    );
    assert!(!case_dir.join("fio-step01.json").exists());
    assert!(
        !case_dir.join("fio-step03.json").exists(),
        "no report, no file"
    );
}

#[test]
fn case_directory_names_cannot_escape_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = summary().cases[0].clone();
    c.kernel = "..".into();
    c.scenario = "../../etc".into();
    let written = write_case_dir(dir.path(), &c, "", "").unwrap();
    assert!(written.starts_with(dir.path()));
    assert_eq!(written, dir.path().join("_..").join(".._.._etc"));
}

#[test]
fn summary_json_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("summary.json");
    write_summary_json(&summary(), &path).unwrap();
    let back: RunSummary = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(back.cases.len(), 4);
    assert_eq!(back.kernels[1].package_version, "6.12.48-1");
    assert_eq!(back.cases[2].findings[0].marker, Marker::Oops);
    assert_eq!(back.failed_count(), 3);
    assert_eq!(
        back.boot_options,
        ["slub_debug=FZP", "kfence.sample_interval=100"]
    );
}

#[test]
fn terminal_summary_is_a_table_with_reasons() {
    let table = render_terminal_summary(&summary());
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("KERNEL"), "{table}");
    assert_eq!(lines.len(), 6, "{table}");
    assert!(lines[1].contains("6.1 (6.1.0-56-cloud-amd64)") && lines[1].contains("PASS"));
    assert!(lines[2].contains("FAIL") && lines[2].contains("exit 3, expected 0"));
    assert!(lines[3].contains("FAIL") && lines[3].contains("(Oops)"));
    assert!(lines[4].contains("FAIL") && lines[4].contains("harness error: boot failed"));
    // Columns line up: RESULT starts at the same place on every row.
    let col = lines[0].find("RESULT").unwrap();
    for l in &lines[1..5] {
        let cell = &l[l
            .char_indices()
            .nth(lines[0][..col].chars().count())
            .unwrap()
            .0..];
        assert!(cell.starts_with("PASS") || cell.starts_with("FAIL"), "{l}");
    }
    assert!(
        lines[5].starts_with("4 cases: 1 passed, 3 failed"),
        "{}",
        lines[5]
    );
}

/// A run with one skipped case: every output says SKIP with the reason, and the run passed.
#[test]
fn skipped_cases_are_neither_passed_nor_failed_in_every_output() {
    let mut s = summary();
    s.cases
        .retain(|c| c.kernel == "6.1" && c.scenario == "basic");
    let mut skipped = case("6.1", "zoned", vec![]);
    skipped.outcome = None;
    skipped.skipped = Some("requires: kernel config lacks CONFIG_BLK_DEV_ZONED".into());
    s.cases.push(skipped);
    assert!(s.passed());
    assert_eq!((s.failed_count(), s.skipped_count()), (0, 1));

    let ktap = render_ktap(&s);
    assert!(
        ktap.contains("  ok 2 zoned # SKIP requires: kernel config lacks CONFIG_BLK_DEV_ZONED\n"),
        "{ktap}"
    );
    assert!(ktap.contains("\nok 1 bdsnap.6.1\n"), "{ktap}");

    let xml = parse_xml(&render_junit(&s).unwrap());
    let suite = &xml.all("testsuite")[0];
    assert_eq!(suite.attr("skipped"), "1");
    assert_eq!(suite.attr("failures"), "0");
    let zoned = suite
        .all("testcase")
        .into_iter()
        .find(|c| c.attr("name") == "zoned")
        .expect("the skipped case is listed");
    assert_eq!(
        zoned.all("skipped")[0].attr("message"),
        "requires: kernel config lacks CONFIG_BLK_DEV_ZONED"
    );
    assert!(zoned.all("failure").is_empty());

    let table = render_terminal_summary(&s);
    assert!(
        table.contains("zoned     SKIP    requires: kernel config lacks CONFIG_BLK_DEV_ZONED"),
        "{table}"
    );
    assert!(
        table.contains("2 cases: 1 passed, 0 failed, 1 skipped"),
        "{table}"
    );
}

#[test]
fn markdown_summary_has_a_row_per_case_and_escapes_cells() {
    let md = bdsnap_report::render_markdown_summary(&summary());
    let rows: Vec<&str> = md.lines().filter(|l| l.starts_with("| ")).collect();
    // Header and four cases.
    assert_eq!(rows.len(), 5, "{md}");
    assert!(md.starts_with("### bdsnap run 20250101-000000: 1 passed, 3 failed, 0 skipped of 4"));
    assert!(
        rows[2].contains("| escape&lt;&amp;&gt; | **FAIL** | step 2"),
        "{md}"
    );
    assert!(rows.iter().all(|r| r.matches(" | ").count() == 3), "{md}");
}
