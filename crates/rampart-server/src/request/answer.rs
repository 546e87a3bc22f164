//! How a step of the spine ends early: a refusal (answered as JSON, with the route's
//! header policy when a route matched) or a closed connection.

use crate::wire::refusal::Refusal;

/// An early end.
#[derive(Debug)]
pub enum Answer {
    /// Refused, with the route when one matched (its header policy applies).
    Refuse(Refusal, Option<usize>),
    /// The connection is closed without an answer (`misdirected = "close"`).
    Close,
}

impl From<Refusal> for Answer {
    fn from(r: Refusal) -> Self {
        Answer::Refuse(r, None)
    }
}
