//! Cedar extension values of the request context (`context.datetime`,
//! `context.source_ip`), built once and reused.
//!
//! `RestrictedExpression::new_datetime` and `new_ip` parse the extension function's name
//! (`datetime`, `ip`) with Cedar's policy parser on every call: about 45,000
//! instructions each, more than evaluating a typical policy, and evaluating the
//! expression parses its text again. The value depends only on the request's whole
//! second, or on the client address, so the engine keeps the value of the most recent
//! second and of the most recent addresses, as Cedar's restricted evaluator produced it,
//! and clones it (a reference count).

use std::net::IpAddr;
use std::num::NonZeroUsize;

use cedar_policy::RestrictedExpression;
use cedar_policy_core::ast::Value;
use cedar_policy_core::evaluator::RestrictedEvaluator;
use cedar_policy_core::extensions::Extensions;
use lru::LruCache;
use parking_lot::Mutex;

/// Client addresses remembered (a sidecar sees few; a busy gateway recomputes the rest).
const IP_CAPACITY: NonZeroUsize = NonZeroUsize::new(256).expect("non-zero");

/// The cached values (see the module docs).
pub(crate) struct ExtensionCache {
    /// The second (Unix time) and its `datetime("…")` value.
    datetime: Mutex<Option<(i64, Value)>>,
    /// Canonical address → its `ip("…")` value.
    ips: Mutex<LruCache<IpAddr, Value>>,
}

/// What Cedar's restricted evaluator makes of `expr` (as `Context::from_pairs` evaluates
/// an attribute), or Cedar's message for why it cannot.
pub(crate) fn evaluate(expr: &RestrictedExpression) -> Result<Value, String> {
    let expr: &cedar_policy_core::ast::RestrictedExpr = expr.as_ref();
    RestrictedEvaluator::new(Extensions::all_available())
        .interpret(expr.as_borrowed())
        .map_err(|e| e.to_string())
}

impl ExtensionCache {
    pub(crate) fn new() -> Self {
        ExtensionCache {
            datetime: Mutex::new(None),
            ips: Mutex::new(LruCache::new(IP_CAPACITY)),
        }
    }

    /// `datetime("<secs as RFC 3339, UTC>")`, evaluated; an error is not cached.
    pub(crate) fn datetime(&self, secs: i64) -> Result<Value, String> {
        if let Some((cached, value)) = &*self.datetime.lock() {
            if *cached == secs {
                return Ok(value.clone());
            }
        }
        // Built outside the lock: a new second does not stall other requests.
        let value = evaluate(&RestrictedExpression::new_datetime(rfc3339_utc(secs)))?;
        let mut slot = self.datetime.lock();
        // Keep the latest second if requests of two seconds race.
        if slot.as_ref().is_none_or(|(cached, _)| *cached < secs) {
            *slot = Some((secs, value.clone()));
        }
        Ok(value)
    }

    /// `ip("<canonical address>")` (an IPv4-mapped IPv6 address as IPv4), evaluated.
    pub(crate) fn ip(&self, ip: IpAddr) -> Result<Value, String> {
        let ip = ip.to_canonical();
        if let Some(value) = self.ips.lock().get(&ip) {
            return Ok(value.clone());
        }
        let value = evaluate(&RestrictedExpression::new_ip(ip.to_string()))?;
        self.ips.lock().put(ip, value.clone());
        Ok(value)
    }
}

/// `secs` since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (UTC), by `humantime`. A time it
/// cannot write (before 1970, after 9999) gives `""`, which Cedar refuses to evaluate as a
/// datetime: the decision fails closed.
pub(crate) fn rfc3339_utc(secs: i64) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    if let Ok(secs) = u64::try_from(secs) {
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
        if write!(out, "{}", humantime::format_rfc3339_seconds(time)).is_err() {
            out.clear();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetime_follows_the_second() {
        let cache = ExtensionCache::new();
        let fresh = |secs: i64| evaluate(&RestrictedExpression::new_datetime(rfc3339_utc(secs)));
        assert_eq!(cache.datetime(1_700_000_000), fresh(1_700_000_000));
        // Same second: the cached expression.
        assert_eq!(cache.datetime(1_700_000_000), fresh(1_700_000_000));
        // The next second replaces it.
        assert_eq!(cache.datetime(1_700_000_001), fresh(1_700_000_001));
        assert_eq!(cache.datetime(1_700_000_001), fresh(1_700_000_001));
        // A late request of an earlier second gets its own second, and does not
        // replace the newer one.
        assert_eq!(cache.datetime(1_700_000_000), fresh(1_700_000_000));
        let cached = cache.datetime.lock().as_ref().map(|(s, _)| *s);
        assert_eq!(cached, Some(1_700_000_001));
    }

    #[test]
    fn ip_is_per_canonical_address() {
        let cache = ExtensionCache::new();
        let fresh = |s: &str| evaluate(&RestrictedExpression::new_ip(s));
        let a: IpAddr = "10.1.2.3".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        for _ in 0..2 {
            assert_eq!(cache.ip(a), fresh("10.1.2.3"));
            assert_eq!(cache.ip(b), fresh("2001:db8::1"));
            assert_eq!(cache.ip(mapped), fresh("10.1.2.3"));
        }
        assert_eq!(cache.ips.lock().len(), 2);
    }

    #[test]
    fn ip_cache_is_bounded() {
        let cache = ExtensionCache::new();
        for i in 0..1_000u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            assert_eq!(
                cache.ip(ip),
                evaluate(&RestrictedExpression::new_ip(ip.to_string()))
            );
        }
        assert_eq!(cache.ips.lock().len(), IP_CAPACITY.get());
    }
}
