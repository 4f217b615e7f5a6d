//! The one answer a listener gives at its cap: `503 Service Unavailable`, retry in a
//! second, and the connection closed. It is the same for every client: what a refused
//! client sent is read only to be thrown away.

use std::io::{Read as _, Write as _};
use std::net::Shutdown;
use std::time::Duration;

use tokio::io::AsyncReadExt as _;
use tokio::sync::OwnedSemaphorePermit;

/// The whole response, problem+json like every other refusal of the authority and gateway.
pub(crate) const RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/problem+json\r\n\
content-length: 117\r\n\
retry-after: 1\r\n\
connection: close\r\n\
\r\n\
{\"type\":\"about:blank\",\"title\":\"Service Unavailable\",\"status\":503,\"detail\":\"too many open connections; retry shortly\"}";

/// Longest a refused connection is kept open, whatever its client does.
const LINGER: Duration = Duration::from_secs(1);
/// A refused client that sends nothing for this long is not going to: close.
const QUIET: Duration = Duration::from_millis(250);
/// Most request bytes read (and dropped) from a refused client.
const MAX_DRAIN: usize = 64 * 1024;

/// Answers `stream` at once, without waiting on anything: a fresh connection's empty send
/// buffer takes the whole response. With a `linger` slot, a task then waits (briefly) for
/// the client to close first; without one, the connection is closed now.
pub(crate) fn refuse(stream: std::net::TcpStream, linger: Option<OwnedSemaphorePermit>) {
    // Closing a socket with unread request bytes makes the kernel send a reset, and a reset
    // can destroy the answer before the client has read it: so what has arrived is read
    // first, and with a slot, what arrives until the client closes its side.
    drain_arrived(&stream);
    if (&stream).write_all(RESPONSE).is_err() {
        return;
    }
    let _ = stream.shutdown(Shutdown::Write);
    if let Some(slot) = linger {
        tokio::spawn(async move {
            let _slot = slot;
            let _ = tokio::time::timeout(LINGER, drain_until_closed(stream)).await;
        });
    }
}

/// Reads what the client has sent so far; the socket is non-blocking, so this never waits.
fn drain_arrived(mut stream: &std::net::TcpStream) {
    let mut buf = [0u8; 4096];
    let mut drained = 0;
    while drained < MAX_DRAIN {
        match stream.read(&mut buf) {
            Ok(n) if n > 0 => drained += n,
            _ => return,
        }
    }
}

async fn drain_until_closed(stream: std::net::TcpStream) -> std::io::Result<()> {
    let mut stream = tokio::net::TcpStream::from_std(stream)?;
    let mut buf = [0u8; 4096];
    let mut drained = 0;
    while drained < MAX_DRAIN {
        match tokio::time::timeout(QUIET, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => drained += n,
            // Closed, failed, or quiet: nothing more worth waiting for.
            _ => break,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_is_the_body_length() {
        let text = String::from_utf8_lossy(RESPONSE);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or_default();
        let declared = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .and_then(|n| n.parse::<usize>().ok());
        assert_eq!(declared, Some(body.len()));
        let lines: Vec<&str> = head.split("\r\n").collect();
        assert!(lines[0].starts_with("HTTP/1.1 503 "));
        assert!(lines.contains(&"retry-after: 1"));
        assert!(lines.contains(&"connection: close"));
    }
}
