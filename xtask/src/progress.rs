//! Progress of long operations: a spinner per task on a terminal, and without one (CI logs) a
//! plain line for every stage, so a log shows what is running and what has finished.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal as _, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Plain lines of a stage's chatter are at most this frequent.
pub const TICK: Duration = Duration::from_secs(15);

/// Where plain lines go without a terminal.
type Sink = Arc<Mutex<dyn Write + Send>>;

/// Whether progress is drawn as spinners: stderr is a terminal.
pub fn on_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// The bars of one command; without a terminal nothing is drawn and lines are printed.
pub struct Board {
    multi: MultiProgress,
    tty: bool,
    sink: Sink,
}

impl Board {
    pub fn new() -> Self {
        Self::with_terminal(on_terminal())
    }

    pub fn with_terminal(tty: bool) -> Self {
        Self::with_sink(tty, Arc::new(Mutex::new(std::io::stderr())))
    }

    /// Plain lines (no terminal) go to `sink`.
    pub fn with_sink(tty: bool, sink: Sink) -> Self {
        let multi = MultiProgress::new();
        if !tty {
            multi.set_draw_target(ProgressDrawTarget::hidden());
        }
        Self { multi, tty, sink }
    }

    /// A task's spinner, labelled with `prefix` (a kernel's name, "image", ...).
    pub fn task(&self, prefix: &str) -> Task {
        let bar = self.multi.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix:>6} [{elapsed:>4}] {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        self.start(bar, prefix)
    }

    /// A task of `len` counted parts: a bar on a terminal, "(done/len)" in plain lines.
    pub fn counted(&self, prefix: &str, len: u64) -> Task {
        let bar = self.multi.add(ProgressBar::new(len));
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>6} [{elapsed:>4}] {bar:30} {pos}/{len} {wide_msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        self.start(bar, prefix)
    }

    fn start(&self, bar: ProgressBar, prefix: &str) -> Task {
        bar.set_prefix(prefix.to_string());
        if self.tty {
            bar.enable_steady_tick(Duration::from_millis(200));
        }
        Task {
            bar,
            multi: self.multi.clone(),
            tty: self.tty,
            sink: self.sink.clone(),
            prefix: prefix.to_string(),
            started: Instant::now(),
            last_tick: Mutex::new(None),
        }
    }
}

impl Default for Board {
    fn default() -> Self {
        Self::new()
    }
}

/// One task's progress.
pub struct Task {
    bar: ProgressBar,
    multi: MultiProgress,
    tty: bool,
    sink: Sink,
    prefix: String,
    started: Instant,
    last_tick: Mutex<Option<Instant>>,
}

impl Task {
    /// What the task does now: the spinner's message, or a line without a terminal.
    pub fn stage(&self, msg: impl Into<String>) {
        let msg = msg.into();
        if !self.tty {
            self.emit(&msg);
        }
        self.bar.set_message(msg);
    }

    /// Chatter of the stage (a command's output): the spinner's message, and in plain lines
    /// at most one every [`TICK`], so a log shows a long stage is alive without its flood.
    pub fn tick(&self, msg: impl Into<String>) {
        let msg = msg.into();
        if !self.tty {
            let due = self
                .last_tick
                .lock()
                .map(|mut last| {
                    let due = last.is_none_or(|t| t.elapsed() >= TICK);
                    if due {
                        *last = Some(Instant::now());
                    }
                    due
                })
                .unwrap_or(false);
            if due {
                self.emit(&msg);
            }
        }
        self.bar.set_message(msg);
    }

    /// A line that stays (a finished case), above the spinners on a terminal.
    pub fn record(&self, msg: &str) {
        if self.tty {
            let _ = self.multi.println(self.plain(msg));
        } else {
            self.emit(msg);
        }
    }

    /// One counted part is done.
    pub fn inc(&self) {
        self.bar.inc(1);
    }

    /// The task is over; its last message stays.
    pub fn finish(&self, msg: impl Into<String>) {
        let msg = msg.into();
        if !self.tty {
            self.emit(&msg);
        }
        self.bar.finish_with_message(msg);
    }

    /// One plain line, written whole (tasks run on several threads).
    fn emit(&self, msg: &str) {
        let line = self.plain(msg);
        if let Ok(mut out) = self.sink.lock() {
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }

    fn plain(&self, msg: &str) -> String {
        let count = match self.bar.length() {
            Some(len) => format!(" ({}/{len})", self.bar.position()),
            None => String::new(),
        };
        format!(
            "[{:>6} {:>6.1}s]{count} {msg}",
            self.prefix,
            self.started.elapsed().as_secs_f64()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::ErrorKind::Other)?
                .write(buf)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn without_a_terminal_every_stage_and_case_is_a_line() {
        let out = Shared::default();
        let board = Board::with_sink(false, Arc::new(Mutex::new(out.clone())));
        let task = board.task("6.1");
        task.stage("6.1.0-50-cloud-amd64: booting (tcg)");
        task.stage("6.1.0-50-cloud-amd64: smoke");
        task.record("smoke PASS in 14.0 s");
        task.finish("1 passed, 0 failed");
        let text = String::from_utf8(out.0.lock().map(|v| v.clone()).unwrap_or_default())
            .unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[0].contains("booting (tcg)"), "{text}");
        assert!(lines[2].ends_with("] smoke PASS in 14.0 s"), "{text}");
        assert!(lines.iter().all(|l| l.starts_with("[   6.1 ")), "{text}");
    }

    #[test]
    fn chatter_is_thinned_in_plain_lines() {
        let out = Shared::default();
        let board = Board::with_sink(false, Arc::new(Mutex::new(out.clone())));
        let task = board.task("image");
        for i in 0..100 {
            task.tick(format!("Get:{i} http://example/pool"));
        }
        let text = String::from_utf8(out.0.lock().map(|v| v.clone()).unwrap_or_default())
            .unwrap_or_default();
        assert_eq!(text.lines().count(), 1, "{text}");
    }

    #[test]
    fn counted_tasks_show_how_far_they_are() {
        let board = Board::with_terminal(false);
        let task = board.counted("7.2", 40);
        task.inc();
        task.inc();
        assert!(task.plain("raw-4k").contains("s] (2/40) raw-4k"));
    }

    #[test]
    fn plain_lines_name_the_task_and_its_time() {
        let board = Board::with_terminal(false);
        let task = board.task("6.1");
        let line = task.plain("smoke PASS");
        assert!(line.starts_with("[   6.1 "), "{line}");
        assert!(line.ends_with("s] smoke PASS"), "{line}");
    }
}
