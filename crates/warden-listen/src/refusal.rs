//! The one answer a listener gives at its cap: `503 Service Unavailable`, retry in a
//! second, and the connection closed. It is written before a byte of the request is read,
//! so it is the same for every client and never depends on what a client sent.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// The whole response, problem+json like every other refusal of the authority and gateway.
pub(crate) const RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/problem+json\r\n\
content-length: 117\r\n\
retry-after: 1\r\n\
connection: close\r\n\
\r\n\
{\"type\":\"about:blank\",\"title\":\"Service Unavailable\",\"status\":503,\"detail\":\"too many open connections; retry shortly\"}";

/// How long a refused client may hold its connection, whatever it does.
const LINGER: Duration = Duration::from_secs(1);
/// Most request bytes read (and dropped) from a refused client.
const MAX_DRAIN: usize = 64 * 1024;

/// Answers `stream` with [`RESPONSE`] and closes it, within [`LINGER`].
pub(crate) async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(LINGER, answer(&mut stream)).await;
}

async fn answer(stream: &mut TcpStream) -> std::io::Result<()> {
    stream.write_all(RESPONSE).await?;
    stream.shutdown().await?;
    // Closing a socket with unread request bytes makes the kernel send a reset, and a reset
    // can destroy the answer before the client has read it: so read what the client sends
    // until it closes its side (it does once it has read the answer).
    let mut buf = [0u8; 4096];
    let mut drained = 0;
    while drained < MAX_DRAIN {
        match stream.read(&mut buf).await? {
            0 => break,
            n => drained += n,
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
