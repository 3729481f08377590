//! Throttling of failed sign-ins, per account and per source address: after
//! a few failures in a row, further attempts are refused for a time that
//! doubles with each failure (up to 15 minutes). A success clears the
//! account's count. State is per node and in memory.
//!
//! Attempts still running count too: an attempt reserves its place before
//! the password is checked, so a burst of concurrent guesses cannot all pass
//! the check before the first of them is counted as a failure. IPv6 sources
//! are grouped by /64, the block one subscriber usually holds.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// Failures allowed before an account is locked out.
const ACCOUNT_FREE: u32 = 5;
/// Failures allowed from one address (many accounts) before it is.
const ADDRESS_FREE: u32 = 20;
const BASE_LOCK: i64 = 30;
const MAX_LOCK: i64 = 15 * 60;
const MAX_ENTRIES: usize = 100_000;

#[derive(Default, Clone, Copy)]
struct Entry {
    failures: u32,
    /// Attempts that reserved their place and have not finished.
    in_flight: u32,
    locked_until: i64,
}

impl Entry {
    /// An account: while attempts run, only as many more may start as
    /// failures remain before the lock (at least one, once a lock has run
    /// out); a success clears its failures. An address: never more than its
    /// allowance at once, whatever it failed before (its failures are not
    /// cleared by a success, and a shared NAT address must not be slowed to
    /// one sign-in at a time).
    fn may_start(&self, free: u32, is_account: bool) -> bool {
        let limit = if is_account {
            free.saturating_sub(self.failures).max(1)
        } else {
            free
        };
        self.in_flight < limit
    }
}

#[derive(Default)]
pub struct Throttle {
    entries: Mutex<HashMap<String, Entry>>,
    /// One-time values seen (client assertion `jti`s), until they expire.
    used: Mutex<HashMap<String, i64>>,
}

fn lock_for(failures: u32, free: u32) -> i64 {
    if failures < free {
        return 0;
    }
    let doublings = (failures - free).min(10);
    (BASE_LOCK << doublings).min(MAX_LOCK)
}

/// The key an address is throttled under: IPv4 per address, IPv6 per /64.
pub fn address_key(source: &str) -> String {
    match source.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            format!("ip/{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Ok(IpAddr::V6(v6)) => format!("ip/{}", v6.to_canonical()),
        _ => format!("ip/{source}"),
    }
}

/// Why an attempt may not start now.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// Locked out for this many seconds.
    Locked(i64),
    /// Too many attempts for the same account or address are running.
    Busy,
}

/// A reserved place for one sign-in attempt. Finish it with
/// [`Throttle::succeeded`] or [`Throttle::failed`]; dropped unfinished (an
/// internal error), it only gives its place back.
pub struct Attempt<'a> {
    throttle: &'a Throttle,
    account: String,
    address: String,
    finished: bool,
}

impl Throttle {
    /// Reserves a place for an attempt on `account` from `address`, unless
    /// either is locked out or has as many attempts running as it may fail.
    pub fn begin(&self, account: &str, address: &str, now: i64) -> Result<Attempt<'_>, Refused> {
        let mut entries = self.entries.lock().expect("throttle lock");
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, e| e.locked_until > now || e.in_flight > 0);
        }
        let pairs = [(account, ACCOUNT_FREE), (address, ADDRESS_FREE)];
        let wait = pairs
            .iter()
            .filter_map(|(k, _)| entries.get(*k))
            .map(|e| e.locked_until - now)
            .max()
            .filter(|s| *s > 0);
        if let Some(wait) = wait {
            return Err(Refused::Locked(wait));
        }
        let busy = pairs
            .iter()
            .enumerate()
            .any(|(i, (k, free))| entries.get(*k).is_some_and(|e| !e.may_start(*free, i == 0)));
        if busy {
            return Err(Refused::Busy);
        }
        for (key, _) in pairs {
            entries.entry(key.to_owned()).or_default().in_flight += 1;
        }
        Ok(Attempt {
            throttle: self,
            account: account.to_owned(),
            address: address.to_owned(),
            finished: false,
        })
    }

    /// Ends an attempt that failed: counts it for the account and the address.
    pub fn failed(&self, mut attempt: Attempt<'_>, now: i64) {
        attempt.finished = true;
        let mut entries = self.entries.lock().expect("throttle lock");
        for (key, free) in [
            (&attempt.account, ACCOUNT_FREE),
            (&attempt.address, ADDRESS_FREE),
        ] {
            let e = entries.entry(key.clone()).or_default();
            e.in_flight = e.in_flight.saturating_sub(1);
            e.failures += 1;
            let lock = lock_for(e.failures, free);
            if lock > 0 {
                e.locked_until = now + lock;
            }
        }
    }

    /// Ends an attempt that succeeded: clears the account's failures.
    pub fn succeeded(&self, mut attempt: Attempt<'_>) {
        attempt.finished = true;
        let mut entries = self.entries.lock().expect("throttle lock");
        entries.remove(&attempt.account);
        release(&mut entries, &attempt.address);
    }

    /// True the first time `key` is seen before `until`; a replay is false.
    pub fn first_use(&self, key: &str, until: i64, now: i64) -> bool {
        let mut used = self.used.lock().expect("throttle lock");
        if used.len() >= MAX_ENTRIES {
            used.retain(|_, t| *t > now);
        }
        match used.get(key) {
            Some(t) if *t > now => false,
            _ => {
                used.insert(key.to_owned(), until);
                true
            }
        }
    }
}

fn release(entries: &mut HashMap<String, Entry>, key: &str) {
    if let Some(e) = entries.get_mut(key) {
        e.in_flight = e.in_flight.saturating_sub(1);
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.finished {
            let mut entries = self.throttle.entries.lock().expect("throttle lock");
            release(&mut entries, &self.account);
            release(&mut entries, &self.address);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail(t: &Throttle, now: i64) -> Result<(), Refused> {
        let a = t.begin("acct", "ip", now)?;
        t.failed(a, now);
        Ok(())
    }

    #[test]
    fn locks_after_repeated_failures_and_doubles() {
        let t = Throttle::default();
        for _ in 0..5 {
            fail(&t, 1000).unwrap();
        }
        assert_eq!(t.begin("acct", "ip", 1000).err(), Some(Refused::Locked(30)));
        fail(&t, 1030).unwrap();
        assert_eq!(t.begin("acct", "ip", 1030).err(), Some(Refused::Locked(60)));
        let a = t.begin("acct", "ip", 1100).expect("the lock runs out");
        t.succeeded(a);
        assert!(t.begin("acct", "other-ip", 1100).is_ok());
    }

    #[test]
    fn concurrent_attempts_cannot_outrun_the_count() {
        let t = Throttle::default();
        let running: Vec<_> = (0..5)
            .map(|_| t.begin("acct", "ip", 1000).unwrap())
            .collect();
        assert_eq!(t.begin("acct", "ip", 1000).err(), Some(Refused::Busy));
        drop(running);
        fail(&t, 1000).unwrap();
        let running: Vec<_> = (0..4)
            .map(|_| t.begin("acct", "ip", 1000).unwrap())
            .collect();
        assert_eq!(t.begin("acct", "ip", 1000).err(), Some(Refused::Busy));
        for a in running {
            t.failed(a, 1000);
        }
        assert!(matches!(
            t.begin("acct", "ip", 1000),
            Err(Refused::Locked(_))
        ));
    }

    #[test]
    fn an_address_with_old_failures_still_signs_in_in_parallel() {
        let t = Throttle::default();
        for i in 0..19 {
            let a = t.begin(&format!("acct{i}"), "nat", 1000).unwrap();
            t.failed(a, 1000);
        }
        let running: Vec<_> = (0..10)
            .map(|i| t.begin(&format!("ok{i}"), "nat", 2000).unwrap())
            .collect();
        assert_eq!(running.len(), 10);
    }

    #[test]
    fn ipv6_sources_are_grouped_by_64() {
        assert_eq!(address_key("2001:db8:1:2:aaaa::1"), "ip/2001:db8:1:2::/64");
        assert_eq!(
            address_key("2001:db8:1:2:bbbb::9"),
            address_key("2001:db8:1:2::1")
        );
        assert_ne!(
            address_key("2001:db8:1:3::1"),
            address_key("2001:db8:1:2::1")
        );
        assert_eq!(address_key("::ffff:192.0.2.7"), "ip/192.0.2.7");
        assert_eq!(address_key("192.0.2.7"), "ip/192.0.2.7");
        assert_eq!(address_key("unknown"), "ip/unknown");
    }
}
