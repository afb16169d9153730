//! A small pool of reader threads, each owning one read-only connection.
//!
//! WAL lets readers run beside the writer, and a connection per thread keeps each
//! thread's prepared-statement cache warm without locking.

use rusqlite::Connection;
use std::io;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

pub(super) type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

pub(super) struct Readers {
    queue: Option<mpsc::Sender<ReadJob>>,
    threads: Vec<JoinHandle<()>>,
}

impl Readers {
    pub(super) fn start(connections: Vec<Connection>) -> io::Result<Self> {
        let (queue, jobs) = mpsc::channel::<ReadJob>();
        let jobs = Arc::new(Mutex::new(jobs));
        let mut threads = Vec::with_capacity(connections.len());
        for (n, conn) in connections.into_iter().enumerate() {
            let jobs = Arc::clone(&jobs);
            let thread = std::thread::Builder::new()
                .name(format!("mfad-store-read-{n}"))
                .spawn(move || serve(&conn, &jobs))?;
            threads.push(thread);
        }
        Ok(Self {
            queue: Some(queue),
            threads,
        })
    }

    /// Queues a job; false when the pool has stopped.
    pub(super) fn submit(&self, job: ReadJob) -> bool {
        self.queue.as_ref().is_some_and(|q| q.send(job).is_ok())
    }
}

fn serve(conn: &Connection, jobs: &Mutex<mpsc::Receiver<ReadJob>>) {
    loop {
        // One idle thread waits on the queue while the others wait for the lock; a
        // poisoned lock only means another reader panicked, the queue is still sound.
        let next = {
            let queue = jobs
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            queue.recv()
        };
        match next {
            Ok(job) => job(conn),
            Err(mpsc::RecvError) => return,
        }
    }
}

impl Drop for Readers {
    fn drop(&mut self) {
        self.queue = None;
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}
