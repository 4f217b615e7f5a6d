//! `warden audit`: the tamper-evident audit log, read from the data directory — no server
//! needed. `verify` is a check: a break in the chain, a log that a witness contradicts, or
//! entries no checkpoint signs are [`Outcome::CheckFailed`]; a log, key or witness that
//! cannot be read is an error.

use std::path::{Path, PathBuf};

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
        /// The audit public key (JWK) to trust; default: `audit.pub.jwk` in the data
        /// directory (in `--log-dir` when given). Pin a copy elsewhere: whoever can rewrite
        /// the log can rewrite that file too.
        #[arg(long)]
        key: Option<PathBuf>,
        /// The directory holding `audit.jsonl` (default: DATA_DIR/audit), such as a
        /// standalone gateway's `--audit-dir`.
        #[arg(long)]
        log_dir: Option<PathBuf>,
        /// Checkpoints a witness kept: a file (one checkpoint a line), or an http:// URL
        /// that answers GET with the checkpoint JSON. Repeatable. The log must hold what
        /// each covers, with the same head, or it was cut, emptied or rewritten.
        #[arg(long = "witness", value_name = "FILE|URL")]
        witnesses: Vec<String>,
        /// Exit 0 even with entries after the last signed checkpoint (a running server's
        /// last minute); they are still counted in `unsigned_entries`.
        #[arg(long)]
        allow_unsigned: bool,
    },
    /// Print entries as JSON lines, exactly as stored.
    Export {
        /// Unix seconds, or a duration ago such as `30m`, `24h`, `7d` (default: everything).
        #[arg(long)]
        since: Option<String>,
        /// The directory holding `audit.jsonl` (default: DATA_DIR/audit), such as a
        /// standalone gateway's `--audit-dir`.
        #[arg(long)]
        log_dir: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ExportFormat {
    Jsonl,
}

pub(super) async fn run(args: AuditArgs) -> anyhow::Result<Outcome> {
    let AuditArgs { action, common } = args;
    let dir = DataDir::existing(&common.data_dir);
    match action {
        AuditAction::Verify {
            key,
            log_dir,
            witnesses,
            allow_unsigned,
        } => {
            let log_dir = log_dir.unwrap_or_else(|| dir.audit_dir());
            let key = key.unwrap_or_else(|| {
                let root = if log_dir == dir.audit_dir() {
                    dir.path()
                } else {
                    log_dir.as_path()
                };
                root.join(warden_authority::data_dir::AUDIT_PUBLIC_KEY_FILE)
            });
            let mut witnessed = Vec::new();
            for w in &witnesses {
                witnessed.push((w.clone(), read_witness(w).await?));
            }
            verify(&log_dir, &key, &witnessed, allow_unsigned, common.json)
        }
        AuditAction::Export {
            since,
            log_dir,
            format: _,
        } => {
            let since_ms = match since {
                None => i64::MIN,
                Some(s) => parse_since(&s, unix_now())? * 1000,
            };
            let log = log_dir
                .unwrap_or_else(|| dir.audit_dir())
                .join("audit.jsonl");
            let stdout = std::io::stdout();
            warden_audit::export(&log, since_ms, std::io::BufWriter::new(stdout.lock()))?;
            Ok(Outcome::Done)
        }
    }
}

/// A witness's checkpoints: a file's lines, or the JSON a URL answers GET with.
async fn read_witness(w: &str) -> anyhow::Result<Vec<warden_audit::SignedCheckpoint>> {
    let text = if w.starts_with("http://") {
        let answer = reqwest::Client::new()
            .get(w)
            .timeout(std::time::Duration::from_secs(10))
            .send()
            .await
            .with_context(|| format!("cannot reach witness `{w}`"))?;
        let status = answer.status();
        if !status.is_success() {
            anyhow::bail!("witness `{w}` answered {status}");
        }
        answer
            .text()
            .await
            .with_context(|| format!("cannot read witness `{w}`"))?
    } else {
        std::fs::read_to_string(w).with_context(|| format!("cannot read witness `{w}`"))?
    };
    let kept = warden_audit::parse_witness(&text)
        .with_context(|| format!("witness `{w}` does not hold checkpoint JSON"))?;
    if kept.is_empty() {
        anyhow::bail!("witness `{w}` holds no checkpoint");
    }
    Ok(kept)
}

fn verify(
    log_dir: &Path,
    key_file: &Path,
    witnessed: &[(String, Vec<warden_audit::SignedCheckpoint>)],
    allow_unsigned: bool,
    json: bool,
) -> anyhow::Result<Outcome> {
    let text = std::fs::read_to_string(key_file)
        .with_context(|| format!("cannot read `{}`", key_file.display()))?;
    let jwk: warden_core::jwks::Jwk = serde_json::from_str(&text)
        .with_context(|| format!("`{}` is not a JWK", key_file.display()))?;
    let keys = warden_audit::KeyRing::new().with(jwk.to_public_key()?);
    let anchors: Vec<_> = witnessed.iter().flat_map(|(_, cps)| cps.clone()).collect();
    match warden_audit::verify_dir_with(log_dir, &keys, &anchors) {
        Ok(report) => {
            let unsigned = report.unsigned_entries();
            let witnesses: Vec<_> = witnessed
                .iter()
                .map(|(name, cps)| {
                    let last = cps.iter().max_by_key(|c| c.checkpoint.count);
                    json!({
                        "witness": name,
                        "checkpoints": cps.len(),
                        "entries": last.map(|c| c.checkpoint.count),
                    })
                })
                .collect();
            let out = json!({
                "status": if unsigned == 0 { "ok" } else { "unsigned" },
                "entries": report.entries,
                "checkpoints": report.checkpoints,
                "signed_entries": report.signed_entries,
                "unsigned_entries": unsigned,
                "head": report.head.to_b64(),
                "torn_tail": report.torn_tail.map(|t| t.line),
                "witnesses": witnesses,
            });
            print(&out, json);
            if unsigned == 0 || allow_unsigned {
                return Ok(Outcome::Done);
            }
            eprintln!(
                "{unsigned} of {} entries lie after the last signed checkpoint: a server still running (it signs within a minute), a crash, or a log cut back together with its later checkpoints; a witness tells which",
                report.entries
            );
            Ok(Outcome::CheckFailed)
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
