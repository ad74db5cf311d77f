//! Reading back the serial console log that QEMU writes.

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// The last `lines` lines of `text`, with carriage returns removed (the console is a tty).
pub fn tail_lines(text: &str, lines: usize) -> String {
    let cleaned = text.replace('\r', "");
    let all: Vec<&str> = cleaned.lines().collect();
    let start = all.len().saturating_sub(lines);
    all[start..].join("\n")
}

/// The last `lines` lines of the log file, reading at most its last 64 KiB. A missing file
/// gives a short note instead of an error: this only ever decorates another error.
pub fn file_tail(path: &Path, lines: usize) -> String {
    let read = || -> std::io::Result<String> {
        let mut file = fs::File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    match read() {
        Ok(text) => tail_lines(&text, lines),
        Err(e) => format!("(no console log at {}: {e})", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_last_lines_without_cr() {
        assert_eq!(tail_lines("a\r\nb\r\nc\r\n", 2), "b\nc");
        assert_eq!(tail_lines("only", 5), "only");
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("console.log");
        let body: String = (0..10_000).map(|i| format!("line {i}\n")).collect();
        fs::write(&log, body).unwrap();
        assert_eq!(file_tail(&log, 2), "line 9998\nline 9999");
        assert!(file_tail(&dir.path().join("missing"), 2).contains("no console log"));
    }
}
