//! The spinner of long runs: elapsed time and the current step (gates, claim,
//! run, finish) on one line of stderr, redrawn ten times a second. Only on a
//! terminal and only for text output: `commands` enables it; everything else
//! just names steps, which costs an uncontended lock when it is off.

use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

struct Spinner {
    label: String,
    step: String,
    /// `Some` while a run is shown.
    started: Option<Instant>,
    /// Bumped by every start: the drawing thread of an ended run exits.
    generation: u64,
    /// Whether the spinner line is on screen now.
    drawn: bool,
}

static STATE: Mutex<Spinner> = Mutex::new(Spinner {
    label: String::new(),
    step: String::new(),
    started: None,
    generation: 0,
    drawn: false,
});
static ENABLED: AtomicBool = AtomicBool::new(false);
/// A child's output echoed to stderr ended without a newline.
static MID_LINE: AtomicBool = AtomicBool::new(false);
static COLOR: AtomicBool = AtomicBool::new(false);

const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const TICK: Duration = Duration::from_millis(100);
const CLEAR: &str = "\r\x1b[2K";

/// Turns the spinner on for this process (stderr is a terminal, output is
/// text); `NO_COLOR` keeps it plain.
pub fn enable() {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    COLOR.store(!no_color, Ordering::SeqCst);
    ENABLED.store(true, Ordering::SeqCst);
}

fn state() -> std::sync::MutexGuard<'static, Spinner> {
    // A panic while drawing cannot leave the state inconsistent: keep going.
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Shows `label` with a spinner until the returned guard is dropped.
#[must_use = "the spinner stops when the guard is dropped"]
pub fn start(label: String) -> Guard {
    if !ENABLED.load(Ordering::SeqCst) {
        return Guard(None);
    }
    let generation = {
        let mut s = state();
        s.label = label;
        s.step = String::new();
        s.started = Some(Instant::now());
        s.generation += 1;
        s.generation
    };
    let spawned = std::thread::Builder::new()
        .name("spinner".into())
        .spawn(move || draw_loop(generation));
    Guard(spawned.ok().map(|_| generation))
}

/// Names the current step of the run on screen.
pub fn step(step: &str) {
    if ENABLED.load(Ordering::SeqCst) {
        let mut s = state();
        s.step.clear();
        s.step.push_str(step);
    }
}

/// Removes the spinner line before something else is printed; the next tick
/// draws it again below.
pub fn clear() {
    if ENABLED.load(Ordering::SeqCst) {
        let mut s = state();
        erase(&mut s);
    }
}

/// Writes a child's output to stderr around the spinner line.
pub fn write_output(bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    // Always the state before stderr, as the drawing thread takes them.
    let mut s = ENABLED.load(Ordering::SeqCst).then(state);
    if let Some(s) = s.as_mut() {
        erase(s);
    }
    MID_LINE.store(bytes.last() != Some(&b'\n'), Ordering::SeqCst);
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(bytes);
    let _ = err.flush();
}

/// A child has finished writing: end its last line if it did not, so that
/// what is printed next (the spinner, the result) starts on a line of its own.
pub fn end_output() {
    let _s = ENABLED.load(Ordering::SeqCst).then(state);
    if MID_LINE.swap(false, Ordering::SeqCst) {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(b"\n");
        let _ = err.flush();
    }
}

fn erase(s: &mut Spinner) {
    if s.drawn {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(CLEAR.as_bytes());
        let _ = err.flush();
        s.drawn = false;
    }
}

fn draw_loop(generation: u64) {
    let mut frame = 0usize;
    loop {
        std::thread::sleep(TICK);
        let mut s = state();
        let Some(started) = s.started.filter(|_| s.generation == generation) else {
            return;
        };
        if MID_LINE.load(Ordering::SeqCst) {
            continue;
        }
        let step = if s.step.is_empty() {
            String::new()
        } else {
            format!(" · {}", s.step)
        };
        let spin = FRAMES[frame % FRAMES.len()];
        let spin = if COLOR.load(Ordering::Relaxed) {
            format!("\x1b[36m{spin}\x1b[0m")
        } else {
            spin.to_string()
        };
        // One screen line at most: a wrapped line could not be erased.
        let text: String = format!("{}{step} · {}", s.label, elapsed(started.elapsed()))
            .chars()
            .take(columns().saturating_sub(3))
            .collect();
        let line = format!("{CLEAR}{spin} {text}");
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(line.as_bytes());
        let _ = err.flush();
        s.drawn = true;
        frame += 1;
    }
}

/// The terminal's width, 80 when it cannot be told.
fn columns() -> usize {
    // SAFETY: TIOCGWINSZ fills the winsize it is given, and nothing else.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut ws) == 0 && ws.ws_col > 0 {
            usize::from(ws.ws_col)
        } else {
            80
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
            if s.generation == generation {
                s.started = None;
                erase(&mut s);
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
