//! `warden audit`: the tamper-evident audit log, read from the data directory — no server
//! needed. `verify` is a check: a break in the chain is [`Outcome::CheckFailed`], a log or
//! key that cannot be read is an error.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;
use serde_json::json;
use warden_authority::data_dir::DataDir;

use super::{print, unix_now, Common, Outcome};

#[derive(Debug, clap::Args)]
pub(super) struct AuditArgs {
    #[command(subcommand)]
    action: AuditAction,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Subcommand)]
enum AuditAction {
    /// Check the whole chain and every checkpoint signature; name the first break.
    Verify {
        /// The audit public key (JWK) to trust; default: the data directory's
        /// `audit.pub.jwk`. Pin a copy elsewhere: whoever can rewrite the log can rewrite
        /// that file too.
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Print entries as JSON lines, exactly as stored.
    Export {
        /// Unix seconds, or a duration ago such as `30m`, `24h`, `7d` (default: everything).
        #[arg(long)]
        since: Option<String>,
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ExportFormat {
    Jsonl,
}

pub(super) fn run(args: AuditArgs) -> anyhow::Result<Outcome> {
    let AuditArgs { action, common } = args;
    let dir = DataDir::existing(&common.data_dir);
    match action {
        AuditAction::Verify { key } => verify(&dir, key, common.json),
        AuditAction::Export { since, format: _ } => {
            let since_ms = match since {
                None => i64::MIN,
                Some(s) => parse_since(&s, unix_now())? * 1000,
            };
            let log = dir.audit_dir().join("audit.jsonl");
            let stdout = std::io::stdout();
            warden_audit::export(&log, since_ms, std::io::BufWriter::new(stdout.lock()))?;
            Ok(Outcome::Done)
        }
    }
}

fn verify(dir: &DataDir, key: Option<PathBuf>, json: bool) -> anyhow::Result<Outcome> {
    let key_file = key.unwrap_or_else(|| {
        dir.path()
            .join(warden_authority::data_dir::AUDIT_PUBLIC_KEY_FILE)
    });
    let text = std::fs::read_to_string(&key_file)
        .with_context(|| format!("cannot read `{}`", key_file.display()))?;
    let jwk: warden_core::jwks::Jwk = serde_json::from_str(&text)
        .with_context(|| format!("`{}` is not a JWK", key_file.display()))?;
    let keys = warden_audit::KeyRing::new().with(jwk.to_public_key()?);
    match warden_audit::verify_dir(&dir.audit_dir(), &keys) {
        Ok(report) => {
            let out = json!({
                "status": "ok",
                "entries": report.entries,
                "checkpoints": report.checkpoints,
                "signed_entries": report.signed_entries,
                "head": report.head.to_b64(),
                "torn_tail": report.torn_tail.map(|t| t.line),
            });
            print(&out, json);
            Ok(Outcome::Done)
        }
        Err(warden_audit::VerifyError::Tampered(finding)) => {
            eprintln!("audit log does not verify: {finding}");
            Ok(Outcome::CheckFailed)
        }
        Err(e) => Err(e.into()),
    }
}

/// `--since`: unix seconds, or a duration ago (`90s`, `30m`, `24h`, `7d`).
fn parse_since(s: &str, now: i64) -> anyhow::Result<i64> {
    if let Ok(t) = s.parse::<i64>() {
        return Ok(t);
    }
    // The unit is the last character, which need not be one byte.
    let last = s.char_indices().next_back().map_or(0, |(i, _)| i);
    let (digits, unit) = s.split_at(last);
    let n: i64 = digits
        .parse()
        .map_err(|_| anyhow::anyhow!("--since `{s}`: give unix seconds or e.g. 30m, 24h, 7d"))?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => anyhow::bail!("--since `{s}`: the unit must be s, m, h or d"),
    };
    Ok(now - n.saturating_mul(secs))
}

#[cfg(test)]
mod tests {
    use super::parse_since;

    #[test]
    fn since_takes_unix_seconds_or_a_duration_ago() {
        assert_eq!(parse_since("1700000000", 0).ok(), Some(1_700_000_000));
        assert_eq!(parse_since("90s", 1000).ok(), Some(910));
        assert_eq!(parse_since("30m", 10_000).ok(), Some(8200));
        assert_eq!(parse_since("24h", 100_000).ok(), Some(13_600));
        assert_eq!(parse_since("7d", 1_000_000).ok(), Some(395_200));
        assert!(parse_since("soon", 0).is_err());
        assert!(parse_since("5w", 0).is_err());
        assert!(parse_since("", 0).is_err());
        assert!(parse_since("5é", 0).is_err());
    }
}
