//! Gateways that a running node replaces when their stored settings change (a new
//! credential, a new provider URL), without dropping the webhooks they serve.

use std::sync::{Arc, OnceLock, PoisonError, RwLock};

/// A gateway whose provider calls back: it learns the URL its webhooks are reached at
/// once the HTTP listeners are bound (`[http] public_url`, else the listener serving
/// them).
pub trait Listening {
    fn listening_at(&self, url: &str);
}

/// The gateway in force. Messages, calls and webhook checks each use the one in force
/// when they start.
pub struct Live<G> {
    gateway: RwLock<Arc<G>>,
    /// The webhooks' URL, for gateways made after it was learnt.
    listening: OnceLock<String>,
}

impl<G: Listening> Live<G> {
    pub fn new(gateway: G) -> Self {
        Self {
            gateway: RwLock::new(Arc::new(gateway)),
            listening: OnceLock::new(),
        }
    }

    /// The gateway in force.
    pub fn current(&self) -> Arc<G> {
        Arc::clone(&self.gateway.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Puts `gateway` in force for what starts next.
    pub fn replace(&self, gateway: G) {
        if let Some(url) = self.listening.get() {
            gateway.listening_at(url);
        }
        *self.gateway.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(gateway);
    }

    /// Tells the gateway in force, and every later one, the URL (scheme, host, port and
    /// any path prefix) the webhooks are reached at.
    pub fn listening_at(&self, url: &str) {
        let _ = self.listening.set(url.to_owned());
        self.current().listening_at(url);
    }
}
