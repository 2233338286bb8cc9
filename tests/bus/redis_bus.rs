//! What the Redis bus promises beyond the shared contract: while Redis fails, request paths are
//! answered without asking it until a heartbeat gets through, and invalidations it missed go out
//! with that heartbeat; a cached record is served at most its maximum age after the miss that
//! preceded the store read, however often it is read. Fault stories run on a private server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use session_service::bus::redis::{RedisBus, RedisOptions};
use session_service::bus::BusError;
use session_service::config::Secret;
use session_service::session::cache::{CacheError, Cached};
use session_test_support::redis::RedisServer;
use uuid::Uuid;

use crate::stories::{info, record};
use crate::{redis_url, remove_keys, Node, TTL};

/// Redis timeout here: short, so a frozen server costs little.
const TIMEOUT: Duration = Duration::from_millis(200);

async fn node(url: &str, prefix: &str, cache_ttl: Duration) -> Arc<dyn Node> {
    let options = RedisOptions {
        url: Secret(url.to_owned()),
        prefix: prefix.to_owned(),
        liveness_ttl: TTL,
        cache_ttl,
        timeout: TIMEOUT,
    };
    Arc::new(RedisBus::connect(options).await.expect("connect to redis"))
}

async fn cached(node: &Arc<dyn Node>, id: Uuid) -> bool {
    matches!(node.get(id).await.expect("the cache answers"), Cached::Hit(_))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_redis_is_frozen_requests_skip_it_and_the_beat_that_gets_through_replays_what_they_missed() {
    let redis = RedisServer::start().await;
    let (a, b) = (
        node(&redis.url(), "freeze", Duration::from_secs(60)).await,
        node(&redis.url(), "freeze", Duration::from_secs(60)).await,
    );
    a.heartbeat(&info(&a)).await.unwrap();
    let rec = record("u1");
    let Cached::Miss(ticket) = a.get(rec.id).await.unwrap() else { panic!("an unknown session is a miss") };
    a.fill(ticket, &rec).await.unwrap();

    redis.freeze();
    assert!(unavailable(a.get(rec.id).await), "no answer within the timeout");
    let tripped = a.health();
    assert!(tripped.open, "the timeout opened the breaker");
    for _ in 0..10 {
        assert!(unavailable(a.get(rec.id).await));
    }
    assert!(a.invalidate(&[rec.id]).await.is_err(), "the invalidation is kept for later");
    let skipped = a.health();
    assert_eq!(skipped.attempted, tripped.attempted, "nothing was sent while open");
    assert_eq!(skipped.short_circuited, tripped.short_circuited + 11);
    assert!(matches!(a.get(rec.id).await, Ok(Cached::Miss(_))), "A never reads what it could not invalidate");
    assert!(a.heartbeat(&info(&a)).await.is_err(), "the probe asks, and times out");
    assert!(a.health().open);

    redis.thaw();
    assert!(cached(&b, rec.id).await, "until A replays, B still reads the old entry");
    a.heartbeat(&info(&a)).await.expect("the probe gets through");
    assert!(!a.health().open, "the answered probe closed the breaker");
    assert!(!cached(&b, rec.id).await, "the beat replayed the invalidation");
    assert_eq!(a.health().trips, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_record_is_served_at_most_its_max_age_after_the_miss_however_often_it_is_read() {
    const MAX_AGE: Duration = Duration::from_secs(1);
    // Redis counts the age from the fill it receives, a moment after the node computed it.
    const SLACK: Duration = Duration::from_millis(150);
    let (url, prefix) = (redis_url(), format!("test-{}", Uuid::new_v4().simple()));
    let a = node(&url, &prefix, MAX_AGE).await;
    let rec = record("u2");
    let Cached::Miss(ticket) = a.get(rec.id).await.unwrap() else { panic!("an unknown session is a miss") };
    let missed = Instant::now();
    tokio::time::sleep(MAX_AGE / 3).await; // a slow store read between the miss and the fill
    a.fill(ticket, &rec).await.unwrap();
    assert!(cached(&a, rec.id).await, "filled");
    while cached(&a, rec.id).await {
        assert!(missed.elapsed() < MAX_AGE + SLACK, "still served {:?} after the miss", missed.elapsed());
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let Cached::Miss(late) = a.get(rec.id).await.unwrap() else { panic!("expired") };
    tokio::time::sleep(MAX_AGE / 2).await;
    a.fill(late, &rec).await.unwrap();
    assert!(!cached(&a, rec.id).await, "a ticket older than half the max age fills nothing");
    remove_keys(&url, &prefix).await;
}

/// Whether a cache read failed because the bus was unavailable (the bus error is the cache
/// error's source).
fn unavailable(read: Result<Cached, CacheError>) -> bool {
    matches!(read, Err(CacheError(cause)) if matches!(cause.downcast_ref::<BusError>(), Some(BusError::Unavailable(_))))
}
