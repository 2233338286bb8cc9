//! NATS for tests: the shared server (`TEST_NATS_URL`, provisioned by `scripts/test.sh`) used
//! under names of a test's own, so that tests running at once never read each other's messages
//! or share a stream.

/// `TEST_NATS_URL`, or the local default.
pub fn shared_url() -> String {
    std::env::var("TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

/// A fresh name part for one test: `t<hex>`, usable in subjects (`t1f3a….session.revoked`) and
/// stream names (`T1F3A…_EVENTS`) alike.
pub fn unique_prefix() -> String {
    format!("t{}", uuid::Uuid::new_v4().simple())
}
