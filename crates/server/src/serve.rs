//! `mfad serve`: open the store, start the front-ends, purge old audit records, stop on a signal.

use crate::cmd::Ctx;
use crate::config::Config;
use anyhow::Context;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

pub async fn run(config: Config) -> anyhow::Result<()> {
    let listen = config.radius_listen()?;
    let ctx = Ctx::open(config, server_ip(listen).to_string()).await?;
    tracing::info!(node = %ctx.config.node_name(), store = %mfad_store::redact(&ctx.config.store.url), "mfad starting");

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    if ctx.config.radius.enabled {
        let delay = Duration::from_millis(ctx.config.radius.reject_delay_ms);
        let options = mfad_radius::RadiusOptions::default().with_reject_delay(delay);
        let server =
            mfad_radius::RadiusServer::bind(listen, ctx.engine.clone(), ctx.store.clone(), options)
                .await
                .with_context(|| {
                    format!("cannot listen for RADIUS on {listen}; is another server using it?")
                })?;
        let mut stop = stop_rx.clone();
        tasks.spawn(async move {
            server
                .run(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
        });
    }
    tasks.spawn(purge_audit(
        ctx.store.clone(),
        ctx.clock.clone(),
        ctx.config.audit.retention_days,
        stop_rx,
    ));

    shutdown_signal().await;
    tracing::info!("stopping");
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    ctx.store.flush().await?;
    tracing::info!("stopped");
    Ok(())
}

/// The address audit records name for this node: the listen address, or when that is a
/// wildcard, the address of the interface the default route uses.
fn server_ip(listen: SocketAddr) -> IpAddr {
    if !listen.ip().is_unspecified() {
        return listen.ip();
    }
    // Connecting a UDP socket sends nothing; it only picks the outgoing interface.
    UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("192.0.2.1:9").map(|()| s))
        .and_then(|s| s.local_addr())
        .map_or(listen.ip(), |a| a.ip())
}

/// Deletes audit records past the retention period, now and every hour.
async fn purge_audit(
    store: std::sync::Arc<dyn mfad_core::store::Store>,
    clock: std::sync::Arc<dyn mfad_core::clock::Clock>,
    retention_days: u32,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let retention_ms = i64::from(retention_days) * 86_400_000;
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        match store.purge_audit(clock.now_ms() - retention_ms).await {
            Ok(0) => {}
            Ok(n) => tracing::info!("purged {n} audit records older than {retention_days} days"),
            Err(err) => tracing::warn!("audit purge failed, will retry in an hour: {err}"),
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}
