//! The open-file limit (`RLIMIT_NOFILE`): every connection is a file
//! descriptor, and the usual soft limit of 1,024 is far below what the
//! kernel allows. `clavis serve` raises the soft limit to the hard limit at
//! start, and the default `--max-connections` is derived from the result.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// The share of the open-file limit given to connections; the rest is for
/// the database, the log, key files and outgoing webhook calls.
const CONNECTION_SHARE: (u64, u64) = (3, 4);
/// The default connection limit never exceeds this (each idle connection
/// costs memory too: buffers, TLS state).
pub const DEFAULT_MAX_CONNECTIONS_CAP: usize = 10_000;

/// What [`raise`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Raised {
    /// The soft limit went from `from` to `to`.
    Raised { from: u64, to: u64 },
    /// Already at the hard limit (or unlimited).
    Already(u64),
    /// The kernel refused; the soft limit stays at `at`.
    Refused { at: u64, hard: u64 },
}

/// Raise the soft open-file limit of this process to its hard limit.
pub fn raise() -> Raised {
    let limit = getrlimit(Resource::Nofile);
    let soft = limit.current.unwrap_or(u64::MAX);
    let hard = limit.maximum.unwrap_or(u64::MAX);
    if soft >= hard {
        return Raised::Already(soft);
    }
    let wanted = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, wanted) {
        Ok(()) => Raised::Raised {
            from: soft,
            to: soft_limit(),
        },
        Err(_) => Raised::Refused { at: soft, hard },
    }
}

/// The soft open-file limit now (`u64::MAX` when unlimited).
pub fn soft_limit() -> u64 {
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// The default `--max-connections` for a soft open-file limit: three
/// quarters of it, at most [`DEFAULT_MAX_CONNECTIONS_CAP`], at least 16.
pub fn default_max_connections(soft_limit: u64) -> usize {
    let share = soft_limit / CONNECTION_SHARE.1 * CONNECTION_SHARE.0;
    usize::try_from(share)
        .unwrap_or(usize::MAX)
        .clamp(16, DEFAULT_MAX_CONNECTIONS_CAP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_leaves_room_for_other_files() {
        assert_eq!(default_max_connections(1024), 768);
        assert_eq!(default_max_connections(4096), 3072);
        assert_eq!(default_max_connections(1 << 20), 10_000);
        assert_eq!(default_max_connections(u64::MAX), 10_000);
        assert_eq!(default_max_connections(8), 16);
    }

    #[test]
    fn raising_ends_at_the_hard_limit() {
        if let Raised::Refused { .. } = raise() {
            return; // a sandbox that forbids it
        }
        let limit = getrlimit(Resource::Nofile);
        assert_eq!(limit.current, limit.maximum);
        assert_eq!(raise(), Raised::Already(soft_limit()));
    }
}
