//! A listener on a real socket, serving a test router: client addresses behind trusted
//! proxies, the request limits, and a graceful stop.

// Tests report failures by panicking.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use axum::routing::{get, post};
use axum::Router;
use mfad_http::extract::ClientAddr;
use mfad_http::{HttpConfig, Limits, Listener, ListenerConfig, Surface};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};

/// `/slow` reports on `started` when it begins, then takes a moment.
fn router(started: mpsc::Sender<()>) -> Router {
    Router::new()
        .route(
            "/whoami",
            get(|ClientAddr(ip): ClientAddr| async move { ip.to_string() }),
        )
        .route("/echo", post(|body: String| async move { body }))
        .route(
            "/slow",
            get(move || async move {
                let _ = started.send(()).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
                "finished"
            }),
        )
}

struct Served {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    /// Resolves when the listener's task ends.
    done: oneshot::Receiver<()>,
    /// A message each time `/slow` begins.
    started: mpsc::Receiver<()>,
}

/// A plain loopback listener with `config`'s limits, serving [`router`].
async fn serve(config: HttpConfig) -> Served {
    let listener = ListenerConfig {
        listen: "127.0.0.1:0".into(),
        serve: vec![Surface::Api],
        tls: false,
        tls_cert_file: Default::default(),
        tls_key_file: Default::default(),
    };
    let bound = Listener::bind(&listener, None, Limits::from_config(&config))
        .await
        .unwrap();
    let addr = bound.local_addr();
    let (stop, stopped) = watch::channel(false);
    let (done_tx, done) = oneshot::channel();
    let (started_tx, started) = mpsc::channel(4);
    tokio::spawn(async move {
        bound.serve(router(started_tx), stopped).await;
        let _ = done_tx.send(());
    });
    Served {
        addr,
        stop,
        done,
        started,
    }
}

/// Sends `request` as is and reads the answer until the server closes.
async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

async fn whoami(addr: SocketAddr, forwarded_for: &str) -> String {
    let answer = raw(
        addr,
        format!(
            "GET /whoami HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: {forwarded_for}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    answer.rsplit("\r\n\r\n").next().unwrap().to_owned()
}

#[tokio::test]
async fn forwarded_for_names_the_client_only_behind_a_trusted_proxy() {
    let untrusting = serve(HttpConfig::default()).await;
    assert_eq!(whoami(untrusting.addr, "203.0.113.9").await, "127.0.0.1");

    let trusting = HttpConfig {
        trusted_proxies: vec!["127.0.0.0/8".parse().unwrap()],
        ..HttpConfig::default()
    };
    let behind_proxy = serve(trusting).await;
    let trusting = behind_proxy.addr;
    assert_eq!(whoami(trusting, "203.0.113.9").await, "203.0.113.9");
    // What the client wrote itself, left of what the proxy appended, is not believed.
    assert_eq!(
        whoami(trusting, "198.51.100.1, 203.0.113.9").await,
        "203.0.113.9"
    );
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_and_a_slow_one_cut_off() {
    let config = HttpConfig {
        max_body_bytes: 1024,
        request_timeout_seconds: 1,
        ..HttpConfig::default()
    };
    // Kept: dropping it stops the listener.
    let served = serve(config).await;
    let addr = served.addr;
    let small = raw(
        addr,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    )
    .await;
    assert!(small.starts_with("HTTP/1.1 200"), "{small}");
    assert!(small.ends_with("hello"), "{small}");

    let big = format!(
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4096\r\nConnection: close\r\n\r\n{}",
        "a".repeat(4096)
    );
    let answer = raw(addr, big.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    // Announces a body and sends a little of it, then nothing.
    let answer = raw(
        addr,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly this",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

#[tokio::test]
async fn a_stop_lets_the_request_in_flight_finish_and_refuses_new_connections() {
    let mut served = serve(HttpConfig::default()).await;
    let mut stream = TcpStream::connect(served.addr).await.unwrap();
    stream
        .write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    served.started.recv().await.unwrap();
    served.stop.send(true).unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("finished"), "{answer}");
    tokio::time::timeout(Duration::from_secs(10), served.done)
        .await
        .unwrap()
        .unwrap();
    assert!(
        TcpStream::connect(served.addr).await.is_err(),
        "no longer listening"
    );
}
