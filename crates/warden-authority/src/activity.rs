//! Who obtained and who used tokens, when: gathered in memory on the hot paths (issuance,
//! exchange, introspection, gateways' reports) and merged into the store by maintenance, so
//! recording costs a map update and never a write per request. Access reviews read it.

use std::collections::HashMap;
use std::sync::Mutex;

use warden_core::PrincipalId;
use warden_store::Activity;

/// Last issuance and last use, per principal id.
type Times = (Option<i64>, Option<i64>);

#[derive(Default)]
pub struct ActivityRecorder {
    pending: Mutex<HashMap<String, Times>>,
}

impl ActivityRecorder {
    pub fn issued(&self, principal: &str, at: i64) {
        let mut p = crate::lock(&self.pending);
        let e = p.entry(principal.to_owned()).or_default();
        e.0 = e.0.max(Some(at));
    }

    pub fn used(&self, principal: &str, at: i64) {
        let mut p = crate::lock(&self.pending);
        let e = p.entry(principal.to_owned()).or_default();
        e.1 = e.1.max(Some(at));
    }

    /// Takes what was gathered; ids that do not parse (from a confused reporter) are dropped.
    pub fn drain(&self) -> Vec<Activity> {
        let taken = std::mem::take(&mut *crate::lock(&self.pending));
        taken
            .into_iter()
            .filter_map(|(id, (issued, used))| {
                Some(Activity {
                    principal: PrincipalId::parse(&id).ok()?,
                    last_issued_at: issued,
                    last_used_at: used,
                })
            })
            .collect()
    }
}
