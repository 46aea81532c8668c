//! Building blocks shared by the simulators: fault knobs, call counters and HTTP helpers.

pub mod counters;
pub mod http;
pub mod knobs;

pub use counters::{Counters, DeniedCall};
pub use knobs::{HorizonErrorStyle, JobOutcome, Knobs, RetryAfterStyle};
