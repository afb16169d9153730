//! A UDP relay that records datagrams, to check what a real client puts on the wire.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Listens on 127.0.0.1 at port 0, forwards every datagram to `upstream` and relays the
/// answer back, keeping a copy of both. Stopped on drop.
pub struct UdpTap {
    addr: SocketAddr,
    log: Arc<Mutex<Log>>,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Log {
    requests: Vec<Vec<u8>>,
    replies: Vec<Vec<u8>>,
}

impl UdpTap {
    pub fn start(upstream: SocketAddr) -> UdpTap {
        UdpTap::dropping(upstream, 0)
    }

    /// Like [`UdpTap::start`], but the first `lost` requests are recorded and not
    /// forwarded, as if the network lost them.
    pub fn dropping(upstream: SocketAddr, lost: usize) -> UdpTap {
        let front = UdpSocket::bind("127.0.0.1:0").expect("bind the tap on 127.0.0.1:0");
        let addr = front.local_addr().expect("local_addr of a bound socket");
        let log = Arc::new(Mutex::new(Log::default()));
        let stopping = Arc::new(AtomicBool::new(false));
        let thread = {
            let (log, stopping) = (Arc::clone(&log), Arc::clone(&stopping));
            std::thread::spawn(move || relay(&front, upstream, &log, &stopping, lost))
        };
        UdpTap {
            addr,
            log,
            stopping,
            thread: Some(thread),
        }
    }

    /// Where clients send to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Datagrams received from clients, in arrival order.
    pub fn requests(&self) -> Vec<Vec<u8>> {
        lock(&self.log).requests.clone()
    }

    /// Datagrams the upstream answered, in arrival order.
    pub fn replies(&self) -> Vec<Vec<u8>> {
        lock(&self.log).replies.clone()
    }
}

impl Drop for UdpTap {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wakes the blocking receive; the relay sees the flag and returns.
        if let Ok(socket) = UdpSocket::bind("127.0.0.1:0") {
            let _ = socket.send_to(&[], self.addr);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn lock(log: &Mutex<Log>) -> std::sync::MutexGuard<'_, Log> {
    log.lock().unwrap_or_else(|e| e.into_inner())
}

fn relay(
    front: &UdpSocket,
    upstream: SocketAddr,
    log: &Arc<Mutex<Log>>,
    stopping: &AtomicBool,
    lost: usize,
) {
    let mut buf = [0u8; 65535];
    loop {
        let Ok((len, client)) = front.recv_from(&mut buf) else {
            return;
        };
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        let request = buf.get(..len).unwrap_or_default().to_vec();
        let seen = {
            let mut log = lock(log);
            log.requests.push(request.clone());
            log.requests.len()
        };
        if seen <= lost {
            continue;
        }
        let (Ok(front), log) = (front.try_clone(), Arc::clone(log)) else {
            return;
        };
        // One thread per request so a slow answer does not hold up the next request.
        std::thread::spawn(move || {
            let local = if upstream.is_ipv4() {
                "127.0.0.1:0"
            } else {
                "[::1]:0"
            };
            let Ok(socket) = UdpSocket::bind(local) else {
                return;
            };
            let mut buf = [0u8; 65535];
            let sent = socket
                .set_read_timeout(Some(REPLY_TIMEOUT))
                .and_then(|()| socket.send_to(&request, upstream));
            if sent.is_err() {
                return;
            }
            if let Ok((len, _)) = socket.recv_from(&mut buf) {
                let reply = buf.get(..len).unwrap_or_default().to_vec();
                let _ = front.send_to(&reply, client);
                lock(&log).replies.push(reply);
            }
        });
    }
}

/// The attribute types of a RADIUS packet in order (RFC 2865 §3 header of 20 octets, then
/// §5 type-length-value attributes); stops at the first malformed attribute.
pub fn attribute_types(packet: &[u8]) -> Vec<u8> {
    let declared = match *packet {
        [_, _, high, low, ..] => usize::from(u16::from_be_bytes([high, low])),
        _ => 0,
    };
    let mut rest = packet
        .get(20..declared.min(packet.len()))
        .unwrap_or_default();
    let mut types = Vec::new();
    while let [kind, len, ..] = *rest {
        let len = usize::from(len);
        if len < 2 || len > rest.len() {
            break;
        }
        types.push(kind);
        rest = rest.get(len..).unwrap_or_default();
    }
    types
}

#[cfg(test)]
mod tests {
    use super::attribute_types;

    #[test]
    fn attribute_types_follow_the_header() {
        let mut packet = vec![1, 7, 0, 0];
        packet.extend([0u8; 16]);
        packet.extend([1, 5, b'b', b'o', b'b']); // User-Name
        packet.extend([80, 18]); // Message-Authenticator
        packet.extend([0u8; 16]);
        let len = u16::try_from(packet.len()).unwrap().to_be_bytes();
        packet[2..4].copy_from_slice(&len);
        assert_eq!(attribute_types(&packet), vec![1, 80]);
        packet.extend([2, 40]); // padding past the declared length is ignored
        assert_eq!(attribute_types(&packet), vec![1, 80]);
        assert_eq!(attribute_types(&[1, 2]), Vec::<u8>::new());
    }
}
