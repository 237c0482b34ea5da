//! What a caller can do to long work while it runs, from another thread:
//! stop it (the REPL's Ctrl-C), and hear how far it has come (the command
//! line's progress bar). The stages poll the stop where they already poll
//! their limits — the e-graph between iterations, the numeric work at its
//! deadline's checks, the planner between targets — and report a
//! [`Progress`] at the same places. Work stopped so ends with an
//! [`ErrorKind::Interrupted`] error, never with a partial answer. A control
//! may also carry a deadline ([`Control::with_deadline`]), seen at the same
//! polls, which ends the work with an [`ErrorKind::Limit`] error.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Instant;
use crate::error::{Error, ErrorKind, Result};

/// How far a piece of work has come: what it is doing, as a phrase
/// (`checking d/dW2`), and the step it is on out of how many.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    /// What is being done, a phrase without a capital or a full stop.
    pub what: String,
    /// The steps done before this one.
    pub done: usize,
    /// All the steps, as far as known.
    pub total: usize,
}

type Listener = Arc<dyn Fn(&Progress) + Send + Sync>;

/// A stop flag shared by its clones, and maybe a listener for progress:
/// [`Control::interrupt`] on one is seen by [`Control::check`] on every
/// other. The default one is never interrupted by anyone else and tells
/// no one, so options that carry it run to the end in silence.
///
/// ```
/// let control = matdiff::Control::default();
/// let p = matdiff::parse("A : 3x3; x : 3; x^T * A * x").unwrap();
/// let options = matdiff::DeriveOptions { control: control.clone(), ..Default::default() };
/// assert!(matdiff::derive(&p, &options).is_ok());
/// control.interrupt();
/// let e = matdiff::derive(&p, &options).unwrap_err();
/// assert_eq!(e.kind, matdiff::ErrorKind::Interrupted);
/// ```
#[derive(Clone, Default)]
pub struct Control {
    stop: Arc<AtomicBool>,
    /// When the work must have ended, and the limit that set it (for the error).
    deadline: Option<(Instant, Duration)>,
    listener: Option<Listener>,
}

impl fmt::Debug for Control {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Control")
            .field("interrupted", &self.is_interrupted())
            .field("deadline", &self.deadline.map(|(_, limit)| limit))
            .field("listened", &self.listener.is_some())
            .finish()
    }
}

impl Control {
    /// The control, telling `listener` of the work's progress (called on the
    /// working thread, between steps: it should return quickly).
    pub fn with_progress(mut self, listener: impl Fn(&Progress) + Send + Sync + 'static) -> Control {
        self.listener = Some(Arc::new(listener));
        self
    }

    /// The control, also ending the work that polls it once `limit` has
    /// passed from now, with an [`ErrorKind::Limit`] error. (The playground
    /// gives its first answer in the page's own thread within such a limit,
    /// and asks its worker when it is hit.) The deadline is this value's and
    /// its clones', not the other holders' of the same stop.
    ///
    /// ```
    /// use std::time::Duration;
    /// let p = matdiff::parse("A : 3x3; x : 3; x^T * A * x").unwrap();
    /// let control = matdiff::Control::default().with_deadline(Duration::ZERO);
    /// let options = matdiff::DeriveOptions { control, ..Default::default() };
    /// let e = matdiff::derive(&p, &options).unwrap_err();
    /// assert_eq!(e.kind, matdiff::ErrorKind::Limit);
    /// ```
    pub fn with_deadline(mut self, limit: Duration) -> Control {
        self.deadline = Some((Instant::now() + limit, limit));
        self
    }

    /// Asks the work that polls this control (or a clone of it) to stop.
    pub fn interrupt(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Clears a stop, for the next piece of work.
    pub fn clear(&self) {
        self.stop.store(false, Ordering::Relaxed);
    }

    /// Whether a stop was asked for.
    pub fn is_interrupted(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Whether the work should end now: a stop was asked for or the
    /// deadline has passed ([`Control::check`] says which).
    pub fn should_stop(&self) -> bool {
        self.is_interrupted() || self.past_deadline().is_some()
    }

    /// The deadline's limit, once it has passed.
    fn past_deadline(&self) -> Option<Duration> {
        self.deadline.filter(|(at, _)| Instant::now() >= *at).map(|(_, limit)| limit)
    }

    /// An [`ErrorKind::Interrupted`] error once a stop was asked for, an
    /// [`ErrorKind::Limit`] error once the deadline has passed.
    pub fn check(&self) -> Result<()> {
        if self.is_interrupted() {
            return Err(Error::new(ErrorKind::Interrupted, "the command was stopped before it finished"));
        }
        match self.past_deadline() {
            Some(limit) => Err(Error::new(
                ErrorKind::Limit,
                format!("the work stopped at its deadline ({} ms)", limit.as_millis()),
            )),
            None => Ok(()),
        }
    }

    /// Tells the listener, if any, that the work is at step `done` of
    /// `total`, doing `what` (built only when someone listens); then
    /// [`Control::check`].
    pub fn step(&self, what: impl FnOnce() -> String, done: usize, total: usize) -> Result<()> {
        if let Some(listener) = &self.listener {
            listener(&Progress { what: what(), done, total });
        }
        self.check()
    }
}
