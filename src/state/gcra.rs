//! GCRA (the generic cell rate algorithm): the rate limiter both backends run.
//!
//! Each bucket keeps one number, its *theoretical arrival time* (TAT): when the bucket
//! would be empty again if nothing more arrived. A limit of `rate` per `period` with
//! `burst` spends `interval = period / rate` per request; a request of cost `n` is
//! allowed when `max(tat, now) + n × interval − burst × interval ≤ now`, and then moves
//! the TAT there. So `burst` requests pass at once, then one per `interval`, and an idle
//! bucket refills to `burst` after `burst × interval`. Nothing is stored for an idle
//! bucket: the key expires when its TAT passes.
//!
//! [`take`] is the algorithm on plain integers (milliseconds), with the clock passed in,
//! so it is tested without waiting; [`LUA`] is the same algorithm for Redis, one script
//! run atomically, with the Redis server's clock (one clock for every replica).

/// A limit: `burst` requests at once, refilling one per `interval_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Milliseconds one request spends (`period / rate`, at least 1).
    pub interval_ms: u64,
    /// Requests allowed at once (at least 1).
    pub burst: u64,
}

impl Limit {
    /// `rate` requests per `period`, `burst` at once (both at least 1).
    pub fn new(rate: u64, period: std::time::Duration, burst: u64) -> Limit {
        let period_ms = u64::try_from(period.as_millis()).unwrap_or(u64::MAX);
        Limit {
            interval_ms: (period_ms / rate.max(1)).max(1),
            burst: burst.max(1),
        }
    }
}

/// What one [`take`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// The request may pass.
    pub allowed: bool,
    /// When refused: milliseconds until the same request would pass (0 when allowed).
    pub retry_after_ms: u64,
    /// Requests of cost 1 that would still pass now (after this one, if allowed).
    pub remaining: u64,
}

/// Decide a request of `cost` against a bucket whose TAT is `tat` (`None`: never used
/// or expired) at `now`. Returns the outcome and the TAT to store (`None`: leave it).
pub fn take(tat: Option<u64>, now: u64, limit: Limit, cost: u64) -> (Outcome, Option<u64>) {
    let tat = tat.unwrap_or(now).max(now);
    let window = limit.burst.saturating_mul(limit.interval_ms);
    let new_tat = tat.saturating_add(cost.saturating_mul(limit.interval_ms));
    let allow_at = new_tat.saturating_sub(window);
    if allow_at > now {
        let remaining = now.saturating_add(window).saturating_sub(tat) / limit.interval_ms;
        let outcome = Outcome {
            allowed: false,
            retry_after_ms: allow_at - now,
            remaining,
        };
        return (outcome, None);
    }
    let remaining = now.saturating_add(window).saturating_sub(new_tat) / limit.interval_ms;
    let outcome = Outcome {
        allowed: true,
        retry_after_ms: 0,
        remaining,
    };
    (outcome, Some(new_tat))
}

/// [`take`] in Lua for Redis, for several buckets at once, all or none: `KEYS` the
/// buckets, `ARGV` three numbers per bucket (interval in ms, burst, cost). Returns three
/// numbers per bucket (allowed 0/1, retry-after ms, remaining). Nothing is stored unless
/// every bucket allows; a stored key expires when its TAT passes, so an idle bucket
/// costs nothing.
pub const LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
local writes = {}
local all = true
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[3 * i - 2])
  local burst = tonumber(ARGV[3 * i - 1])
  local cost = tonumber(ARGV[3 * i])
  local tat = tonumber(redis.call('GET', key))
  if tat == nil or tat < now then tat = now end
  local window = burst * interval
  local new_tat = tat + cost * interval
  local allow_at = new_tat - window
  if allow_at > now then
    all = false
    table.insert(out, 0)
    table.insert(out, allow_at - now)
    table.insert(out, math.floor((now + window - tat) / interval))
  else
    writes[key] = new_tat
    table.insert(out, 1)
    table.insert(out, 0)
    table.insert(out, math.floor((now + window - new_tat) / interval))
  end
end
if all then
  for key, new_tat in pairs(writes) do
    redis.call('SET', key, string.format('%d', new_tat), 'PX', math.max(1, new_tat - now))
  end
end
return out
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Run requests of cost 1 at the given times against one bucket.
    fn run(limit: Limit, times: &[u64]) -> Vec<bool> {
        let mut tat = None;
        times
            .iter()
            .map(|&now| {
                let (outcome, stored) = take(tat, now, limit, 1);
                if stored.is_some() {
                    tat = stored;
                }
                outcome.allowed
            })
            .collect()
    }

    #[test]
    fn burst_passes_at_once_then_one_per_interval() {
        // 60 per minute, burst 3: one per second after the first three.
        let limit = Limit::new(60, Duration::from_secs(60), 3);
        assert_eq!(limit.interval_ms, 1000);
        assert_eq!(
            run(limit, &[0, 0, 0, 0, 999, 1000, 1000, 2000]),
            [true, true, true, false, false, true, false, true]
        );
    }

    #[test]
    fn exactly_n_pass_when_the_burst_is_the_rate() {
        // N per hour with burst N: a test of any speed sees exactly N pass.
        let limit = Limit::new(5, Duration::from_secs(3600), 5);
        let times: Vec<u64> = (0..12).map(|i| i * 7).collect();
        let passed = run(limit, &times).iter().filter(|&&a| a).count();
        assert_eq!(passed, 5);
    }

    #[test]
    fn refusal_says_when_to_retry_and_stores_nothing() {
        let limit = Limit::new(1, Duration::from_secs(10), 1);
        let (first, tat) = take(None, 1_000, limit, 1);
        assert!(first.allowed);
        assert_eq!(first.remaining, 0);
        assert_eq!(tat, Some(11_000));
        let (second, stored) = take(tat, 4_000, limit, 1);
        assert!(!second.allowed);
        assert_eq!(second.retry_after_ms, 7_000);
        assert_eq!(stored, None, "a refusal spends nothing");
        let (third, _) = take(tat, 11_000, limit, 1);
        assert!(third.allowed);
    }

    #[test]
    fn an_idle_bucket_refills_to_the_burst_and_no_further() {
        let limit = Limit::new(10, Duration::from_secs(10), 4);
        let (o, tat) = take(None, 0, limit, 4);
        assert!(o.allowed);
        assert_eq!(o.remaining, 0);
        // a long pause: back to the burst, not more
        let (o, _) = take(tat, 1_000_000, limit, 1);
        assert!(o.allowed);
        assert_eq!(o.remaining, 3);
        let (o, _) = take(tat, 1_000_000, limit, 5);
        assert!(!o.allowed, "a cost above the burst never passes");
    }

    #[test]
    fn a_cost_spends_several_requests_at_once() {
        let limit = Limit::new(60, Duration::from_secs(60), 5);
        let (o, tat) = take(None, 0, limit, 3);
        assert!(o.allowed);
        assert_eq!(o.remaining, 2);
        let (o, _) = take(tat, 0, limit, 3);
        assert!(!o.allowed);
        assert_eq!(o.retry_after_ms, 1_000);
    }

    #[test]
    fn degenerate_limits_are_clamped() {
        let limit = Limit::new(0, Duration::ZERO, 0);
        assert_eq!(
            limit,
            Limit {
                interval_ms: 1,
                burst: 1
            }
        );
        let huge = Limit::new(1, Duration::from_secs(u64::MAX), u64::MAX);
        // Saturating arithmetic at the extremes: no overflow panic.
        let _ = take(Some(u64::MAX - 1), u64::MAX - 2, huge, u64::MAX);
        let _ = take(None, u64::MAX, huge, 1);
    }
}
