//! A real gateway from a TOML text on free loopback ports (public and ops), auditing to memory.

use std::sync::{Arc, Condvar, Mutex};

use tokio::net::TcpListener;
use warden_api::client::Auth;
use warden_core::time::Clock;
use warden_gateway::audit::{AuditEvent, AuditWriter};
use warden_gateway::{Gateway, GatewayConfig, StartError, StartOptions};

use crate::ADMIN;

/// Lets a test stall the audit writer (to fill its queue): closed, the writer waits.
pub type Gate = Arc<(Mutex<bool>, Condvar)>;

/// A gate, open or closed.
pub fn gate(open: bool) -> Gate {
    Arc::new((Mutex::new(open), Condvar::new()))
}

/// Opens `gate`: the writer goes on.
pub fn open(gate: &Gate) {
    let (lock, cv) = &**gate;
    *lock.lock().unwrap() = true;
    cv.notify_all();
}

/// Records audit entries in memory, once `gate` is open.
pub struct MemoryAudit {
    pub events: Arc<Mutex<Vec<AuditEvent>>>,
    pub gate: Gate,
}

impl AuditWriter for MemoryAudit {
    fn write_batch(&mut self, events: Vec<AuditEvent>) -> std::io::Result<()> {
        let (lock, cv) = &*self.gate;
        let mut open = lock.lock().unwrap();
        while !*open {
            open = cv.wait(open).unwrap();
        }
        self.events.lock().unwrap().extend(events);
        Ok(())
    }
}

/// A running gateway of the test's own.
pub struct Launched {
    pub url: String,
    /// The ops listener: `/healthz`, `/metrics`, `/_warden`.
    pub ops_url: String,
    pub gateway: Arc<Gateway>,
    pub audit: Arc<Mutex<Vec<AuditEvent>>>,
}

/// A gateway serving on both its listeners.
pub struct Served {
    pub url: String,
    pub ops_url: String,
    pub gateway: Arc<Gateway>,
}

/// Starts a gateway from `toml` (origin `test.toml`) with the bootstrap admin token,
/// auditing to memory behind `gate`, and serves it on a fresh loopback port; `Err` is what
/// the gateway's start refused.
pub async fn launch(toml: &str, clock: Arc<dyn Clock>, gate: Gate) -> Result<Launched, StartError> {
    let events = Arc::new(Mutex::new(Vec::new()));
    let writer = MemoryAudit {
        events: Arc::clone(&events),
        gate,
    };
    let Served {
        url,
        ops_url,
        gateway,
    } = launch_with(toml, "test-gateway", clock, Box::new(writer)).await?;
    Ok(Launched {
        url,
        ops_url,
        gateway,
        audit: events,
    })
}

/// Starts a gateway named `name` from `toml` with the bootstrap admin token, auditing to
/// `writer`, and serves it and its ops endpoints on fresh loopback ports.
pub async fn launch_with(
    toml: &str,
    name: &str,
    clock: Arc<dyn Clock>,
    writer: Box<dyn AuditWriter>,
) -> Result<Served, StartError> {
    let auth = Auth::BreakGlass(ADMIN.to_owned().into());
    launch_as(toml, name, clock, writer, auth).await
}

/// Starts a gateway authenticating to the authority as `auth` (its own credentials, say),
/// auditing to `writer`, and serves it and its ops endpoints on fresh loopback ports.
pub async fn launch_as(
    toml: &str,
    name: &str,
    clock: Arc<dyn Clock>,
    writer: Box<dyn AuditWriter>,
    auth: Auth,
) -> Result<Served, StartError> {
    let config = GatewayConfig::parse(toml, "test.toml", None).unwrap();
    let gateway = Gateway::start(
        config,
        StartOptions {
            auth,
            clock,
            audit: warden_gateway::AuditTarget::Writer(writer),
            name: name.into(),
        },
    )
    .await?;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(Arc::clone(&gateway).serve(listener, std::future::pending()));
    let ops = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ops_url = format!("http://{}", ops.local_addr().unwrap());
    tokio::spawn(Arc::clone(&gateway).serve_ops(ops, std::future::pending()));
    Ok(Served {
        url,
        ops_url,
        gateway,
    })
}

/// An audit writer that keeps nothing, for benchmarks.
pub struct Discard;

impl AuditWriter for Discard {
    fn write_batch(&mut self, _: Vec<AuditEvent>) -> std::io::Result<()> {
        Ok(())
    }
}
