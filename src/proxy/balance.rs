//! Choosing an upstream: round-robin over the healthy ones, or, with affinity, always the same
//! one for a session (rendezvous hashing, so every gateway replica makes the same choice and a
//! failed upstream moves only its own sessions). Upstreams are ejected when a health check or a
//! connection to them fails, and re-admitted when a health check succeeds.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use http::Uri;
use sha2::{Digest, Sha256};

struct Member {
    uri: Uri,
    healthy: AtomicBool,
}

pub struct Balancer {
    members: Vec<Member>,
    next: AtomicUsize,
}

impl Balancer {
    pub fn new(uris: Vec<Uri>) -> Balancer {
        Balancer {
            members: uris
                .into_iter()
                .map(|uri| Member {
                    uri,
                    healthy: AtomicBool::new(true),
                })
                .collect(),
            next: AtomicUsize::new(0),
        }
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn uri(&self, i: usize) -> Option<&Uri> {
        self.members.get(i).map(|m| &m.uri)
    }

    /// Pick an upstream. With `affinity`, the same key always maps to the same healthy
    /// upstream. When none is healthy, all are candidates: trying beats refusing outright.
    pub fn pick(&self, affinity: Option<&str>) -> Option<(usize, &Uri)> {
        let healthy: Vec<usize> = (0..self.members.len())
            .filter(|&i| self.is_healthy(i))
            .collect();
        let candidates: Vec<usize> = if healthy.is_empty() {
            (0..self.members.len()).collect()
        } else {
            healthy
        };
        let i = match affinity {
            Some(key) => *candidates
                .iter()
                .max_by_key(|&&i| score(key, &self.members[i].uri))?,
            None => {
                let n = self.next.fetch_add(1, Ordering::Relaxed);
                *candidates.get(n % candidates.len().max(1))?
            }
        };
        Some((i, &self.members[i].uri))
    }

    pub fn is_healthy(&self, i: usize) -> bool {
        self.members
            .get(i)
            .is_some_and(|m| m.healthy.load(Ordering::Relaxed))
    }

    /// Record a health observation; returns true when the state changed.
    pub fn mark(&self, i: usize, healthy: bool) -> bool {
        self.members
            .get(i)
            .is_some_and(|m| m.healthy.swap(healthy, Ordering::Relaxed) != healthy)
    }
}

/// Rendezvous weight of `uri` for `key`: deterministic across processes and versions.
fn score(key: &str, uri: &Uri) -> u64 {
    let mut h = Sha256::new();
    h.update(key.as_bytes());
    h.update([0]);
    h.update(uri.to_string().as_bytes());
    let d = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    u64::from_be_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn balancer(n: usize) -> Balancer {
        Balancer::new(
            (0..n)
                .filter_map(|i| format!("http://127.0.0.1:{}", 9000 + i).parse().ok())
                .collect(),
        )
    }

    #[test]
    fn round_robin_skips_ejected_members() {
        let b = balancer(3);
        let picks: Vec<usize> = (0..6)
            .filter_map(|_| b.pick(None).map(|(i, _)| i))
            .collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2]);
        assert!(b.mark(1, false));
        assert!(!b.mark(1, false), "no change");
        let picks: Vec<usize> = (0..4)
            .filter_map(|_| b.pick(None).map(|(i, _)| i))
            .collect();
        assert!(
            !picks.contains(&1) && picks.contains(&0) && picks.contains(&2),
            "{picks:?}"
        );
        for i in 0..3 {
            b.mark(i, false);
        }
        assert!(b.pick(None).is_some(), "all down: still try");
    }

    #[test]
    fn affinity_is_stable_and_moves_only_failed_sessions() {
        let b = balancer(4);
        let keys: Vec<String> = (0..200).map(|i| format!("session-{i}")).collect();
        let before: Vec<usize> = keys
            .iter()
            .filter_map(|k| b.pick(Some(k)).map(|(i, _)| i))
            .collect();
        let again: Vec<usize> = keys
            .iter()
            .filter_map(|k| b.pick(Some(k)).map(|(i, _)| i))
            .collect();
        assert_eq!(before, again);
        for m in 0..4 {
            assert!(before.contains(&m), "every upstream gets sessions");
        }
        b.mark(2, false);
        let after: Vec<usize> = keys
            .iter()
            .filter_map(|k| b.pick(Some(k)).map(|(i, _)| i))
            .collect();
        for (x, y) in before.iter().zip(&after) {
            if *x != 2 {
                assert_eq!(x, y, "sessions on healthy upstreams stay");
            } else {
                assert_ne!(*y, 2);
            }
        }
    }
}
