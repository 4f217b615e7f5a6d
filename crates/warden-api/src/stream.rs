//! The revocation stream (`GET /revocations/stream`, server-sent events) as the authority
//! sends it and a gateway reads it.
//!
//! Three kinds of message, each named by its SSE `event` field:
//! - `revocation` (with `id: <seq>`): a [`RevocationEvent`];
//! - `heartbeat`: a [`Heartbeat`], at least every heartbeat interval and first thing once the
//!   backlog has been sent, so a subscriber can tell a quiet stream from a dead one;
//! - `checkpoint`: the authority's latest signed audit checkpoint, exactly the line its log
//!   wrote (`{"checkpoint":{…},"sig":"…"}`), so that every subscriber is a witness of the log.
//!
//! Messages of other names are ignored by readers, so the stream can grow new kinds.

use serde::{Deserialize, Serialize};
use warden_core::revocation::RevocationEvent;

/// The SSE `event` names.
pub const REVOCATION: &str = "revocation";
pub const HEARTBEAT: &str = "heartbeat";
pub const CHECKPOINT: &str = "checkpoint";

/// Where the stream stands: every revocation up to `cursor` has been sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub cursor: i64,
    /// The authority's clock, seconds since the epoch.
    pub time: i64,
}

/// One message read off the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamMessage {
    Revocation(RevocationEvent),
    Heartbeat(Heartbeat),
    /// The checkpoint line as sent; its reader parses and keeps it (`warden-audit` owns the
    /// format, and a witness must keep the exact bytes the signature covers).
    Checkpoint(String),
    /// A kind this reader does not know.
    Other,
}

/// A message whose data does not match its event name.
#[derive(Debug, thiserror::Error)]
#[error("{event} message: {source}")]
pub struct StreamError {
    pub event: &'static str,
    #[source]
    pub source: serde_json::Error,
}

impl StreamMessage {
    /// Reads one message from its event name and its (joined) data lines.
    pub fn parse(event: &str, data: &str) -> Result<Self, StreamError> {
        let err = |event| move |source| StreamError { event, source };
        Ok(match event {
            REVOCATION => Self::Revocation(serde_json::from_str(data).map_err(err(REVOCATION))?),
            HEARTBEAT => Self::Heartbeat(serde_json::from_str(data).map_err(err(HEARTBEAT))?),
            CHECKPOINT => {
                // Only JSON is kept; the witness checks the rest.
                serde_json::from_str::<serde::de::IgnoredAny>(data).map_err(err(CHECKPOINT))?;
                Self::Checkpoint(data.to_owned())
            }
            _ => Self::Other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_parses_and_a_mismatched_body_is_named() {
        assert_eq!(
            StreamMessage::parse(HEARTBEAT, r#"{"cursor":4,"time":9}"#).ok(),
            Some(StreamMessage::Heartbeat(Heartbeat { cursor: 4, time: 9 }))
        );
        assert!(matches!(
            StreamMessage::parse(CHECKPOINT, r#"{"checkpoint":{},"sig":"x"}"#),
            Ok(StreamMessage::Checkpoint(line)) if line.starts_with(r#"{"checkpoint""#)
        ));
        assert_eq!(
            StreamMessage::parse("something-new", "whatever").ok(),
            Some(StreamMessage::Other)
        );
        let bad = StreamMessage::parse(REVOCATION, r#"{"seq":"one"}"#).err();
        assert!(bad.is_some_and(|e| e.to_string().starts_with("revocation message")));
        assert!(StreamMessage::parse(CHECKPOINT, "not json").is_err());
    }
}
