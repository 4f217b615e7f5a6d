//! The gateway's revocation view, fed by the authority's push stream.
//!
//! A task holds one long-lived `GET /revocations/stream` (server-sent events) open, applies
//! each event to the view, and on any failure reconnects with `Last-Event-ID` set to the
//! last applied event, so nothing is missed across authority restarts. Every message,
//! heartbeats included, renews the view's freshness; a view that has heard nothing for longer
//! than the configured bound is stale, and routes then fail closed (or open, per route).
//!
//! The stream also carries the authority's signed audit checkpoints: the feed keeps the
//! latest of each log (the gateway serves them on its ops port, `GET /audit/checkpoint`), so
//! `warden audit verify --witness` can hold the authority's log to what the gateway saw. A
//! checkpoint covering fewer entries than one already seen from the same log is refused,
//! logged as an alarm and counted: that log went back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use http_body_util::BodyExt as _;
use warden_api::stream::StreamMessage;
use warden_audit::{LatestCheckpoint, SignedCheckpoint, Witness as _};
use warden_core::claims::AccessClaims;
use warden_core::revocation::{RevocationView, Revoked};

use crate::http_client::{full, HttpClient};

/// Largest single stream message accepted; events are a few hundred bytes.
const MAX_MESSAGE_BYTES: usize = 64 * 1024;
const NEVER: u64 = u64::MAX;

pub struct RevocationFeed {
    view: RwLock<RevocationView>,
    started: Instant,
    /// Milliseconds after `started` of the last message heard, or [`NEVER`].
    last_heard_ms: AtomicU64,
    reconnects: AtomicU64,
    max_staleness: Duration,
    /// Flips to true at the first message, for a start that waits until it is caught up.
    caught_up: tokio::sync::watch::Sender<bool>,
    /// The authority's audit checkpoints, witnessed.
    checkpoints: LatestCheckpoint,
    /// Checkpoints refused because their log had gone back.
    checkpoint_regressions: AtomicU64,
}

impl RevocationFeed {
    pub fn new(max_staleness: Duration) -> Self {
        Self {
            view: RwLock::new(RevocationView::new()),
            started: Instant::now(),
            last_heard_ms: AtomicU64::new(NEVER),
            reconnects: AtomicU64::new(0),
            max_staleness,
            caught_up: tokio::sync::watch::channel(false).0,
            checkpoints: LatestCheckpoint::new(),
            checkpoint_regressions: AtomicU64::new(0),
        }
    }

    /// The checkpoint lines kept, one per authority log, as `GET /audit/checkpoint` serves
    /// them; `None` before the first.
    pub fn checkpoints(&self) -> Option<Vec<u8>> {
        self.checkpoints.latest()
    }

    pub fn checkpoint_regressions(&self) -> u64 {
        self.checkpoint_regressions.load(Ordering::Relaxed)
    }

    /// Waits (at most `limit`) until the stream has spoken once; false on timeout.
    pub async fn wait_caught_up(&self, limit: Duration) -> bool {
        let mut rx = self.caught_up.subscribe();
        let caught_up = tokio::time::timeout(limit, rx.wait_for(|c| *c))
            .await
            .is_ok();
        caught_up
    }

    pub fn check(&self, claims: &AccessClaims) -> Result<(), Revoked> {
        self.read().check(claims)
    }

    /// The honeytoken principal a token names, if any, whatever else is wrong with it.
    pub fn honeytoken_in(&self, claims: &AccessClaims) -> Option<String> {
        self.read().honeytoken_in(claims).map(str::to_owned)
    }

    /// How long since the stream last spoke; `None` if it never has.
    pub fn age(&self) -> Option<Duration> {
        let heard = self.last_heard_ms.load(Ordering::Acquire);
        (heard != NEVER).then(|| {
            let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(NEVER - 1);
            Duration::from_millis(now.saturating_sub(heard))
        })
    }

    /// Caught up once (the stream's first heartbeat follows the backlog) and heard from within
    /// the bound. Before the first heartbeat the view may lack events still being replayed.
    pub fn is_fresh(&self) -> bool {
        *self.caught_up.borrow() && self.age().is_some_and(|a| a <= self.max_staleness)
    }

    pub fn cursor(&self) -> i64 {
        self.read().cursor()
    }

    pub fn entries(&self) -> usize {
        self.read().len()
    }

    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }

    pub fn prune(&self, now: i64) {
        self.write().prune(now);
    }

    fn heard(&self) {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(NEVER - 1);
        self.last_heard_ms.store(now, Ordering::Release);
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, RevocationView> {
        self.view.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, RevocationView> {
        self.view.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies one stream message; `Err` means the stream is not speaking the protocol.
    fn on_message(&self, event: &str, data: &str) -> Result<(), String> {
        match StreamMessage::parse(event, data).map_err(|e| e.to_string())? {
            StreamMessage::Revocation(e) => self.write().apply(&e),
            StreamMessage::Heartbeat(h) => {
                // A heartbeat names the position the stream has sent up to; behind it, an
                // event went missing and the stream must be resumed from our cursor.
                if h.cursor > self.cursor() {
                    return Err(format!(
                        "stream is at {} but the view only at {}",
                        h.cursor,
                        self.cursor()
                    ));
                }
                // The authority greets with a heartbeat only after the backlog.
                self.caught_up
                    .send_if_modified(|c| !std::mem::replace(c, true));
            }
            StreamMessage::Checkpoint(line) => self.witness(&line)?,
            StreamMessage::Other => {}
        }
        self.heard();
        Ok(())
    }

    fn witness(&self, line: &str) -> Result<(), String> {
        let cp = SignedCheckpoint::parse(line).map_err(|e| format!("checkpoint message: {e}"))?;
        if let Err(e) = self.checkpoints.witness(&cp) {
            // Not a protocol fault: the stream stays, the older checkpoint kept stands.
            self.checkpoint_regressions.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                error = %e,
                kid = %cp.checkpoint.kid,
                "the authority's audit log went back: it was cut or rewritten since this gateway last saw it"
            );
        }
        Ok(())
    }

    /// Follows the stream until the feed is dropped.
    pub fn spawn(
        self: &Arc<Self>,
        client: HttpClient,
        api: Arc<crate::authority::AuthorityClient>,
    ) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(50);
            loop {
                let Some(feed) = weak.upgrade() else { return };
                let before = feed.cursor();
                // Each connection presents a live token: the stream ends when the one it was
                // opened with expires, or when the gateway's principal loses its standing.
                let outcome = match api.bearer().await {
                    Ok(token) => feed.follow(&client, api.authority(), &token).await,
                    Err(e) => format!("no token for the stream: {e}"),
                };
                if outcome.contains("answered 401") {
                    api.forget_token();
                }
                if feed.cursor() > before {
                    backoff = Duration::from_millis(50);
                }
                feed.reconnects.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(reason = %outcome, cursor = feed.cursor(), "revocation stream lost; reconnecting");
                drop(feed);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        })
    }

    /// One connection: returns why it ended.
    async fn follow(&self, client: &HttpClient, authority: &str, token: &str) -> String {
        let url = format!("{authority}/revocations/stream");
        let req = hyper::Request::get(&url)
            .header("authorization", format!("Bearer {token}"))
            .header("accept", "text/event-stream")
            .header("last-event-id", self.cursor().to_string())
            .body(full(bytes::Bytes::new()));
        let req = match req {
            Ok(r) => r,
            Err(e) => return e.to_string(),
        };
        let res = match tokio::time::timeout(Duration::from_secs(5), client.request(req)).await {
            Ok(Ok(res)) => res,
            Ok(Err(e)) => return format!("{url}: {e}"),
            Err(_) => return format!("{url}: timed out"),
        };
        if res.status() != hyper::StatusCode::OK {
            return format!("{url} answered {}", res.status());
        }
        let mut body = res.into_body();
        let mut buf = BytesMut::new();
        // Silence longer than the staleness bound means a dead connection, even if TCP has
        // not noticed.
        let patience = self.max_staleness.max(Duration::from_millis(500));
        loop {
            let frame = match tokio::time::timeout(patience, body.frame()).await {
                Err(_) => return "no message within the staleness bound".into(),
                Ok(None) => return "stream ended".into(),
                Ok(Some(Err(e))) => return e.to_string(),
                Ok(Some(Ok(f))) => f,
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            buf.extend_from_slice(&data);
            while let Some((len, sep)) = message_end(&buf) {
                let message = buf.split_to(len);
                buf.advance(sep);
                let (event, data) = parse_message(&message);
                if let Err(e) = self.on_message(event, &data) {
                    return e;
                }
            }
            if buf.len() > MAX_MESSAGE_BYTES {
                return "stream message too large".into();
            }
        }
    }
}

/// The length of the first complete message and of the blank line that ends it.
fn message_end(buf: &[u8]) -> Option<(usize, usize)> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    let crlf = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// The `event` name and the joined `data` lines of one message.
fn parse_message(message: &[u8]) -> (&str, String) {
    let text = std::str::from_utf8(message).unwrap_or_default();
    let mut event = "message";
    let mut data = String::new();
    for line in text.lines() {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => event = value,
            "data" => {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(value);
            }
            _ => {}
        }
    }
    (event, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_server_sent_events() {
        let buf =
            b"id: 3\nevent: revocation\ndata: {\"a\":1}\n\nevent: heartbeat\r\ndata: x\r\n\r\n";
        let (len, sep) = message_end(buf).unwrap_or_default();
        assert_eq!(
            parse_message(&buf[..len]),
            ("revocation", "{\"a\":1}".to_owned())
        );
        let rest = &buf[len + sep..];
        let (len, _) = message_end(rest).unwrap_or_default();
        assert_eq!(parse_message(&rest[..len]), ("heartbeat", "x".to_owned()));
    }

    #[test]
    fn a_heartbeat_ahead_of_the_view_is_a_lost_event() {
        let feed = RevocationFeed::new(Duration::from_secs(1));
        assert!(!feed.is_fresh(), "never heard: stale");
        let event =
            r#"{"seq":1,"kind":"token","jti":"j","issued_before":0,"horizon":9,"created_at":1}"#;
        assert!(feed.on_message("revocation", event).is_ok());
        assert!(
            !feed.is_fresh(),
            "still replaying the backlog: not caught up"
        );
        assert!(feed
            .on_message("heartbeat", r#"{"cursor":1,"time":1}"#)
            .is_ok());
        assert!(feed.is_fresh());
        assert!(feed
            .on_message("heartbeat", r#"{"cursor":5,"time":1}"#)
            .is_err());
        assert!(feed.on_message("revocation", "not json").is_err());
    }

    #[test]
    fn checkpoints_are_witnessed_and_one_from_a_log_that_went_back_is_refused() {
        use warden_audit::record::Checkpoint;
        use warden_audit::{CheckpointSigner as _, Digest};
        let key = warden_core::SigningKey::from_bytes(&[3u8; 32]).unwrap();
        let line = |count| {
            let cp = Checkpoint {
                seq: count,
                count,
                head: Digest::GENESIS.to_b64(),
                time: 1,
                kid: key.kid(),
            };
            String::from_utf8(cp.signed_line(&key)).unwrap()
        };
        let feed = RevocationFeed::new(Duration::from_secs(1));
        assert!(feed.checkpoints().is_none());
        assert!(feed.on_message("checkpoint", &line(7)).is_ok());
        assert!(
            feed.on_message("checkpoint", &line(3)).is_ok(),
            "a log that went back is an alarm, not a broken stream"
        );
        assert_eq!(feed.checkpoint_regressions(), 1);
        assert_eq!(feed.checkpoints(), Some(line(7).into_bytes()));
        assert!(feed.on_message("checkpoint", &line(9)).is_ok());
        assert_eq!(feed.checkpoints(), Some(line(9).into_bytes()));
        assert!(feed
            .on_message("checkpoint", r#"{"checkpoint":1}"#)
            .is_err());
    }
}
