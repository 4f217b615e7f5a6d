//! An upstream for gateways to forward to, answering with what it received.

use axum::extract::Request;
use axum::http::StatusCode;
use axum::routing::any;
use serde_json::{json, Value};
use tokio::net::TcpListener;

/// Starts the echo upstream on a free loopback port; its URL. It serves until the runtime
/// ends:
/// - `/slow/…` never answers (upstream timeouts);
/// - `/crm/upload` reads the whole body first, as an upload handler does, and says how many
///   bytes it got (400 when the body broke off);
/// - every other path answers JSON with the method, path and headers it received.
pub async fn echo() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/slow/{*rest}", any(hang))
        .route("/crm/upload", any(upload))
        .fallback(reflect);
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

async fn reflect(req: Request) -> axum::Json<Value> {
    let headers: serde_json::Map<String, Value> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), json!(v.to_str().unwrap_or(""))))
        .collect();
    axum::Json(
        json!({ "method": req.method().as_str(), "path": req.uri().path(), "headers": headers }),
    )
}

async fn upload(req: Request) -> (StatusCode, axum::Json<Value>) {
    match axum::body::to_bytes(req.into_body(), 1 << 20).await {
        Ok(b) => (StatusCode::OK, axum::Json(json!({ "received": b.len() }))),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({ "upstream_error": e.to_string() })),
        ),
    }
}

async fn hang() -> &'static str {
    std::future::pending::<()>().await;
    ""
}
