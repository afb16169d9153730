//! Gateways that a running node replaces when their stored settings change (a new
//! credential, a new provider URL), without dropping the webhooks they serve.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

/// A gateway whose provider calls back: it learns the webhook listener's address once the
/// listener is bound (its public URL unless one was configured).
pub trait Listening {
    fn listening_on(&self, addr: SocketAddr);
}

/// The gateway in force. Messages, calls and webhook checks each use the one in force
/// when they start.
pub struct Live<G> {
    gateway: RwLock<Arc<G>>,
    /// The webhook listener's address, for gateways made after it was bound.
    listening: OnceLock<SocketAddr>,
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
        if let Some(addr) = self.listening.get() {
            gateway.listening_on(*addr);
        }
        *self.gateway.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(gateway);
    }

    /// Tells the gateway in force, and every later one, where the webhooks are served.
    pub fn listening_on(&self, addr: SocketAddr) {
        let _ = self.listening.set(addr);
        self.current().listening_on(addr);
    }
}
