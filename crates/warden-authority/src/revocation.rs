//! Revocation: the authority's view of what is revoked, the log of live events that gateways
//! follow, and the push stream (`GET /revocations/stream`, server-sent events).
//!
//! The store is the source of truth and orders events. One follower task per authority reads
//! new events from the store whenever the store's watch moves — an append by this process, or
//! by another replica on the same PostgreSQL (LISTEN/NOTIFY) — and applies them in `seq`
//! order. Lifecycle calls wait until the follower has applied their event, so when a revoke
//! call answers, every connected stream has been woken with it.
//!
//! Stream protocol ([`warden_api::stream`]): `event: revocation` with `id: <seq>` and the
//! event as JSON; `event: heartbeat` with `{"cursor","time"}` at least every heartbeat
//! interval, so a subscriber can tell a quiet stream from a dead one; and `event:
//! checkpoint` with each signed audit checkpoint ([`crate::checkpoint_relay`]). A
//! subscriber resumes with `Last-Event-ID` (or `?after=`); it then receives every event
//! after that cursor that can still affect a live token. Events are kept until their
//! horizon, the moment every token they could affect has expired, so a reconnecting
//! subscriber misses nothing that matters.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::watch;
use warden_api::stream;
use warden_core::claims::AccessClaims;
use warden_core::revocation::{RevocationEvent, RevocationView, Revoked, RevokedTarget};
use warden_store::{Revocation, RevocationTarget, Store, StoreError};

use crate::error::Problem;
use crate::Authority;

/// Events read from the store per query while catching up.
const PAGE: u32 = 1_000;

pub struct RevocationHub {
    state: RwLock<HubState>,
    /// The `seq` of the newest applied event.
    head: watch::Sender<i64>,
}

#[derive(Default)]
struct HubState {
    view: RevocationView,
    /// Events still within their horizon, oldest first, for subscribers catching up.
    log: VecDeque<RevocationEvent>,
}

impl RevocationHub {
    /// Loads every event still within its horizon.
    pub async fn load(store: &dyn Store) -> Result<Self, StoreError> {
        let hub = Self {
            state: RwLock::new(HubState::default()),
            head: watch::channel(0).0,
        };
        hub.catch_up(store).await?;
        Ok(hub)
    }

    /// Reads and applies everything the store has after the head.
    async fn catch_up(&self, store: &dyn Store) -> Result<(), StoreError> {
        loop {
            let page = store.revocations_since(self.head(), PAGE).await?;
            let full = page.len() == PAGE as usize;
            self.apply(&page);
            if !full {
                return Ok(());
            }
        }
    }

    fn apply(&self, page: &[Revocation]) {
        let Some(last) = page.last() else { return };
        {
            let mut s = write(&self.state);
            for r in page {
                if r.seq <= s.view.cursor() {
                    continue;
                }
                let event = to_event(r);
                s.view.apply(&event);
                s.log.push_back(event);
            }
        }
        self.head.send_if_modified(|h| {
            let moved = last.seq > *h;
            *h = (*h).max(last.seq);
            moved
        });
    }

    /// Follows the store until the process ends: every append anywhere wakes it.
    pub fn spawn_follower(self: &Arc<Self>, store: Arc<dyn Store>) -> tokio::task::JoinHandle<()> {
        let hub = Arc::clone(self);
        let mut appended = store.revocation_watch();
        tokio::spawn(async move {
            loop {
                let known = *appended.borrow_and_update();
                if known > hub.head() {
                    if let Err(e) = hub.catch_up(store.as_ref()).await {
                        tracing::warn!(error = %e, "reading revocations failed; retrying");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                }
                if appended.changed().await.is_err() {
                    return;
                }
            }
        })
    }

    /// Waits until the event `seq` has been applied (the follower is a task hop away).
    pub async fn applied(&self, seq: i64, store: &dyn Store) -> Result<(), StoreError> {
        let mut head = self.head.subscribe();
        let wait = head.wait_for(|h| *h >= seq);
        if tokio::time::timeout(Duration::from_secs(2), wait)
            .await
            .is_err()
        {
            // The follower is stuck on the store; apply from here rather than answer early.
            self.catch_up(store).await?;
        }
        Ok(())
    }

    pub fn head(&self) -> i64 {
        *self.head.borrow()
    }

    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.head.subscribe()
    }

    pub fn check(&self, claims: &AccessClaims) -> Result<(), Revoked> {
        read(&self.state).view.check(claims)
    }

    /// See [`warden_core::revocation::RevocationView::issuable_from`].
    pub fn issuable_from(&self, claims: &AccessClaims) -> Result<i64, Revoked> {
        read(&self.state).view.issuable_from(claims)
    }

    pub fn is_honeytoken(&self, principal: &str) -> bool {
        read(&self.state).view.is_honeytoken(principal)
    }

    /// Events after `cursor` still within their horizon, at most `limit`.
    pub fn events_after(&self, cursor: i64, limit: usize) -> Vec<RevocationEvent> {
        let s = read(&self.state);
        let start = s.log.partition_point(|e| e.seq <= cursor);
        s.log.iter().skip(start).take(limit).cloned().collect()
    }

    /// Forgets events past their horizon.
    pub fn prune(&self, now: i64) {
        let mut s = write(&self.state);
        s.view.prune(now);
        s.log.retain(|e| e.horizon >= now);
    }
}

fn read(lock: &RwLock<HubState>) -> std::sync::RwLockReadGuard<'_, HubState> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write(lock: &RwLock<HubState>) -> std::sync::RwLockWriteGuard<'_, HubState> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

/// The store's record of a revocation as the stream (and the admin API's answers) carry it.
pub(crate) fn to_event(r: &Revocation) -> RevocationEvent {
    let target = match &r.event.target {
        RevocationTarget::Principal { principal } => RevokedTarget::Principal {
            principal: principal.to_string(),
        },
        RevocationTarget::Token { jti } => RevokedTarget::Token { jti: jti.clone() },
        RevocationTarget::Honeytoken { principal } => RevokedTarget::Honeytoken {
            principal: principal.to_string(),
        },
        RevocationTarget::Grant { grant, user, agent } => RevokedTarget::Grant {
            grant: grant.clone(),
            user: user.to_string(),
            agent: agent.to_string(),
        },
        RevocationTarget::Tenant { tenant } => RevokedTarget::Tenant {
            tenant: tenant.to_string(),
        },
    };
    RevocationEvent {
        seq: r.seq,
        target,
        issued_before: r.event.issued_before,
        horizon: r.event.horizon,
        reason: r.event.reason.clone(),
        created_at: r.event.created_at,
    }
}

#[derive(Deserialize)]
pub struct StreamQuery {
    after: Option<i64>,
}

/// `GET /revocations/stream`: the push stream gateways subscribe to.
pub async fn stream(
    State(a): State<Arc<Authority>>,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
) -> Response {
    let caller = match crate::admin_auth::authenticate(&a, &headers)
        .and_then(|c| c.permit(crate::admin_auth::Action::Gateway).map(|()| c))
    {
        Ok(c) => c,
        Err(p) => return p.into_response(),
    };
    let last_event_id = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    let cursor = match (last_event_id, q.after) {
        (Some(id), _) => match id.trim().parse::<i64>() {
            Ok(c) => c,
            Err(_) => {
                return Problem::bad_request("Last-Event-ID must be an event sequence number")
                    .into_response()
            }
        },
        (None, after) => after.unwrap_or(0),
    };
    let subscription = Subscription {
        _subscribed: a.metrics.subscribed(),
        authority: Arc::clone(&a),
        head: a.revocations.subscribe(),
        cursor,
        pending: VecDeque::new(),
        greeted: false,
        subscriber: caller.principal().cloned(),
        standing_at: None,
        checkpoints: a.checkpoints.join(),
    };
    let events = futures_util::stream::unfold(subscription, |mut s| async move {
        let event = s.next().await?;
        Some((Ok::<_, Infallible>(event), s))
    });
    let mut res = Sse::new(events).into_response();
    res.headers_mut()
        .insert("x-accel-buffering", header::HeaderValue::from_static("no"));
    res
}

struct Subscription {
    /// Counts this stream in `/metrics` while it is open.
    _subscribed: crate::metrics::Subscribed,
    authority: Arc<Authority>,
    head: watch::Receiver<i64>,
    cursor: i64,
    pending: VecDeque<RevocationEvent>,
    greeted: bool,
    /// The gateway principal following the stream (none for break-glass): the stream ends
    /// when its token expires or the principal is disabled or revoked, so that a gateway
    /// keeps hearing revocations only while it is entitled to.
    subscriber: Option<crate::admin_auth::AdminPrincipal>,
    /// The revocation head at which the subscriber's standing was last confirmed.
    standing_at: Option<i64>,
    checkpoints: crate::checkpoint_relay::RelayedStream,
}

impl Subscription {
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                self.cursor = e.seq;
                let data = serde_json::to_string(&e).ok()?;
                return Some(
                    Event::default()
                        .id(e.seq.to_string())
                        .event(stream::REVOCATION)
                        .data(data),
                );
            }
            let head = *self.head.borrow_and_update();
            if !self.subscriber_in_good_standing(head).await {
                return None;
            }
            let hub = &self.authority.revocations;
            self.pending
                .extend(hub.events_after(self.cursor, PAGE as usize));
            if !self.pending.is_empty() {
                continue;
            }
            // A heartbeat first thing tells the subscriber it is caught up.
            if !self.greeted {
                self.greeted = true;
                return Some(self.heartbeat());
            }
            if let Some(line) = self.checkpoints.take() {
                return Some(Event::default().event(stream::CHECKPOINT).data(line));
            }
            let every = self.authority.config.revocation_heartbeat;
            tokio::select! {
                changed = self.head.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                }
                () = self.checkpoints.changed() => {}
                () = tokio::time::sleep(every) => return Some(self.heartbeat()),
            }
        }
    }

    /// Whether the subscriber may still hear the stream. The store is asked only when the
    /// revocation head has moved since it last answered yes: disabling or revoking a
    /// principal appends a revocation event, so standing cannot be lost without one, and a
    /// heartbeat costs no store read.
    async fn subscriber_in_good_standing(&mut self, head: i64) -> bool {
        let Some(p) = &self.subscriber else {
            return true;
        };
        if self.authority.now() >= p.expires_at {
            return false;
        }
        if self.standing_at == Some(head) {
            return true;
        }
        match self.authority.store.principal(&p.id).await {
            Ok(Some(found)) if !found.disabled && found.revoked.is_none() => {
                self.standing_at = Some(head);
                true
            }
            Ok(_) => false,
            // A store hiccup is no reason to cut a gateway off; the next wake-up asks again.
            Err(_) => true,
        }
    }

    fn heartbeat(&self) -> Event {
        let beat = stream::Heartbeat {
            cursor: self.cursor,
            time: self.authority.now(),
        };
        Event::default()
            .event(stream::HEARTBEAT)
            .data(serde_json::to_string(&beat).unwrap_or_default())
    }
}
