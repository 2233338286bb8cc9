//! Typed settings, in sections: one struct per part of the node, each holding its defaults once
//! (in its `Default`, which takes them from the part's own config where the part has one).
//! Precedence: defaults in code < optional TOML file (`--config` / `SESSION_CONFIG`) <
//! environment < command-line flags. The file fills a [`Config`] over the defaults, then clap
//! overwrites only what the environment or the command line sets. [`Settings`] is that config
//! resolved into the parts' own configs and checked. Secrets never appear in `Debug` output.
//!
//! The README's configuration table is generated from these structs ([`table`]).

mod database;
mod events;
mod fleet;
mod gateway;
mod http;
mod sessions;
mod settings;
pub mod table;
mod tokens;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser};
use serde::{Deserialize, Serialize};

pub use self::database::DatabaseSettings;
pub use self::events::EventsSettings;
pub use self::fleet::{FleetSettings, RedisSettings};
pub use self::gateway::{DrainSettings, GatewaySettings};
pub use self::http::{HttpSettings, OpsSettings};
pub use self::sessions::{PlatformLifetimes, SessionSettings};
pub use self::settings::Settings;
pub use self::tokens::{KeySource, TokenSettings};

/// Every setting, by section, as an operator writes them: TOML tables, environment variables,
/// command-line flags.
#[derive(Debug, Clone, PartialEq, clap::Args, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Directory of the embedded database and of the keys generated on first start.
    #[arg(id = "data_dir", long = "data-dir", env = "DATA_DIR")]
    pub data_dir: PathBuf,
    #[command(flatten, next_help_heading = "[http]")]
    pub http: HttpSettings,
    #[command(flatten, next_help_heading = "[ops]")]
    pub ops: OpsSettings,
    #[command(flatten, next_help_heading = "[database]")]
    pub database: DatabaseSettings,
    #[command(flatten, next_help_heading = "[tokens]")]
    pub tokens: TokenSettings,
    #[command(flatten, next_help_heading = "[sessions]")]
    pub sessions: SessionSettings,
    #[command(flatten, next_help_heading = "[gateway]")]
    pub gateway: GatewaySettings,
    #[command(flatten, next_help_heading = "[drain]")]
    pub drain: DrainSettings,
    #[command(flatten, next_help_heading = "[redis]")]
    pub redis: RedisSettings,
    #[command(flatten, next_help_heading = "[fleet]")]
    pub fleet: FleetSettings,
    #[command(flatten, next_help_heading = "[events]")]
    pub events: EventsSettings,
    #[command(flatten, next_help_heading = "[log]")]
    pub log: LogSettings,
    /// Lifetimes per platform (`[platforms.<name>]`), over `[sessions]`; TOML only.
    #[arg(skip)]
    pub platforms: HashMap<String, PlatformLifetimes>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data"),
            http: HttpSettings::default(),
            ops: OpsSettings::default(),
            database: DatabaseSettings::default(),
            tokens: TokenSettings::default(),
            sessions: SessionSettings::default(),
            gateway: GatewaySettings::default(),
            drain: DrainSettings::default(),
            redis: RedisSettings::default(),
            fleet: FleetSettings::default(),
            events: EventsSettings::default(),
            log: LogSettings::default(),
            platforms: HashMap::new(),
        }
    }
}

/// The command line: the optional file, then every setting of [`Config`].
#[derive(Debug, Parser)]
#[command(name = "session-service", version, about = "Session authority and real-time presence")]
struct Cli {
    /// Optional TOML file with any of the settings below, in their sections (`[gateway]`, ...).
    #[arg(long, env = "SESSION_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: Config,
}

/// The command line's parser, with each setting's default in its help. Every setting is
/// optional on it and none has a default value there: what clap does not find leaves the
/// file's value (or the default) in place.
pub fn command() -> clap::Command {
    let defaults = serde_json::to_value(Config::default()).expect("the settings serialize");
    bare_command().mut_args(|arg| {
        let key = arg.get_id().as_str();
        match (table::lookup(&defaults, key).and_then(|v| table::plain(key, v)), arg.get_help()) {
            (Some(default), Some(help)) => {
                let help = format!("{help} [default: {default}]");
                arg.help(help)
            }
            _ => arg,
        }
    })
}

/// [`command`] without the defaults in the help. A value is named after its environment
/// variable (`--ws-max-connections <WS_MAX_CONNECTIONS>`), not after its dotted key.
fn bare_command() -> clap::Command {
    Cli::command_for_update().mut_args(|arg| match arg.get_env().and_then(|e| e.to_str()).map(str::to_owned) {
        Some(env) => arg.value_name(env),
        None => arg,
    })
}

impl Config {
    /// Reads the command line, the environment and the optional TOML file.
    pub fn load() -> anyhow::Result<Self> {
        Self::from_matches(&command().get_matches())
    }

    /// The file named by `matches` (or the defaults), with what `matches` sets on top.
    pub fn from_matches(matches: &ArgMatches) -> anyhow::Result<Self> {
        let mut config = match matches.get_one::<PathBuf>("config") {
            Some(path) => Self::from_file(path)?,
            None => Self::default(),
        };
        config.update_from_arg_matches(matches)?;
        Ok(config)
    }

    fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading config file {}", path.display()))?;
        Self::from_toml(&text).with_context(|| format!("parsing config file {}", path.display()))
    }

    /// A TOML file's settings over the defaults. Top-level keys of the flat layout of earlier
    /// versions (`ws_max_connections = ...`, the flag's name in snake case) are still read, as
    /// the key of their section.
    pub fn from_toml(text: &str) -> anyhow::Result<Self> {
        let mut table: toml::Table = text.parse()?;
        if !nest_flat_keys(&mut table)? {
            // Parsed again for the error messages: they point at the line.
            return Ok(toml::from_str(text)?);
        }
        Ok(toml::Value::Table(table).try_into()?)
    }
}

/// Moves the flat keys of `table` into their sections; says whether there were any.
fn nest_flat_keys(table: &mut toml::Table) -> anyhow::Result<bool> {
    let mut moved = false;
    for arg in bare_command().get_arguments() {
        let (Some((section, key)), Some(long)) = (arg.get_id().as_str().split_once('.'), arg.get_long()) else {
            continue;
        };
        let Some(value) = table.remove(&long.replace('-', "_")) else { continue };
        let entry = table.entry(section).or_insert_with(|| toml::Table::new().into());
        let section_table = entry.as_table_mut().with_context(|| format!("`{section}` must be a table"))?;
        anyhow::ensure!(!section_table.contains_key(key), "{long} is set twice: flat and in [{section}]");
        section_table.insert(key.to_owned(), value);
        moved = true;
    }
    Ok(moved)
}

/// A string that must not be logged.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Redacted like `Debug`: settings are only serialized to be shown.
impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("<redacted>")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

/// `[log]`: what the node's log looks like (its level comes from `RUST_LOG`).
#[derive(Debug, Clone, Default, PartialEq, clap::Args, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `text` or `json`; the level is set by `RUST_LOG`.
    #[arg(id = "log.format", long = "log-format", env = "LOG_FORMAT", value_enum)]
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// A part's default period, in the milliseconds its setting is written in.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A configured period in milliseconds; zero would spin, so it counts as one.
fn ms(v: u64) -> Duration {
    Duration::from_millis(v.max(1))
}

#[cfg(test)]
mod tests;
