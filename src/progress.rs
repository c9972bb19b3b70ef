//! The spinner of long runs: elapsed time and the current step (gates, claim,
//! run, finish) on one line of stderr, drawn by indicatif ten times a second.
//! Only on a terminal and only for text output: `commands` enables it;
//! everything else just names steps, which costs an uncontended lock when it
//! is off.
//!
//! Whatever else is printed while it turns goes through `suspend` (our own
//! lines) or `write_output` (a child's output), which take the line down
//! first. A child's line left unfinished is not wiped by the next tick: the
//! spinner stays down until the line is ended.

use crate::render::Style;
use indicatif::{ProgressBar, ProgressState, ProgressStyle};
use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

struct Spinner {
    run: Option<Run>,
    /// Bumped by every start: the guard of a replaced run leaves the new one be.
    generation: u64,
    /// Whether the frames are coloured, decided once by `enable`.
    style: Style,
}

/// One run on screen.
struct Run {
    generation: u64,
    label: String,
    step: String,
    started: Instant,
    /// `None` while a child's line is unfinished on screen.
    bar: Option<ProgressBar>,
}

static STATE: Mutex<Spinner> = Mutex::new(Spinner {
    run: None,
    generation: 0,
    style: Style::PLAIN,
});
static ENABLED: AtomicBool = AtomicBool::new(false);
/// A child's output echoed to stderr ended without a newline.
static MID_LINE: AtomicBool = AtomicBool::new(false);

/// The last string is the finished frame, never shown: a run ends wiped.
const FRAMES: [&str; 11] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏", " "];
const TICK: Duration = Duration::from_millis(100);

/// Turns the spinner on for this process (stderr is a terminal, output is
/// text); its colour is stderr's (`NO_COLOR` keeps it plain).
pub fn enable() {
    state().style = Style::of(&std::io::stderr());
    ENABLED.store(true, Ordering::SeqCst);
}

fn state() -> std::sync::MutexGuard<'static, Spinner> {
    // A panic while drawing cannot leave the state inconsistent: keep going.
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// The state, when the spinner is on at all.
fn state_if_enabled() -> Option<std::sync::MutexGuard<'static, Spinner>> {
    ENABLED.load(Ordering::SeqCst).then(state)
}

/// Shows `label` with a spinner until the returned guard is dropped.
#[must_use = "the spinner stops when the guard is dropped"]
pub fn start(label: String) -> Guard {
    let Some(mut s) = state_if_enabled() else {
        return Guard(None);
    };
    s.generation += 1;
    if let Some(mut old) = s.run.take() {
        old.hide();
    }
    s.run = Some(Run {
        generation: s.generation,
        label,
        step: String::new(),
        started: Instant::now(),
        bar: None,
    });
    show(&mut s);
    Guard(Some(s.generation))
}

/// Names the current step of the run on screen.
pub fn step(step: &str) {
    if let Some(mut s) = state_if_enabled()
        && let Some(run) = s.run.as_mut()
    {
        step.clone_into(&mut run.step);
        if let Some(bar) = &run.bar {
            bar.set_message(run.message());
        }
    }
}

/// Runs `print` with the spinner line taken down, and puts it back after:
/// for what shipctl itself prints while a run is shown.
pub fn suspend<R>(print: impl FnOnce() -> R) -> R {
    let s = state_if_enabled();
    match s.as_ref().and_then(|s| s.run.as_ref()?.bar.as_ref()) {
        Some(bar) => bar.suspend(print),
        None => print(),
    }
}

/// Writes a child's output to stderr around the spinner line.
pub fn write_output(bytes: &[u8]) {
    let Some(&last) = bytes.last() else {
        return;
    };
    let mid_line = last != b'\n';
    // Always our state before the bar's, as every path here takes them.
    let mut s = state_if_enabled();
    let shown = s.as_mut().and_then(|s| s.run.as_mut()).and_then(|run| {
        if mid_line {
            // The next tick would wipe an unfinished line: down until it ends.
            run.hide();
        }
        run.bar.as_ref()
    });
    match shown {
        Some(bar) => bar.suspend(|| echo(bytes)),
        None => echo(bytes),
    }
    MID_LINE.store(mid_line, Ordering::SeqCst);
    if let Some(s) = s.as_mut() {
        show(s);
    }
}

/// A child has finished writing: end its last line if it did not, so that
/// what is printed next (the spinner, the result) starts on a line of its own.
pub fn end_output() {
    let mut s = state_if_enabled();
    if MID_LINE.swap(false, Ordering::SeqCst) {
        echo(b"\n");
    }
    if let Some(s) = s.as_mut() {
        show(s);
    }
}

fn echo(bytes: &[u8]) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(bytes);
    let _ = err.flush();
}

/// Puts the spinner of the current run up, unless it is up already or a
/// child's line is unfinished.
fn show(s: &mut Spinner) {
    let style = s.style;
    let Some(run) = s.run.as_mut() else {
        return;
    };
    if run.bar.is_some() || MID_LINE.load(Ordering::SeqCst) {
        return;
    }
    let frames = FRAMES.map(|f| style.cyan(f));
    let frames: Vec<&str> = frames.iter().map(String::as_str).collect();
    let look = ProgressStyle::with_template("{spinner} {msg} · {took}")
        .expect("a valid template")
        .tick_strings(&frames)
        .with_key("took", |p: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = w.write_str(&elapsed(p.elapsed()));
        });
    let bar = ProgressBar::new_spinner()
        .with_style(look)
        .with_message(run.message())
        .with_elapsed(run.started.elapsed());
    bar.enable_steady_tick(TICK);
    run.bar = Some(bar);
}

impl Run {
    fn message(&self) -> String {
        if self.step.is_empty() {
            self.label.clone()
        } else {
            format!("{} · {}", self.label, self.step)
        }
    }

    /// Takes the spinner down and wipes its line.
    fn hide(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

fn elapsed(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 60 {
        format!("{}.{}s", secs, d.subsec_millis() / 100)
    } else {
        format!("{}m{:02}s", secs / 60, secs % 60)
    }
}

/// Stops the spinner of one run and wipes its line.
pub struct Guard(Option<u64>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(generation) = self.0 {
            let mut s = state();
            if s.run.as_ref().is_some_and(|r| r.generation == generation)
                && let Some(mut run) = s.run.take()
            {
                run.hide();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::elapsed;
    use std::time::Duration;

    #[test]
    fn elapsed_reads_well() {
        assert_eq!(elapsed(Duration::from_millis(1234)), "1.2s");
        assert_eq!(elapsed(Duration::from_secs(75)), "1m15s");
    }
}
