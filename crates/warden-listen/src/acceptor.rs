//! A listener's accept step: a connection under the cap comes out with its permit; one
//! beyond the cap is answered 503 and closed here; accept errors are waited out here. The
//! caller never sees either, so every accept loop gets the same behaviour.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::errors::AcceptErrors;
use crate::limit::{ConnectionLimit, Permit};
use crate::refusal;
use crate::throttle::Throttle;

/// Refused connections kept open at once until their clients close (so that closing cannot
/// reset the connection before the client has read the answer). Each holds a descriptor
/// beyond the cap for up to a second; past this many, a refused connection is answered and
/// closed at once, so a flood at the cap costs a bounded number of descriptors.
const LINGERING_AT_ONCE: usize = 64;
const LOG_REFUSALS_EVERY: Duration = Duration::from_secs(1);

pub struct Acceptor {
    listener: TcpListener,
    limit: ConnectionLimit,
    lingering: Arc<Semaphore>,
    errors: AcceptErrors,
    refusals: Throttle,
}

/// A connection under the cap. Keep `permit` alive exactly as long as the connection.
#[derive(Debug)]
pub struct Admitted {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    pub permit: Permit,
}

impl Acceptor {
    pub fn new(listener: TcpListener, limit: ConnectionLimit) -> Self {
        Self {
            listener,
            limit,
            lingering: Arc::new(Semaphore::new(LINGERING_AT_ONCE)),
            errors: AcceptErrors::new(),
            refusals: Throttle::new(LOG_REFUSALS_EVERY),
        }
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn limit(&self) -> &ConnectionLimit {
        &self.limit
    }

    /// The next connection under the cap; waits out accept errors and refuses connections
    /// beyond the cap meanwhile, so it only ever returns a connection to serve.
    ///
    /// Cancel-safe: dropped before it returns, it loses no admitted connection (a refused
    /// one has been answered already).
    pub async fn accept(&mut self) -> Admitted {
        loop {
            match self.listener.accept().await {
                Ok((stream, peer)) => {
                    self.errors.succeeded();
                    match self.limit.try_admit() {
                        Some(permit) => {
                            return Admitted {
                                stream,
                                peer,
                                permit,
                            }
                        }
                        None => self.refuse(stream, peer),
                    }
                }
                Err(e) => {
                    if let Some(wait) = self.errors.failed(&e, Instant::now()) {
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        }
    }

    fn refuse(&mut self, stream: TcpStream, peer: SocketAddr) {
        if let Some(suppressed) = self.refusals.admit(Instant::now()) {
            tracing::warn!(
                max_connections = self.limit.max(),
                %peer,
                suppressed,
                "connection limit reached; refusing with 503"
            );
        }
        // Handled synchronously: the socket calls involved never wait.
        let stream = match stream.into_std() {
            Ok(s) => s,
            Err(_) => return,
        };
        refusal::refuse(stream, Arc::clone(&self.lingering).try_acquire_owned().ok());
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    async fn read_all(mut s: TcpStream) -> String {
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
        assert!(matches!(read, Ok(Ok(_))), "not closed: {read:?}");
        String::from_utf8_lossy(&buf).into_owned()
    }

    #[tokio::test]
    async fn beyond_the_cap_a_client_reads_503_and_the_connection_closes() {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| unreachable!("{e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| unreachable!("{e}"));
        let mut acceptor = Acceptor::new(listener, ConnectionLimit::new(1));
        let limit = acceptor.limit().clone();
        let (admitted_tx, mut admitted_rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let _ = admitted_tx.send(acceptor.accept().await);
            }
        });
        let first = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| unreachable!("{e}"));
        let held = admitted_rx.recv().await.unwrap_or_else(|| unreachable!());
        assert_eq!(limit.open(), 1);

        let mut second = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| unreachable!("{e}"));
        second
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap_or_else(|e| unreachable!("{e}"));
        let answer = read_all(second).await;
        assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
        assert!(answer.contains("retry-after: 1\r\n"), "{answer}");
        assert_eq!(limit.refused_total(), 1);

        drop(held);
        drop(first);
        assert_eq!(limit.open(), 0);
        let _third = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert!(
            admitted_rx.recv().await.is_some(),
            "served again once a place is free"
        );
    }

    #[tokio::test]
    async fn with_every_lingering_slot_taken_a_refusal_is_still_answered() {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| unreachable!("{e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| unreachable!("{e}"));
        let mut acceptor = Acceptor::new(listener, ConnectionLimit::new(1));
        tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                held.push(acceptor.accept().await);
            }
        });
        let _first = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| unreachable!("{e}"));
        // Refused clients that never close hold every lingering slot for a while.
        let mut quiet = Vec::new();
        for _ in 0..LINGERING_AT_ONCE + 8 {
            quiet.push(
                TcpStream::connect(addr)
                    .await
                    .unwrap_or_else(|e| unreachable!("{e}")),
            );
        }
        let mut late = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| unreachable!("{e}"));
        late.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap_or_else(|e| unreachable!("{e}"));
        let answer = read_all(late).await;
        assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
    }
}
