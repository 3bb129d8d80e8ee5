//! `mlpolicy emulator`

use super::{ExitStatus, args::EmulatorArgs};
use crate::emulator::{EmulatorConfig, Realism, Throttle};

pub fn run(args: &EmulatorArgs) -> ExitStatus {
    let cfg = match config(args) {
        Ok(cfg) => cfg,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitStatus::Error;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitStatus::Error;
        }
    };
    match runtime.block_on(crate::emulator::run_cli(cfg)) {
        Ok(()) => ExitStatus::Success,
        Err(e) => {
            eprintln!("error: {e}");
            ExitStatus::Error
        }
    }
}

/// Flags → emulator configuration; unset flags keep the emulator's defaults.
fn config(args: &EmulatorArgs) -> Result<EmulatorConfig, String> {
    let mut realism = Realism::default();
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
    Ok(EmulatorConfig {
        listen: args.listen,
        state_file: args.state.clone(),
        seed_file: args.seed.clone(),
        tenant: args.tenant.clone().unwrap_or_default(),
        strict_auth: args.strict_auth,
        tls: args.tls,
        realism,
    })
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn probability(flag: &str, rate: f64) -> Result<f64, String> {
    if (0.0..=1.0).contains(&rate) { Ok(rate) } else { Err(format!("{flag} must be between 0 and 1, got {rate}")) }
}
