//! The store contract, told once and run against every backend: each story in the modules below
//! takes an `Arc<dyn Store>`, and `store_stories!` runs it as `sqlite::<story>` on a fresh SQLite
//! file and as `postgres::<story>` on a fresh Postgres database (`TEST_DATABASE_URL`).
//!
//! Every time is explicit (a base instant plus offsets); nothing sleeps.

mod cap;
mod edits;
mod erasure;
mod feed;
mod fixtures;
mod journal;
mod outbox;
mod presence;
mod reconciliation;
mod revocation;
mod rotation;
mod sessions;

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;

/// Runs a story to completion even if it fails, so its database is removed either way; the
/// failure is re-raised afterwards.
async fn run(story: impl Future<Output = ()>) -> Result<(), Box<dyn Any + Send>> {
    AssertUnwindSafe(story).catch_unwind().await
}

/// Generates one `#[tokio::test]` per backend for each `module::story`.
macro_rules! store_stories {
    ($($module:ident :: $story:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $story() {
                    let url = session_test_support::db::sqlite_url();
                    let store = session_service::store::connect(&url).await.expect("open sqlite");
                    assert_eq!(store.backend(), "sqlite");
                    let outcome = crate::run(crate::$module::$story(store)).await;
                    session_test_support::db::remove_sqlite(&url);
                    outcome.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $story() {
                    let url = session_test_support::db::postgres_url().await;
                    let store = session_service::store::connect(&url).await.expect("connect postgres");
                    assert_eq!(store.backend(), "postgres");
                    let outcome = crate::run(crate::$module::$story(store)).await;
                    session_test_support::db::drop_postgres(&url).await;
                    outcome.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                }
            )*
        }
    };
}

store_stories! {
    sessions::a_created_session_reads_back_with_every_field_equal,
    sessions::empty_and_later_set_fields_read_back_equal_too,
    sessions::creating_a_session_id_twice_is_a_conflict,
    sessions::listing_returns_active_or_all_sessions_newest_first,
    sessions::listing_pages_through_sessions_with_a_keyset_cursor,
    edits::update_changes_only_the_given_fields_and_records_it,
    edits::extend_moves_the_expiry_of_an_active_session,
    edits::extend_refuses_missing_revoked_and_expired_sessions,
    edits::delete_revokes_an_active_session_removes_the_row_and_keeps_its_audit,
    edits::delete_of_an_inactive_session_revokes_nothing_more,
    erasure::erasing_a_user_revokes_the_active_sessions_and_erases_every_row_of_theirs,
    erasure::erasing_a_user_twice_changes_nothing_the_second_time,
    erasure::erasing_a_user_without_sessions_writes_nothing_and_a_bare_session_is_still_revoked,
    cap::creating_beyond_the_cap_revokes_the_least_recently_used,
    cap::an_eviction_is_audited_and_announced_as_the_session_limit,
    cap::a_lower_cap_evicts_every_session_beyond_it_in_one_creation,
    cap::concurrent_creations_for_one_user_leave_exactly_cap_active,
    rotation::rotation_advances_the_generation_and_keeps_the_previous_hash,
    rotation::rotation_keeps_the_last_ip_and_user_agent_when_none_are_given,
    rotation::rotation_with_a_stale_generation_changes_nothing,
    rotation::rotation_of_a_revoked_or_expired_session_changes_nothing,
    rotation::concurrent_rotations_of_one_generation_let_exactly_one_through,
    revocation::revoking_a_session_twice_revokes_it_once,
    revocation::a_revocation_is_audited_with_its_actor_reason_and_ip,
    revocation::revoking_a_user_revokes_their_active_sessions_but_the_spared_one,
    revocation::revoking_a_user_twice_revokes_each_session_once,
    revocation::a_suspicious_revocation_also_emits_a_suspicious_event,
    revocation::a_revocation_s_cause_is_written_first_and_even_when_nothing_was_left_to_revoke,
    revocation::the_sweep_expires_only_overdue_active_sessions_earliest_first,
    revocation::an_expiry_is_audited_and_announced,
    journal::appended_audit_records_read_back_exactly,
    journal::audit_lists_a_sessions_records_newest_first_even_after_deletion,
    journal::audit_lists_a_users_records_in_pages_with_a_before_cursor,
    journal::pending_events_come_in_creation_order_until_marked_sent,
    journal::count_by_status_counts_each_stored_status,
    outbox::a_claim_takes_the_oldest_undelivered_events_and_marking_delivers_them,
    outbox::a_dropped_claim_leaves_every_event_undelivered,
    outbox::a_held_claim_keeps_its_sessions_events_from_every_other_claim,
    outbox::pruning_delivered_rows_never_deletes_an_undelivered_one,
    outbox::pruning_any_rows_deletes_old_ones_whatever_their_state_in_bounded_batches,
    presence::last_seen_is_recorded_to_the_microsecond_and_never_moves_back,
    presence::unknown_ids_are_ignored_and_the_count_says_how_many_rows_changed,
    presence::an_empty_flush_returns_zero_and_changes_nothing,
    presence::an_id_given_twice_in_one_flush_keeps_its_latest_time,
    presence::a_flush_of_2500_sessions_lands_every_entry,
    presence::a_flush_changes_nothing_but_last_seen_and_leaves_no_trail,
    reconciliation::inactive_among_reports_revoked_expired_and_missing_sessions_but_not_active_ones,
    reconciliation::inactive_among_an_empty_list_or_only_active_sessions_reports_nothing,
    reconciliation::inactive_among_reports_an_id_given_twice_once,
    reconciliation::inactive_among_1200_ids_answers_for_every_one_across_chunks,
    feed::the_feed_lists_revocations_in_order_and_continues_from_its_cursor,
    feed::the_feed_pages_through_a_user_wide_revocation_without_losing_one,
    feed::the_feed_skips_revocations_that_no_longer_matter,
    feed::deletion_and_eviction_revocations_are_in_the_feed_but_expiry_is_not,
}

/// An in-memory database exists only inside its one connection, so reads must go through the
/// connection that wrote.
#[tokio::test]
async fn an_in_memory_sqlite_store_reads_what_it_wrote() {
    let store = session_service::store::connect("sqlite::memory:").await.expect("open");
    sessions::a_created_session_reads_back_with_every_field_equal(store.clone()).await;
    rotation::rotation_advances_the_generation_and_keeps_the_previous_hash(store).await;
}

#[tokio::test]
async fn an_unknown_url_scheme_is_refused() {
    let refused = session_service::store::connect("mysql://localhost/sessions").await;
    assert!(matches!(refused, Err(session_service::session::store::StoreError::Backend(_))));
}
