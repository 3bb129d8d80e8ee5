//! The emulator's command-line flags, shared by its own binary and `mlpolicy emulator`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::realism::Profile;
use crate::{EmulatorConfig, Limits, Throttle};

/// A local Azure: the ARM, Microsoft Graph and token endpoints, over HTTP.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on; port 0 picks a free port (printed on the ready line).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// YAML state: loaded at start when it exists, saved after every change; locked
    /// (`FILE.lock`) for one emulator at a time.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// How long to wait for another emulator to release `--state` before failing.
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = humantime::parse_duration)]
    pub lock_timeout: Duration,
    /// Tenant id (default: the state's, or a fixed one).
    #[arg(long, value_name = "ID")]
    pub tenant: Option<String>,
    /// Initial tenant (YAML) when the state file does not exist.
    #[arg(long, value_name = "FILE")]
    pub seed: Option<PathBuf>,
    /// Realism preset: `quick` (everything at once) or `azure` (replication delay, throttling,
    /// LRO polls, re-cased ids and shuffled keys together); the flags below override its values.
    #[arg(long, value_enum, default_value_t = Profile::Quick)]
    pub profile: Profile,
    /// Added latency per request, e.g. `30ms`.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub latency: Option<Duration>,
    /// List page size (Azure's default is 100).
    #[arg(long, value_name = "N")]
    pub page_size: Option<usize>,
    /// Token-bucket throttling: `azure`, or `read=CAP/REFILL,write=CAP/REFILL,graph=CAP/REFILL,random=RATE`.
    #[arg(long, value_name = "SPEC")]
    pub throttle: Option<String>,
    /// Probability of an injected 500/503 per request, 0 to 1.
    #[arg(long, value_name = "RATE")]
    pub fault_rate: Option<f64>,
    /// Probability of a dropped connection per request, 0 to 1.
    #[arg(long, value_name = "RATE")]
    pub drop_rate: Option<f64>,
    /// How long new principals stay invisible to role assignments and Graph, e.g. `5s`.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub replication_delay: Option<Duration>,
    /// Access token lifetime, e.g. `30s` (default `1h`).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub token_lifetime: Option<Duration>,
    /// Random seed, for reproducible faults, throttling and ids.
    #[arg(long = "random-seed", value_name = "N")]
    pub random_seed: Option<u64>,
    /// Serve HTTPS with a certificate from a throwaway CA (its PEM is written beside the state).
    #[arg(long)]
    pub tls: bool,
    /// Accept only applications and subscriptions present in the state.
    #[arg(long)]
    pub strict_auth: bool,
    /// Connections open at once; more wait to be accepted.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_connections)]
    pub max_connections: usize,
    /// Close a connection that has not sent a complete request head in this time (also the
    /// keep-alive limit between requests).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    pub header_read_timeout: Duration,
    /// Close a connection that moves no byte for this long while no request is being handled.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,
}

impl Args {
    /// The flags as an emulator configuration; unset flags keep the emulator's defaults.
    pub fn config(&self) -> Result<EmulatorConfig, String> {
        let args = self;
        let mut realism = args.profile.realism();
        if let Some(d) = args.latency {
            realism.latency_ms = millis(d);
        }
        if let Some(n) = args.page_size {
            realism.page_size = n;
        }
        if let Some(spec) = &args.throttle {
            realism.throttle = Some(spec.parse::<Throttle>().map_err(|e| format!("--throttle: {e}"))?);
        }
        if let Some(rate) = args.fault_rate {
            realism.fault_rate = probability("--fault-rate", rate)?;
        }
        if let Some(rate) = args.drop_rate {
            realism.drop_rate = probability("--drop-rate", rate)?;
        }
        if let Some(d) = args.replication_delay {
            realism.replication_delay_ms = millis(d);
        }
        if let Some(d) = args.token_lifetime {
            realism.token_lifetime_s = d.as_secs().max(1);
        }
        realism.seed = args.random_seed;
        // The flags' names for the fields `Realism::validate` names.
        realism.validate().map_err(|e| {
            [
                ("`latency_ms`", "--latency"),
                ("`page_size`", "--page-size"),
                ("`replication_delay_ms`", "--replication-delay (in ms)"),
                ("`token_lifetime_s`", "--token-lifetime (in s)"),
                ("`throttle.", "--throttle `"),
            ]
            .iter()
            .fold(e, |e, (field, flag)| e.replace(field, flag))
        })?;
        let limits = Limits {
            max_connections: args.max_connections,
            header_read_timeout: args.header_read_timeout,
            idle_timeout: args.idle_timeout,
        };
        limits.validate()?;
        Ok(EmulatorConfig {
            listen: args.listen,
            state_file: args.state.clone(),
            seed_file: args.seed.clone(),
            tenant: args.tenant.clone().unwrap_or_default(),
            strict_auth: args.strict_auth,
            tls: args.tls,
            realism,
            lock_timeout: args.lock_timeout,
            limits,
        })
    }
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn probability(flag: &str, rate: f64) -> Result<f64, String> {
    if (0.0..=1.0).contains(&rate) { Ok(rate) } else { Err(format!("{flag} must be between 0 and 1, got {rate}")) }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::Args;
    use crate::{DEFAULT_LOCK_TIMEOUT, Limits};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn config(flags: &[&str]) -> Result<crate::EmulatorConfig, String> {
        Cli::try_parse_from(std::iter::once("emulator").chain(flags.iter().copied())).unwrap().args.config()
    }

    #[test]
    fn defaults_are_valid_and_out_of_range_flags_are_refused_by_name() {
        let c = config(&[]).unwrap();
        assert_eq!(c.limits, Limits::default());
        assert_eq!(c.lock_timeout, DEFAULT_LOCK_TIMEOUT);
        let c = config(&["--lock-timeout", "5s", "--max-connections", "8", "--idle-timeout", "2s"]).unwrap();
        assert_eq!((c.lock_timeout.as_secs(), c.limits.max_connections, c.limits.idle_timeout.as_secs()), (5, 8, 2));
        for (flags, expect) in [
            (&["--latency", "2m"][..], "--latency must be at most 60000 ms"),
            (&["--page-size", "20000"], "--page-size must be at most 10000"),
            (&["--fault-rate", "1.5"], "--fault-rate must be between 0 and 1"),
            (&["--throttle", "read=0/1"], "arm_read_capacity"),
            (&["--max-connections", "0"], "connection limit"),
            (&["--header-read-timeout", "0s"], "header read timeout"),
        ] {
            let e = config(flags).unwrap_err();
            assert!(e.contains(expect), "{flags:?}: {e}");
        }
    }
}
