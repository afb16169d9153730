//! The upstream first factor: the [`Upstream`] trait through which the engine asks another
//! authentication server (a target RADIUS server) about the first factor.
//!
//! The engine does not know how the request reaches that server: the front-end that
//! received the request implements the trait for it, since only it holds what must be
//! forwarded (for RADIUS: the MS-CHAP attributes, the hidden password). The rule that a
//! passed first factor is followed by the second one lives in the engine.

use async_trait::async_trait;
use std::fmt;
use std::sync::Arc;

/// What the upstream server answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpstreamAnswer {
    /// The first factor is right.
    Accept,
    /// The first factor is wrong.
    Reject,
    /// The upstream server asks the user something first (its own challenge). The answer
    /// must go back to the same `target` with its `state`.
    Challenge {
        target: String,
        state: Vec<u8>,
        prompt: String,
    },
}

/// No answer: every target down, timing out or answering with bad authenticators.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamError {
    #[error("upstream unavailable: {0}")]
    Unavailable(String),
}

/// Where the answer to an upstream challenge goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resume {
    pub target: String,
    pub state: Vec<u8>,
}

/// The first factor of one request, as the front-end that received it can forward it.
#[async_trait]
pub trait Upstream: Send + Sync + 'static {
    /// Asks the upstream server. `password`: the password to send in place of the one
    /// received (the part before a code that mfad keeps for itself); `None` forwards the
    /// request's own credentials as they are (MS-CHAP responses, or the answer to an
    /// upstream challenge). `resume`: the upstream challenge this request answers.
    async fn check(
        &self,
        password: Option<&str>,
        resume: Option<&Resume>,
    ) -> Result<UpstreamAnswer, UpstreamError>;
}

/// An [`Upstream`] handle in a request: cloneable, and `Debug` without its contents.
#[derive(Clone)]
pub struct UpstreamHandle(pub Arc<dyn Upstream>);

impl fmt::Debug for UpstreamHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Upstream(..)")
    }
}
