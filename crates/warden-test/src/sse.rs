//! Server-sent events (the revocation stream) read off a streaming response.

use std::time::Duration;

use serde_json::Value;

/// One server-sent event.
#[derive(Debug, Clone, Default)]
pub struct SseMessage {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

impl SseMessage {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap()
    }
}

/// Reads server-sent events off a streaming response.
pub struct SseReader {
    res: reqwest::Response,
    buf: String,
}

impl SseReader {
    pub fn new(res: reqwest::Response) -> Self {
        Self {
            res,
            buf: String::new(),
        }
    }

    /// The next event (comment-only blocks skipped), waiting at most `within`.
    pub async fn next_within(&mut self, within: Duration) -> SseMessage {
        tokio::time::timeout(within, self.next_message())
            .await
            .expect("no server-sent event in time")
    }

    pub async fn next(&mut self) -> SseMessage {
        self.next_within(Duration::from_secs(5)).await
    }

    /// The next event of kind `event`, skipping others (heartbeats), waiting at most 5 s.
    pub async fn next_of(&mut self, event: &str) -> SseMessage {
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let m = self.next_message().await;
                if m.event == event {
                    return m;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no `{event}` event in time"))
    }

    async fn next_message(&mut self) -> SseMessage {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut m = SseMessage::default();
                let mut data = Vec::new();
                for line in block.lines() {
                    let (field, value) = line.split_once(':').unwrap_or((line, ""));
                    let value = value.strip_prefix(' ').unwrap_or(value);
                    match field {
                        "event" => m.event = value.to_owned(),
                        "id" => m.id = Some(value.to_owned()),
                        "data" => data.push(value.to_owned()),
                        _ => {}
                    }
                }
                if m.event.is_empty() && data.is_empty() {
                    continue;
                }
                if m.event.is_empty() {
                    m.event = "message".into();
                }
                m.data = data.join("\n");
                return m;
            }
            let chunk = self.res.chunk().await.unwrap().expect("the stream ended");
            self.buf.push_str(
                &String::from_utf8(chunk.to_vec())
                    .unwrap()
                    .replace("\r\n", "\n"),
            );
        }
    }
}
