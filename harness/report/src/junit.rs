//! `junit.xml`: the format CI reporters read. One `<testsuite name="bdsnap.<kernel>">` per
//! kernel with the kernel's exact release and package version as properties, one
//! `<testcase>` per scenario. A case the module failed is a `<failure>`; a case the harness
//! could not run (boot failed...) is an `<error>`, so the two are never confused.

use crate::model::{one_line, CaseResult, KernelInfo, RunSummary};
use crate::write::failure_details;
use crate::ReportError;
use quick_xml::events::{BytesDecl, BytesText, Event};
use quick_xml::Writer;
use std::borrow::Cow;
use std::fs;
use std::io;
use std::path::Path;

/// How many attribute characters a failure `message` keeps; the body has everything.
const MESSAGE_CHARS: usize = 500;

/// Writes `summary` as JUnit XML to `path`.
pub fn write_junit(summary: &RunSummary, path: &Path) -> Result<(), ReportError> {
    let xml = render_junit(summary).map_err(ReportError::io(path))?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(ReportError::io(parent))?;
    }
    fs::write(path, xml).map_err(ReportError::io(path))
}

/// The JUnit XML document for `summary`.
pub fn render_junit(summary: &RunSummary) -> io::Result<String> {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    let groups = summary.by_kernel();
    let tests = summary.cases.len().to_string();
    let failures = summary
        .cases
        .iter()
        .filter(|c| is_failure(c))
        .count()
        .to_string();
    let errors = summary
        .cases
        .iter()
        .filter(|c| c.error.is_some())
        .count()
        .to_string();
    let time = seconds(summary.duration_ms);
    w.create_element("testsuites")
        .with_attribute(("name", "bdsnap"))
        .with_attribute(("tests", tests.as_str()))
        .with_attribute(("failures", failures.as_str()))
        .with_attribute(("errors", errors.as_str()))
        .with_attribute(("time", time.as_str()))
        .write_inner_content(|w| {
            for (kernel, info, cases) in &groups {
                write_suite(w, summary, kernel, *info, cases)?;
            }
            Ok(())
        })?;
    let mut bytes = w.into_inner();
    bytes.push(b'\n');
    String::from_utf8(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// A harness error is reported as `<error>`, anything else that did not pass as `<failure>`.
fn is_failure(case: &CaseResult) -> bool {
    case.failed() && case.error.is_none()
}

fn write_suite(
    w: &mut Writer<Vec<u8>>,
    summary: &RunSummary,
    kernel: &str,
    info: Option<&KernelInfo>,
    cases: &[&CaseResult],
) -> io::Result<()> {
    let name = xml_safe(&format!("bdsnap.{kernel}")).into_owned();
    let tests = cases.len().to_string();
    let failures = cases.iter().filter(|c| is_failure(c)).count().to_string();
    let errors = cases
        .iter()
        .filter(|c| c.error.is_some())
        .count()
        .to_string();
    let skipped = cases.iter().filter(|c| c.is_skipped()).count().to_string();
    let time = seconds(cases.iter().map(|c| c.duration_ms).sum());
    let host = xml_safe(&summary.host);
    w.create_element("testsuite")
        .with_attribute(("name", name.as_str()))
        .with_attribute(("tests", tests.as_str()))
        .with_attribute(("failures", failures.as_str()))
        .with_attribute(("errors", errors.as_str()))
        .with_attribute(("skipped", skipped.as_str()))
        .with_attribute(("time", time.as_str()))
        .with_attribute(("hostname", host.as_ref()))
        .write_inner_content(|w| {
            let boot_options = summary.boot_options.join(" ");
            let mut props: Vec<(&str, &str)> = vec![
                ("run_id", &summary.run_id),
                ("accel", &summary.accel),
                ("boot_options", &boot_options),
                ("kernel.name", kernel),
            ];
            if let Some(k) = info {
                props.extend([
                    ("kernel.suite", k.suite.as_str()),
                    ("kernel.release", k.release.as_str()),
                    ("kernel.package_version", k.package_version.as_str()),
                    ("kernel.compiler", k.compiler.as_str()),
                ]);
            }
            w.create_element("properties").write_inner_content(|w| {
                for (key, value) in props {
                    let value = xml_safe(value);
                    w.create_element("property")
                        .with_attribute(("name", key))
                        .with_attribute(("value", value.as_ref()))
                        .write_empty()?;
                }
                Ok(())
            })?;
            for case in cases {
                write_case(w, &name, case)?;
            }
            Ok(())
        })?;
    Ok(())
}

fn write_case(w: &mut Writer<Vec<u8>>, classname: &str, case: &CaseResult) -> io::Result<()> {
    let name = xml_safe(&case.scenario);
    let file = xml_safe(&case.scenario_file);
    let time = seconds(case.duration_ms);
    let element = w
        .create_element("testcase")
        .with_attribute(("classname", classname))
        .with_attribute(("name", name.as_ref()))
        .with_attribute(("file", file.as_ref()))
        .with_attribute(("time", time.as_str()));
    if let Some(why) = &case.skipped {
        let why = xml_safe(why).into_owned();
        element.write_inner_content(|w| {
            w.create_element("skipped")
                .with_attribute(("message", why.as_str()))
                .write_empty()?;
            Ok(())
        })?;
        return Ok(());
    }
    let Some(message) = case.failure_message() else {
        element.write_empty()?;
        return Ok(());
    };
    let message = xml_safe(&truncate(&one_line(&message), MESSAGE_CHARS)).into_owned();
    let body = xml_safe(&failure_details(case, None)).into_owned();
    let (tag, kind) = if case.error.is_some() {
        ("error", "harness")
    } else if !case.findings.is_empty() {
        ("failure", "kernel-console")
    } else {
        ("failure", "step")
    };
    element.write_inner_content(|w| {
        w.create_element(tag)
            .with_attribute(("message", message.as_str()))
            .with_attribute(("type", kind))
            .write_text_content(BytesText::new(&body))?;
        Ok(())
    })?;
    Ok(())
}

fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

/// XML 1.0 forbids most control characters even when escaped; a command's output can hold
/// any byte, so they are shown as `\xNN` instead of making the whole file unreadable.
pub(crate) fn xml_safe(text: &str) -> Cow<'_, str> {
    let allowed = |c: char| {
        matches!(c, '\t' | '\n' | '\r')
            || (!c.is_control() && c != '\u{FFFE}' && c != '\u{FFFF}')
            || ('\u{80}'..='\u{9f}').contains(&c)
    };
    if text.chars().all(allowed) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| {
                if allowed(c) {
                    c.to_string()
                } else {
                    format!("\\x{:02x}", u32::from(c))
                }
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_become_visible_escapes() {
        assert_eq!(xml_safe("a\u{7}b\u{0}c\td\ne"), "a\\x07b\\x00c\td\ne");
        assert!(matches!(xml_safe("plain <&>"), Cow::Borrowed(_)));
    }

    #[test]
    fn seconds_have_millisecond_precision() {
        assert_eq!(seconds(1234), "1.234");
        assert_eq!(seconds(5), "0.005");
    }

    #[test]
    fn truncation_respects_characters() {
        assert_eq!(truncate("ééé", 2), "éé...");
        assert_eq!(truncate("ab", 2), "ab");
    }
}
