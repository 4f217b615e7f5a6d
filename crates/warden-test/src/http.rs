//! Requests a test sends: a form with its JSON answer, and a request cut short on the wire.

use serde_json::Value;

/// The content type of every OAuth form.
pub const FORM: &str = "application/x-www-form-urlencoded";

/// POSTs `form` to `url` with `headers` (a repeated name is sent repeatedly); the status and
/// the JSON body (`Null` when the body is not JSON).
pub async fn post_form(
    http: &reqwest::Client,
    url: &str,
    form: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let mut req = http
        .post(url)
        .header("content-type", FORM)
        .body(serde_urlencoded::to_string(form).unwrap());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    answer(req.send().await.unwrap()).await
}

/// The status and the JSON body (`Null` when the body is not JSON) of `res`.
pub async fn answer(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Sends `head` (request line and headers, without the blank line) and then only `sent` of
/// the body over a raw connection to `url`, closes the write half, and reads the whole
/// answer: the status and the JSON body (`Null` when there is none).
pub async fn send_cut_short(url: &str, head: &str, sent: &[u8]) -> (u16, Value) {
    use std::io::{Read as _, Write as _};
    let addr = url.trim_start_matches("http://").to_owned();
    let request = [
        format!("{head}\r\nHost: {addr}\r\nConnection: close\r\n\r\n").into_bytes(),
        sent.to_vec(),
    ]
    .concat();
    let text = tokio::task::spawn_blocking(move || {
        let mut conn = std::net::TcpStream::connect(&addr).unwrap();
        conn.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        conn.write_all(&request).unwrap();
        conn.shutdown(std::net::Shutdown::Write).unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).unwrap();
        answer
    })
    .await
    .unwrap();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}
