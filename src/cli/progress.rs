//! The progress bar of long work (indicatif) on standard error: what is
//! being done (`checking d/dW2 (3 of 8, instance 1)`), the step out of how
//! many, the time so far. Drawn only on a terminal (indicatif draws nothing
//! elsewhere), and only once a command has run half a second, so that the
//! quick answers, nearly all of them, show none; cleared before any output.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::{Control, Progress};

/// How long a command runs before its bar appears.
const DELAY: Duration = Duration::from_millis(500);

/// A bar for one command at a time: [`Bar::listen`] gives the engine a
/// control that reports to it, [`Bar::restart`] clears it for the next
/// command (the REPL's), and dropping it clears it.
pub(super) struct Bar {
    state: Arc<Mutex<State>>,
}

struct State {
    start: Instant,
    bar: Option<ProgressBar>,
    /// Output was written at `start`: no bar until DELAY has passed since.
    written: bool,
}

impl State {
    fn show(&mut self, p: &Progress) {
        // Work that writes as it goes (a long derivation's lines) would
        // otherwise make a bar, and its threads, between every two writes.
        if self.bar.is_none() && self.written && self.start.elapsed() < DELAY {
            return;
        }
        if self.bar.is_none() {
            // Hidden until the command has run DELAY: a step may itself be
            // long (one gradient's differences), so a timer shows it.
            let bar = ProgressBar::with_draw_target(Some(p.total as u64), ProgressDrawTarget::hidden());
            let style = ProgressStyle::with_template("{spinner} {msg}  [{bar:24}] {pos}/{len}  {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(120));
            let (shown, wait) = (bar.clone(), DELAY.saturating_sub(self.start.elapsed()));
            std::thread::spawn(move || {
                std::thread::sleep(wait);
                if !shown.is_finished() {
                    shown.set_draw_target(ProgressDrawTarget::stderr());
                }
            });
            self.bar = Some(bar);
        }
        if let Some(bar) = &self.bar {
            bar.set_length(p.total as u64);
            bar.set_position(p.done as u64);
            bar.set_message(p.what.clone());
        }
    }

    fn clear(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Bar {
    pub(super) fn new() -> Bar {
        Bar { state: Arc::new(Mutex::new(State { start: Instant::now(), bar: None, written: false })) }
    }

    /// `control`, also reporting its progress to this bar.
    pub(super) fn listen(&self, control: Control) -> Control {
        let state = self.state.clone();
        control.with_progress(move |p| state.lock().unwrap_or_else(PoisonError::into_inner).show(p))
    }

    /// Clears the bar, and counts the half second afresh from now.
    pub(super) fn restart(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.clear();
        state.start = Instant::now();
        state.written = false;
    }

    /// [`Bar::restart`], for output just written: the bar comes back only
    /// with progress reported half a second later.
    fn written(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.clear();
        state.start = Instant::now();
        state.written = true;
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }
}

/// A writer that clears the bar before each write, so that no bar stands
/// among the results or the errors (and none appears once output began).
pub(super) struct Cleared<'a> {
    bar: &'a Bar,
    inner: &'a mut dyn std::io::Write,
}

impl<'a> Cleared<'a> {
    pub(super) fn new(bar: &'a Bar, inner: &'a mut dyn std::io::Write) -> Cleared<'a> {
        Cleared { bar, inner }
    }
}

impl std::io::Write for Cleared<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bar.written();
        self.inner.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
