//! Helpers for the unit tests: waiting for an event, never for a length of time.
//!
//! A deadline here only turns a hang into a failure: it is long ([`HANG`]), so a slow or
//! loaded machine never fails a test that passes on a fast one. The integration tests have
//! the same rule in `tests/support/wait.rs`.

use std::time::{Duration, Instant};

/// How long a wait may last before it is called a hang.
pub(crate) const HANG: Duration = Duration::from_secs(120);

/// Poll `check` until it holds; panic naming `what` after [`HANG`].
pub(crate) fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + HANG;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "still waiting for {what} after {HANG:?}"
        );
        pause();
    }
}

/// The pause between two polls.
#[allow(
    clippy::disallowed_methods,
    reason = "the poll interval of a wait for an event, bounded by HANG"
)]
fn pause() {
    std::thread::sleep(Duration::from_millis(10));
}

/// Returns once the monotonic clock has moved past the moment of the call, so that
/// anything stamped before it has a non-zero age (for zero-TTL expiry tests).
pub(crate) fn let_the_clock_tick() {
    let start = Instant::now();
    while Instant::now() <= start {
        std::hint::spin_loop();
    }
}

/// Biscuit run limits for tests: the proxy's default limits on facts and iterations, and
/// [`HANG`] for time. Biscuit's time limit is wall-clock time, so the proxy's 20 ms default
/// turned decisions into run-limit denials when the test machine was busy.
pub(crate) fn biscuit_limits() -> biscuit_auth::AuthorizerLimits {
    biscuit_auth::AuthorizerLimits {
        max_time: HANG,
        ..crate::biscuit::default_limits()
    }
}

/// The configuration of a property test: `cases` per property unless `PROPTEST_CASES` says
/// otherwise, and the fixed `seed` unless `PROPTEST_RNG_SEED` gives one, so `cargo test`
/// stays quick and every run replays; failures are not persisted to files.
pub(crate) fn proptest_budget(cases: u32, seed: u64) -> proptest::test_runner::Config {
    let env = proptest::test_runner::Config::default();
    proptest::test_runner::Config {
        cases: if std::env::var_os("PROPTEST_CASES").is_some() {
            env.cases
        } else {
            cases
        },
        rng_seed: if std::env::var_os("PROPTEST_RNG_SEED").is_some() {
            env.rng_seed
        } else {
            proptest::test_runner::RngSeed::Fixed(seed)
        },
        failure_persistence: None,
        ..env
    }
}

/// Arbitrary JSON for property tests: every scalar (integers at both ends, finite floats,
/// any string, and short strings of quotes, backslashes, control characters and
/// multi-byte text), nested up to `depth` levels, at most `size` nodes, `width` members or
/// elements per container, keys with escapes and non-ASCII letters.
pub(crate) fn json_value(
    depth: u32,
    size: u32,
    width: usize,
) -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
    use proptest::prelude::*;
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        any::<String>().prop_map(Value::String),
        "[a-z\\\\\"/\u{0}-\u{1f}\u{7f}-\u{d7ff}]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(depth, size, width as u32, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..width).prop_map(Value::Array),
            proptest::collection::btree_map("[a-zA-Z_\u{e9}\"\\\\]{0,8}", inner, 0..width)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
