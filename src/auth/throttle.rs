//! Brute-force regulation of logins, on failure counters kept in the state store (shared by
//! replicas, each with an expiry).
//!
//! Three counters per attempt: the client address, the username (canonical, so `Admin` and
//! `admin` count together), and the pair. The address limit applies first: one address that
//! fails too often is refused whatever name it tries. A pair that fails too often is locked for
//! a while. A username alone only ever gets growing, capped delays — never a lockout — so an
//! attacker cannot keep a real user out of their account.

use std::net::IpAddr;

pub use crate::config::LoginLimits;

/// Counter keys: address, username, pair.
pub fn keys(ip: IpAddr, username: &str) -> Vec<String> {
    vec![
        format!("ip:{ip}"),
        format!("user:{username}"),
        format!("pair:{username}|{ip}"),
    ]
}

/// Counter keys a successful login clears (the address keeps its count: a success does not
/// excuse the failures it made for other names).
pub fn keys_to_reset(ip: IpAddr, username: &str) -> Vec<String> {
    keys(ip, username).split_off(1)
}

/// Whole seconds this attempt must wait (0: go ahead), from the counters (failures, last
/// failure in milliseconds) of [`keys`], in that order. Millisecond timestamps make a delay of
/// one second last one second, not "until the clock ticks".
pub fn wait(l: &LoginLimits, counts: &[(i64, i64)], now_ms: i64) -> i64 {
    let [(ip_n, ip_last), (user_n, user_last), (pair_n, pair_last)] = counts else {
        return 0;
    };
    let remaining = |last_ms: i64, secs: i64| {
        let ms = last_ms
            .saturating_add(secs.saturating_mul(1000))
            .saturating_sub(now_ms);
        if ms <= 0 { 0 } else { (ms + 999) / 1000 }
    };
    if *ip_n >= l.max_failures_per_ip {
        return remaining(*ip_last, l.window);
    }
    if *pair_n >= l.lockout_after {
        return remaining(*pair_last, l.lockout);
    }
    if *user_n >= l.free_attempts {
        let exponent = u32::try_from((user_n - l.free_attempts).min(30)).unwrap_or(30);
        let delay = 2_i64.saturating_pow(exponent).min(l.max_delay);
        return remaining(*user_last, delay);
    }
    0
}

/// The locks that the failure just recorded starts, from the counters read before it (as for
/// [`wait`]): `(scope, seconds)` for the address and for the username-and-address pair.
pub fn locks_started(l: &LoginLimits, before: &[(i64, i64)]) -> Vec<(&'static str, i64)> {
    let [(ip_n, _), _, (pair_n, _)] = before else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if ip_n.saturating_add(1) == l.max_failures_per_ip {
        out.push(("address", l.window));
    }
    if pair_n.saturating_add(1) == l.lockout_after {
        out.push(("user_and_address", l.lockout));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: LoginLimits = LoginLimits {
        window: 900,
        max_failures_per_ip: 50,
        free_attempts: 3,
        max_delay: 60,
        lockout_after: 10,
        lockout: 900,
    };

    #[test]
    fn delays_grow_and_are_capped() {
        let now = 1_000_000;
        assert_eq!(
            wait(&L, &[(0, 0), (2, now), (2, now)], now),
            0,
            "free attempts"
        );
        assert_eq!(wait(&L, &[(0, 0), (3, now), (3, now)], now), 1);
        assert_eq!(
            wait(&L, &[(0, 0), (3, now - 999), (3, now - 999)], now),
            1,
            "1 ms left is still a wait"
        );
        assert_eq!(
            wait(&L, &[(0, 0), (3, now - 1000), (3, now - 1000)], now),
            0
        );
        assert_eq!(wait(&L, &[(0, 0), (5, now), (5, now)], now), 4);
        assert_eq!(
            wait(&L, &[(0, 0), (5, now - 3000), (5, now - 3000)], now),
            1,
            "time already waited counts"
        );
        assert_eq!(
            wait(&L, &[(0, 0), (40, now), (0, 0)], now),
            60,
            "a username is only ever delayed, capped"
        );
    }

    #[test]
    fn lock_start_is_reported_once() {
        let fresh = [(0, 0), (0, 0), (0, 0)];
        assert!(locks_started(&L, &fresh).is_empty());
        let pair = [(5, 0), (9, 0), (L.lockout_after - 1, 0)];
        assert_eq!(
            locks_started(&L, &pair),
            vec![("user_and_address", L.lockout)]
        );
        let locked = [(5, 0), (9, 0), (L.lockout_after, 0)];
        assert!(locks_started(&L, &locked).is_empty(), "already locked");
        let ip = [(L.max_failures_per_ip - 1, 0), (0, 0), (0, 0)];
        assert_eq!(locks_started(&L, &ip), vec![("address", L.window)]);
    }

    #[test]
    fn pair_lockout_and_address_limit() {
        let now = 10_000_000;
        assert_eq!(
            wait(
                &L,
                &[(10, now), (10, now - 100_000), (10, now - 100_000)],
                now
            ),
            800,
            "pair locked"
        );
        assert_eq!(
            wait(&L, &[(50, now - 10_000), (0, 0), (0, 0)], now),
            890,
            "address refused first, any name"
        );
        assert_eq!(
            wait(
                &L,
                &[(10, now), (10, now - 1_000_000), (10, now - 1_000_000)],
                now
            ),
            0,
            "lock over"
        );
        assert_eq!(wait(&L, &[], now), 0);
    }

    #[test]
    fn keys_are_per_address_user_and_pair() {
        let ip: IpAddr = [10, 0, 0, 1].into();
        assert_eq!(
            keys(ip, "alice"),
            vec!["ip:10.0.0.1", "user:alice", "pair:alice|10.0.0.1"]
        );
        assert_eq!(
            keys_to_reset(ip, "alice"),
            vec!["user:alice", "pair:alice|10.0.0.1"]
        );
    }
}
