//! The UDP transport: socket, receive tasks, bounded concurrency, client table refresh and shutdown.

use crate::clients::{LiveClients, RadiusClient};
use crate::dedup::DedupCache;
use crate::handler::Handler;
use crate::relay::Relays;
use crate::stats::{Counter, Stats};
use crate::upstream::Targets;
use mfad_core::engine::Engine;
use mfad_core::store::Store;
use mfad_radius_proto::MAX_PACKET_LEN;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::{watch, Semaphore};

/// Tuning of the RADIUS front-end. `Default` gives the production values.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RadiusOptions {
    /// How often the client table is reloaded from the store, so that
    /// `mfad client add` takes effect without a restart.
    pub client_refresh: Duration,
    /// Requests decided at once; further datagrams wait in the socket buffer.
    pub max_in_flight: usize,
    /// Tasks reading the one socket.
    pub receive_tasks: usize,
    /// How long a reply is kept for retransmissions (RFC 5080 §2.2.2).
    pub duplicate_window: Duration,
    /// Most requests remembered for duplicate detection.
    pub duplicate_capacity: usize,
    /// Delay before an Access-Reject is sent, to slow down guessing (as
    /// FreeRADIUS' `reject_delay`). It does not occupy an in-flight slot.
    pub reject_delay: Duration,
    /// How long shutdown waits for requests being decided.
    pub shutdown_grace: Duration,
}

impl Default for RadiusOptions {
    fn default() -> Self {
        RadiusOptions {
            client_refresh: Duration::from_secs(5),
            max_in_flight: 1024,
            receive_tasks: 2,
            duplicate_window: Duration::from_secs(30),
            duplicate_capacity: 100_000,
            reject_delay: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

impl RadiusOptions {
    pub fn with_client_refresh(mut self, every: Duration) -> Self {
        self.client_refresh = every;
        self
    }
    pub fn with_max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n;
        self
    }
    pub fn with_receive_tasks(mut self, n: usize) -> Self {
        self.receive_tasks = n;
        self
    }
    pub fn with_duplicate_window(mut self, window: Duration) -> Self {
        self.duplicate_window = window;
        self
    }
    pub fn with_duplicate_capacity(mut self, n: usize) -> Self {
        self.duplicate_capacity = n;
        self
    }
    pub fn with_reject_delay(mut self, delay: Duration) -> Self {
        self.reject_delay = delay;
        self
    }
    pub fn with_shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }
}

/// How often the same unknown source is logged.
const UNKNOWN_SOURCE_LOG_INTERVAL: Duration = Duration::from_secs(60);
/// Bound on remembered unknown sources, so a spoofed flood cannot grow it.
const UNKNOWN_SOURCE_MEMORY: usize = 10_000;

/// The RADIUS server: bind it, then `run` it until shutdown.
pub struct RadiusServer {
    socket: Arc<UdpSocket>,
    local_addr: SocketAddr,
    store: Arc<dyn Store>,
    options: RadiusOptions,
    shared: Arc<Shared>,
}

/// State every task of one server uses.
struct Shared {
    handler: Handler,
    clients: LiveClients,
    unknown_sources: Mutex<HashMap<IpAddr, Instant>>,
}

impl Shared {
    fn stats(&self) -> &Stats {
        &self.handler.stats
    }

    /// Counts a datagram from a source no client covers; logs it at most once
    /// a minute per address.
    fn unknown_source(&self, source: SocketAddr) {
        self.stats().bump(Counter::DroppedUnknownClient);
        let now = Instant::now();
        let ip = source.ip().to_canonical();
        let mut seen = self
            .unknown_sources
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(last) = seen.get(&ip) {
            if now.duration_since(*last) < UNKNOWN_SOURCE_LOG_INTERVAL {
                return;
            }
        }
        if seen.len() >= UNKNOWN_SOURCE_MEMORY {
            seen.retain(|_, last| now.duration_since(*last) < UNKNOWN_SOURCE_LOG_INTERVAL);
            if seen.len() >= UNKNOWN_SOURCE_MEMORY {
                // Still full of fresh entries: a flood. Stay quiet rather
                // than log every spoofed address.
                return;
            }
        }
        seen.insert(ip, now);
        tracing::warn!(
            "dropping RADIUS packets from {ip}, which matches no client; add it with 'mfad client add NAME --address {ip} --secret ...'"
        );
    }
}

impl RadiusServer {
    /// Binds the UDP socket and loads the client table. Logs
    /// `radius listening on ADDR` with the bound address (port 0 picks one).
    pub async fn bind(
        addr: SocketAddr,
        engine: Arc<Engine>,
        store: Arc<dyn Store>,
        options: RadiusOptions,
    ) -> io::Result<Self> {
        Self::bind_with_targets(addr, engine, store, options, None).await
    }

    /// As [`RadiusServer::bind`], forwarding `first_factor = radius` clients to `targets`.
    pub async fn bind_with_targets(
        addr: SocketAddr,
        engine: Arc<Engine>,
        store: Arc<dyn Store>,
        options: RadiusOptions,
        targets: Option<Arc<Targets>>,
    ) -> io::Result<Self> {
        let socket = UdpSocket::bind(addr).await?;
        let local_addr = socket.local_addr()?;
        let handler = Handler {
            engine,
            stats: Arc::new(Stats::default()),
            dedup: Arc::new(Mutex::new(DedupCache::new(
                options.duplicate_window,
                options.duplicate_capacity,
            ))),
            reject_delay: options.reject_delay,
            targets,
            relays: Mutex::new(Relays::default()),
        };
        let server = RadiusServer {
            socket: Arc::new(socket),
            local_addr,
            store,
            options,
            shared: Arc::new(Shared {
                handler,
                clients: LiveClients::default(),
                unknown_sources: Mutex::new(HashMap::new()),
            }),
        };
        // A store that is down now is retried by the refresh loop; until then
        // every request is dropped, which fails closed.
        server
            .shared
            .clients
            .apply(server.store.list_clients().await);
        tracing::info!("radius listening on {local_addr}");
        Ok(server)
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Live counters; the handle stays valid after `run` has taken the server.
    pub fn stats(&self) -> Arc<Stats> {
        Arc::clone(&self.shared.handler.stats)
    }

    /// Serves until `shutdown` completes, then stops reading and waits up to
    /// the shutdown grace for requests being decided.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let RadiusServer {
            socket,
            local_addr,
            store,
            options,
            shared,
        } = self;
        let (stop_tx, stop_rx) = watch::channel(false);
        let in_flight = Arc::new(Semaphore::new(options.max_in_flight.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..options.receive_tasks.max(1) {
            tasks.spawn(receive_loop(
                Arc::clone(&socket),
                Arc::clone(&shared),
                Arc::clone(&in_flight),
                stop_rx.clone(),
            ));
        }
        {
            let shared = Arc::clone(&shared);
            let mut stop = stop_rx.clone();
            let every = options.client_refresh.max(Duration::from_millis(10));
            tasks.spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick.tick().await; // the first tick is immediate; bind loaded the table
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = stop.wait_for(|s| *s) => return,
                    }
                    shared.clients.apply(store.list_clients().await);
                }
            });
        }
        shutdown.await;
        tracing::info!("radius on {local_addr} stopping");
        let _ = stop_tx.send(true);
        while tasks.join_next().await.is_some() {}
        // Every request holds a permit until it is decided: having them all
        // back means the engine has finished (and audited) every one.
        let all = u32::try_from(options.max_in_flight.max(1)).unwrap_or(u32::MAX);
        if tokio::time::timeout(options.shutdown_grace, in_flight.acquire_many(all))
            .await
            .is_err()
        {
            tracing::warn!("radius stopped with requests still being decided");
        }
        tracing::info!("radius on {local_addr} stopped");
    }
}

/// Reads datagrams until told to stop, spawning one task per request.
async fn receive_loop(
    socket: Arc<UdpSocket>,
    shared: Arc<Shared>,
    in_flight: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) {
    // RFC 2865 §3: 4096 is the largest packet; anything past it is padding.
    let mut buf = vec![0u8; MAX_PACKET_LEN];
    loop {
        // Waiting for a slot before reading leaves excess load in the socket
        // buffer, where the kernel drops it, instead of in memory.
        let permit = tokio::select! {
            permit = Arc::clone(&in_flight).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
            _ = stop.wait_for(|s| *s) => return,
        };
        let (len, source) = tokio::select! {
            received = socket.recv_from(&mut buf) => match received {
                Ok(received) => received,
                Err(err) => {
                    // E.g. ICMP port unreachable reported on Linux for an
                    // earlier reply: not fatal to the socket.
                    tracing::debug!("radius receive error: {err}");
                    continue;
                }
            },
            _ = stop.wait_for(|s| *s) => return,
        };
        shared.stats().bump(Counter::Received);
        let Some(client) = find_client(&shared, source) else {
            shared.unknown_source(source);
            continue;
        };
        let raw: Vec<u8> = buf.get(..len).unwrap_or_default().to_vec();
        let socket = Arc::clone(&socket);
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let outgoing = shared.handler.handle(&raw, source, &client).await;
            drop(permit);
            let Some(outgoing) = outgoing else {
                return;
            };
            if !outgoing.delay.is_zero() {
                tokio::time::sleep(outgoing.delay).await;
            }
            if let Some(pending) = outgoing.pending {
                pending.finish(Arc::clone(&outgoing.bytes));
            }
            if let Err(err) = socket.send_to(&outgoing.bytes, source).await {
                tracing::warn!(client = %client.info.name, %source, "cannot send RADIUS reply: {err}");
            }
        });
    }
}

fn find_client(shared: &Shared, source: SocketAddr) -> Option<Arc<RadiusClient>> {
    shared.clients.current().find(source.ip()).cloned()
}
