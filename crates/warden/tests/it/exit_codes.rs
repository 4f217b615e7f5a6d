//! The exit codes of docs/cli.md: 0 the command did its work, 1 it ran and a check failed,
//! 2 it could not do its work (a usage error, no server to talk to, a refused request), with
//! a one-line `error: …` on stderr.

use std::process::{Command, Output};

use super::{json_of, start, warden, BIN};

fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

/// The reason of a failed command: exactly one line, `error: …`.
fn one_line_error(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(err.starts_with("error: "), "{err:?}");
    err
}

#[test]
fn a_usage_error_exits_2_and_help_or_version_0() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["bogus"][..],
        &["tenant"],
        &["tenant", "create"],
        &["revoke"],
        &["revoke", "--principal", "agt_a", "--token", "jti"],
        &[
            "principal",
            "create",
            "--tenant",
            "t",
            "--kind",
            "robot",
            "--name",
            "n",
        ],
        &["serve", "--max-connections", "0"],
        &["report", "access", "--format", "xml"],
    ] {
        let out = warden(dir.path(), args);
        assert_eq!(code(&out), Some(2), "{args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{args:?}: {out:?}");
        // clap's own words: an `error: …` with the usage, or the group's help.
        assert!(!out.stderr.is_empty(), "{args:?}: {out:?}");
    }
    for args in [&["--help"][..], &["--version"], &["tenant", "--help"]] {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert_eq!(code(&out), Some(0), "{args:?}: {out:?}");
        assert!(!out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn an_admin_command_without_a_server_exits_2_with_a_one_line_reason() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["tenant", "list"][..],
        &["tenant", "create", "acme"],
        &["revoke", "--token", "jti"],
        &["report", "access"],
    ] {
        let out = warden(dir.path(), args);
        assert_eq!(code(&out), Some(2), "{args:?}: {out:?}");
        let err = one_line_error(&out);
        assert!(err.contains("warden serve"), "{args:?}: {err}");
    }
    // Not a failed check: there is no log to check.
    let out = warden(dir.path(), &["audit", "verify"]);
    assert_eq!(code(&out), Some(2), "{out:?}");
    assert!(one_line_error(&out).contains("audit.pub.jwk"));
}

/// A server that ran and was killed: a refused request and an unreachable server are errors
/// (2); the audit log it left has unsigned entries (1, or 0 when they are accepted), and once
/// edited does not verify (1).
#[test]
fn a_tampered_audit_log_exits_1_a_sound_one_0_and_a_stopped_server_2() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    {
        let _server = start(&data);
        let out = warden(&data, &["tenant", "create", "acme", "--json"]);
        assert_eq!(code(&out), Some(0), "{out:?}");
        json_of(&out);
        // A second entry, whose link to the first shows an edit of the first.
        json_of(&warden(&data, &["tenant", "create", "globex", "--json"]));
        let out = warden(&data, &["tenant", "show", "nope"]);
        assert_eq!(code(&out), Some(2), "a refused request: {out:?}");
        assert!(one_line_error(&out).contains("404"), "{out:?}");
    }
    // The server was killed: `server.json` still names it, but nothing answers there.
    let out = warden(&data, &["tenant", "list"]);
    assert_eq!(code(&out), Some(2), "{out:?}");
    assert!(one_line_error(&out).contains("cannot reach the authority"));

    // Killed, it signed nothing after its last checkpoint: a failed check until accepted.
    let out = warden(&data, &["audit", "verify"]);
    assert_eq!(code(&out), Some(1), "{out:?}");
    let out = warden(&data, &["audit", "verify", "--allow-unsigned"]);
    assert_eq!(code(&out), Some(0), "{out:?}");

    let log = data.join("audit").join("audit.jsonl");
    let text = std::fs::read_to_string(&log).unwrap();
    let edited = text.replacen("POST /admin/v1/tenants", "POST /admin/v1/tenantz", 1);
    assert_ne!(text, edited);
    std::fs::write(&log, edited).unwrap();
    let out = warden(&data, &["audit", "verify", "--allow-unsigned"]);
    assert_eq!(code(&out), Some(1), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not verify"), "{err}");
}
