//! Throttling of failed sign-ins, per account and per source address: after
//! a few failures in a row, further attempts are refused for a time that
//! doubles with each failure (up to 15 minutes). A success clears the
//! account's count. State is per node and in memory.

use std::collections::HashMap;
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
    locked_until: i64,
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

impl Throttle {
    /// Seconds to wait before `keys` may try again, if any is locked.
    pub fn retry_after(&self, keys: &[String], now: i64) -> Option<i64> {
        let entries = self.entries.lock().expect("throttle lock");
        keys.iter()
            .filter_map(|k| entries.get(k))
            .map(|e| e.locked_until - now)
            .filter(|s| *s > 0)
            .max()
    }

    /// Records a failure of the account key and the address key.
    pub fn failed(&self, account: &str, address: &str, now: i64) {
        let mut entries = self.entries.lock().expect("throttle lock");
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, e| e.locked_until > now);
        }
        for (key, free) in [(account, ACCOUNT_FREE), (address, ADDRESS_FREE)] {
            let e = entries.entry(key.to_owned()).or_default();
            e.failures += 1;
            let lock = lock_for(e.failures, free);
            if lock > 0 {
                e.locked_until = now + lock;
            }
        }
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

    pub fn succeeded(&self, account: &str) {
        self.entries.lock().expect("throttle lock").remove(account);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_repeated_failures_and_doubles() {
        let t = Throttle::default();
        let keys = vec!["acct".to_string(), "ip".to_string()];
        for _ in 0..4 {
            t.failed("acct", "ip", 1000);
        }
        assert_eq!(t.retry_after(&keys, 1000), None);
        t.failed("acct", "ip", 1000);
        assert_eq!(t.retry_after(&keys, 1000), Some(30));
        t.failed("acct", "ip", 1000);
        assert_eq!(t.retry_after(&keys, 1000), Some(60));
        assert_eq!(t.retry_after(&keys, 1100), None, "the lock runs out");
        t.succeeded("acct");
        assert_eq!(t.retry_after(&["acct".to_string()], 1000), None);
    }
}
