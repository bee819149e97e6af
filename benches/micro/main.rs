//! Criterion micro-benchmarks of mcp-warden's per-message work, through the library's
//! public API: `cargo bench --bench micro` (filter with `-- cedar/`, `-- list/`, …).
//!
//! Groups (one module each; see each module's docs and `benches/micro/README.md`):
//! - `cedar/`: Cedar decisions and the listing rule over 10, 100 and 1,000 policies;
//! - `biscuit/`: Biscuit verification, authorization, and both with the cache warm;
//! - `jwt/`: JWT verification (HS256, RS256, ES256);
//! - `jsonrpc/`: strict parsing and classification of request bodies;
//! - `list/`: `tools/list` result filtering, JSON and SSE;
//! - `state/`: the shared-state round trip of a decision, memory and Redis;
//! - `tls/`: the listener's mTLS handshake, full and resumed;
//! - `pins/`: pinning and argument validation per call and per list.
//!
//! Timing is set for a 2-core machine: the whole suite runs in about three minutes.
//! Every fixture is built (and its result checked) outside the timed closures.

mod biscuit;
mod cedar;
mod jsonrpc;
mod jwt;
mod list;
mod pins;
mod state;
mod tls;

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};

fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = micro;
    config = config();
    targets = cedar::benches, biscuit::benches, jwt::benches, jsonrpc::benches, list::benches,
        state::benches, pins::benches, tls::benches
}
criterion_main!(micro);
