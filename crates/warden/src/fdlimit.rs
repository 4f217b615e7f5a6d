//! The process's open-file limit. Raised at start to the hard limit, because the soft limit
//! many systems start a process with (1,024) is fewer descriptors than one listener holds
//! under a modest crowd of idle clients; then each listener's connection cap is lowered, if
//! need be, to what the raised limit leaves, so that client connections alone can never run
//! the process out of descriptors (`accept` would fail and every client behind them wait).
//! This module only reads and sets the limit; the caps are enforced by `warden_listen`.

/// Descriptors no listener's cap may use: the store's connections, the audit log and its
/// checkpoints, the revocation stream, webhook and authority calls, the refusals being
/// answered beyond each cap, stdio.
pub const RESERVED: u64 = 512;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and logs the old and new values once.
/// Never fails the start: a limit that cannot be raised is logged, and the caps fit it.
pub fn raise() {
    #[cfg(unix)]
    {
        use rlimit::Resource;
        let (soft, hard) = match Resource::NOFILE.get() {
            Ok(limits) => limits,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the open-file limit (RLIMIT_NOFILE)");
                return;
            }
        };
        if soft >= hard {
            tracing::info!(
                soft,
                hard,
                "open-file limit (RLIMIT_NOFILE) already at the hard limit"
            );
            return;
        }
        match rlimit::increase_nofile_limit(hard) {
            Ok(new) => tracing::info!(
                old = soft,
                new,
                hard,
                "raised the open-file soft limit (RLIMIT_NOFILE)"
            ),
            Err(e) => tracing::warn!(
                error = %e,
                soft,
                hard,
                "cannot raise the open-file soft limit (RLIMIT_NOFILE); connection caps fit the current one"
            ),
        }
    }
}

/// `wanted` lowered, if need be, so that `listeners` listeners sharing this process's
/// descriptors can each hold their cap, a connection of this one costing
/// `fds_per_connection` descriptors (the gateway's: the client's and an upstream's).
pub fn fit(name: &str, wanted: usize, fds_per_connection: u64, listeners: u64) -> usize {
    let Some(soft) = soft_limit() else {
        return wanted;
    };
    let cap = cap_within(soft, wanted, fds_per_connection, listeners);
    if cap < wanted {
        tracing::info!(
            listener = name,
            wanted,
            cap,
            open_file_limit = soft,
            "connection cap lowered to fit the open-file limit"
        );
    }
    cap
}

fn soft_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        rlimit::Resource::NOFILE.get().ok().map(|(soft, _)| soft)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

fn cap_within(soft: u64, wanted: usize, fds_per_connection: u64, listeners: u64) -> usize {
    let share = soft.saturating_sub(RESERVED) / listeners.max(1) / fds_per_connection.max(1);
    usize::try_from(share).map_or(wanted, |share| wanted.min(share).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_fit_what_the_reserve_leaves() {
        assert_eq!(cap_within(1_048_576, 10_000, 1, 1), 10_000);
        assert_eq!(cap_within(1024, 10_000, 1, 1), 512);
        // All in one process: the authority's half, and the gateway's half at two a piece.
        assert_eq!(cap_within(20_000, 10_000, 1, 2), 9_744);
        assert_eq!(cap_within(20_000, 10_000, 2, 2), 4_872);
        assert_eq!(cap_within(100, 10_000, 1, 1), 1, "never zero");
        assert_eq!(cap_within(u64::MAX, 20, 1, 1), 20);
    }
}
