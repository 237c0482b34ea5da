//! The monotonic clock of the time limits (the e-graph's budget, the numeric
//! deadline): std's in native builds; in a browser (wasm32), where
//! `std::time::Instant::now` panics, web-time's, the same API over
//! `performance.now()`.

#[cfg(not(target_arch = "wasm32"))]
pub(crate) use std::time::Instant;
#[cfg(target_arch = "wasm32")]
pub(crate) use web_time::Instant;
