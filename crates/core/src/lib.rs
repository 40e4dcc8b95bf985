//! The canonical model shared by every heartsuite crate: exact money, the error classes that
//! decide retry policy, the event envelope, card-number scrubbing, a clock, and a secret wrapper.
//! No I/O lives here.

pub mod clock;
pub mod error;
pub mod event;
pub mod money;
pub mod pan;
pub mod secret;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{ErrorClass, Failure};
pub use event::{EventKind, NewEvent};
pub use money::{Money, MoneyError};
pub use secret::Secret;
