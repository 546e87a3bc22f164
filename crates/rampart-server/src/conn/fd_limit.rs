//! The open-file limit: raised from the soft to the hard limit at start, as Go's runtime
//! and nginx's `worker_rlimit_nofile` do, so a default soft limit of 1024 does not cap
//! an edge configured for thousands of connections (each proxied request holds two
//! descriptors: the client's and the upstream's).

/// Descriptors kept beside connections: listeners, log files, the admin socket, epoll.
const RESERVED: u64 = 64;

/// The soft and hard open-file limits after raising, or `None` where they cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// What this process may open now.
    pub soft: u64,
    /// The ceiling an unprivileged process cannot raise.
    pub hard: u64,
}

/// Raises the soft open-file limit to the hard one and returns both.
#[must_use]
pub fn raise() -> Option<Limits> {
    let soft = rlimit::increase_nofile_limit(u64::MAX).ok()?;
    let (_, hard) = rlimit::Resource::NOFILE.get().ok()?;
    Some(Limits { soft, hard })
}

/// Descriptors `max_connections` proxied connections need at most.
#[must_use]
pub fn needed(max_connections: usize) -> u64 {
    (max_connections as u64)
        .saturating_mul(2)
        .saturating_add(RESERVED)
}

/// Raises the limit and warns when `max_connections` cannot be reached under it.
pub fn raise_for(max_connections: usize) {
    let Some(limits) = raise() else { return };
    let need = needed(max_connections);
    if limits.soft < need {
        tracing::warn!(
            open_files = limits.soft,
            needed = need,
            max_connections,
            "the open-file limit is below what server.max_connections needs (two per proxied \
             connection): raise LimitNOFILE= (systemd) or `ulimit -Hn`, or lower max_connections"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_need_counts_both_sides_of_a_proxied_connection() {
        assert_eq!(needed(0), RESERVED);
        assert_eq!(needed(1000), 2000 + RESERVED);
        assert_eq!(needed(usize::MAX), u64::MAX);
    }
}
