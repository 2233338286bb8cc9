//! Layering, sections and checks of the settings.

use std::path::PathBuf;

use chrono::Duration;

use super::*;
use crate::session::Policy;

/// The command line alone: the test process's environment (a developer's `DATABASE_URL`, say)
/// must not leak in.
fn flags(args: &[&str]) -> ArgMatches {
    let command = command().mut_args(|arg| arg.env(None::<&'static str>));
    command.try_get_matches_from(std::iter::once("session-service").chain(args.iter().copied())).unwrap()
}

/// `text` as the file, `args` as the command line on top.
fn layered(text: &str, args: &[&str]) -> Config {
    let mut config = Config::from_toml(text).unwrap();
    config.update_from_arg_matches(&flags(args)).unwrap();
    config
}

#[test]
fn defaults_give_an_embedded_node_on_localhost() {
    let s = Settings::resolve(Config::default()).unwrap();
    assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(s.database_url.0, "sqlite://data/sessions.db");
    assert_eq!(s.signing_key, KeySource::Generated(PathBuf::from("data/signing-key.pem")));
    assert_eq!(s.policy, Policy::default());
}

#[test]
fn the_sections_default_to_the_parts_own_defaults() {
    let s = Settings::resolve(Config::default()).unwrap();
    let gateway = crate::ws::GatewayConfig::default();
    assert_eq!(format!("{:?}", s.gateway), format!("{gateway:?}"));
    let http = crate::server::HttpConfig { drain_timeout: gateway.drain_timeout, ..Default::default() };
    assert_eq!(format!("{:?}", s.http), format!("{http:?}"));
    assert_eq!(format!("{:?}", s.fleet), format!("{:?}", crate::fleet::FleetConfig::default()));
    assert_eq!(s.cluster_liveness_ttl, crate::bus::redis::RedisOptions::default().liveness_ttl);
    assert_eq!(s.database_max_connections, crate::store::postgres::DEFAULT_MAX_CONNECTIONS);
    assert!(!s.limits_configured);
}

#[test]
fn a_nested_file_sets_each_section_and_leaves_the_rest_to_the_defaults() {
    let c = Config::from_toml(
        "data_dir = \"/var/lib/sessions\"\n\
         [gateway]\nmax_connections = 50\n\
         [redis]\nurl = \"redis://10.0.0.1:6379\"\ncache_ttl_secs = 5\n\
         [sessions]\naccess_ttl_secs = 60\n\
         [platforms.web]\nidle_timeout_secs = 3600\n",
    )
    .unwrap();
    assert_eq!(c.gateway.max_connections, 50);
    assert_eq!(c.gateway.max_pending, GatewaySettings::default().max_pending);
    let s = Settings::resolve(c).unwrap();
    assert_eq!(s.database_url.0, "sqlite:///var/lib/sessions/sessions.db");
    assert_eq!(s.redis.as_ref().unwrap().cache_ttl, std::time::Duration::from_secs(5));
    assert_eq!(s.policy.lifetimes("web").idle_timeout, Duration::hours(1));
    assert_eq!(s.policy.lifetimes("web").access_ttl, Duration::seconds(60));
    assert!(s.limits_configured);
}

#[test]
fn a_flag_overrides_its_key_of_the_file_and_no_other() {
    let file = "[gateway]\nheartbeat_interval_ms = 11000\nheartbeat_timeout_ms = 33000\n\
                [sessions]\nmax_sessions_per_user = 5\n";
    let c = layered(file, &["--ws-heartbeat-interval-ms", "12000", "--access-ttl-secs", "120"]);
    assert_eq!(c.gateway.heartbeat_interval_ms, 12_000);
    assert_eq!(c.gateway.heartbeat_timeout_ms, 33_000);
    assert_eq!(c.sessions.access_ttl_secs, 120);
    assert_eq!(c.sessions.max_sessions_per_user, 5);
    assert_eq!(layered(file, &[]), Config::from_toml(file).unwrap(), "nothing on the command line, nothing changed");
}

#[test]
fn list_flags_split_where_their_environment_variables_do() {
    let hash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    let keys = format!("a:{hash}:sessions:read;b:{hash}:sessions:write");
    let c = layered("", &["--service-keys", &keys, "--previous-key-files", "old-1.pem,old-2.pem"]);
    assert_eq!(c.http.service_keys.iter().map(|k| k.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(c.tokens.previous_key_files, [PathBuf::from("old-1.pem"), PathBuf::from("old-2.pem")]);
}

#[test]
fn flat_keys_of_earlier_versions_are_read_into_their_sections() {
    let c = Config::from_toml("ws_max_connections = 50\nredis_url = \"redis://r:6379\"\nissuer = \"me\"\n").unwrap();
    assert_eq!(c.gateway.max_connections, 50);
    assert_eq!(c.redis.url, Some(Secret("redis://r:6379".into())));
    assert_eq!(c.tokens.issuer, "me");
    let twice = Config::from_toml("ws_max_connections = 50\n[gateway]\nmax_connections = 60\n");
    assert!(twice.is_err(), "one key set two ways is refused rather than guessed");
}

#[test]
fn unknown_file_keys_and_bad_values_are_refused() {
    assert!(Config::from_toml("[sessions]\nacess_ttl_secs = 1").is_err());
    assert!(Config::from_toml("acess_ttl_secs = 1").is_err());
    assert!(Config::from_toml("[gateway]\nmax_connections = \"many\"").is_err());
    let mut c = Config::default();
    c.sessions.refresh_grace_secs = 0;
    assert!(Settings::resolve(c).is_err());
    let mut c = Config::default();
    c.fleet.liveness_ttl_ms = c.fleet.heartbeat_ms;
    assert!(Settings::resolve(c).is_err());
}

#[test]
fn a_redis_password_does_not_show_in_debug_output() {
    let url = "redis://:s3cr3t-pw@redis.internal:6379,redis://:s3cr3t-pw@redis-2.internal:6379";
    let mut c = Config::default();
    c.redis.url = Some(Secret(url.into()));
    assert!(!format!("{c:?}").contains("s3cr3t-pw"), "{c:?}");
    let s = Settings::resolve(c).unwrap();
    assert!(s.redis.is_some());
    assert!(!format!("{s:?}").contains("s3cr3t-pw"), "{s:?}");
}

#[test]
fn a_cache_entry_lives_well_under_a_minute_by_default() {
    let mut c = Config::default();
    c.redis.url = Some(Secret("redis://127.0.0.1:6379".into()));
    let redis = Settings::resolve(c).unwrap().redis.unwrap();
    assert!(redis.cache_ttl <= std::time::Duration::from_secs(30), "{:?}", redis.cache_ttl);
}

#[test]
fn secrets_do_not_show_in_debug_or_serialized_output() {
    let mut c = Config::default();
    c.tokens.refresh_pepper = Some(Secret("hunter2".into()));
    c.database.url = Some(Secret("postgres://u:hunter3@db/sessions".into()));
    assert!(!serde_json::to_string(&c).unwrap().contains("hunter"));
    let s = Settings::resolve(c).unwrap();
    assert!(!format!("{s:?}").contains("hunter"));
}

#[test]
fn the_outbox_keeps_revocations_while_a_token_of_any_platform_can_still_be_presented() {
    let s = Settings::resolve(Config::default()).unwrap();
    assert_eq!(s.events, crate::events::EventsConfig::default());
    // The longest access TTL is a platform's, not the default's: retention below it is refused.
    let c = Config::from_toml(
        "[sessions]\naccess_ttl_secs = 60\n[platforms.web]\naccess_ttl_secs = 900\n\
         [events]\nsent_retention_secs = 600\n",
    )
    .unwrap();
    let err = Settings::resolve(c).unwrap_err().to_string();
    assert!(err.contains("at least the access-token lifetime (900s)"), "{err}");
    let c = layered("[events]\nnats_url = \"nats://127.0.0.1:4222\"\n", &["--outbox-retention-secs", "900"]);
    let s = Settings::resolve(c).unwrap();
    assert_eq!(s.events.nats_url.as_deref(), Some("nats://127.0.0.1:4222"));
    assert_eq!(s.events.unsent_retention, std::time::Duration::from_secs(900));
    assert_eq!(s.events.subject("session.revoked"), "session.revoked");
}
