//! Administrators and gateways as principals, from the command line: `warden admin create`
//! and `warden gateway enroll` write credential files, `--credentials` acts as them with
//! exactly their scopes, and a standalone gateway runs on its own credentials alone.

use std::io::{Read as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{create_agent, json_of, start, warden, Server, BIN};

fn as_principal(
    data: &std::path::Path,
    credentials: &std::path::Path,
    args: &[&str],
) -> std::process::Output {
    let mut all = args.to_vec();
    all.extend_from_slice(&["--credentials", credentials.to_str().unwrap()]);
    warden(data, &all)
}

#[test]
fn administrators_and_gateways_act_as_principals_with_their_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let _server = start(&data);
    json_of(&warden(&data, &["tenant", "create", "acme", "--json"]));
    json_of(&warden(&data, &["tenant", "create", "globex", "--json"]));

    let ops = dir.path().join("ops.json");
    let created = json_of(&warden(
        &data,
        &[
            "admin",
            "create",
            "--tenant",
            "acme",
            "--name",
            "ops",
            "--out",
            ops.to_str().unwrap(),
            "--json",
        ],
    ));
    assert_eq!(created["scopes"], "warden:tenant:admin", "{created}");
    assert_eq!(
        std::fs::metadata(&ops).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // A second run never overwrites the file.
    let again = warden(
        &data,
        &[
            "admin",
            "create",
            "--tenant",
            "acme",
            "--name",
            "ops2",
            "--out",
            ops.to_str().unwrap(),
        ],
    );
    assert!(!again.status.success());

    let listed = json_of(&as_principal(&data, &ops, &["tenant", "list", "--json"]));
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["acme"]);
    let refused = as_principal(
        &data,
        &ops,
        &[
            "principal",
            "create",
            "--tenant",
            "globex",
            "--kind",
            "agent",
            "--name",
            "implant",
        ],
    );
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("404"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let escalation = as_principal(
        &data,
        &ops,
        &[
            "principal",
            "create",
            "--tenant",
            "acme",
            "--kind",
            "agent",
            "--name",
            "x",
            "--scopes",
            "warden:admin",
        ],
    );
    assert!(
        String::from_utf8_lossy(&escalation.stderr).contains("403"),
        "{}",
        String::from_utf8_lossy(&escalation.stderr)
    );
    // A file others can read is refused before anything is sent.
    std::fs::set_permissions(&ops, std::fs::Permissions::from_mode(0o644)).unwrap();
    let exposed = as_principal(&data, &ops, &["tenant", "list"]);
    assert!(
        String::from_utf8_lossy(&exposed.stderr).contains("0600"),
        "{}",
        String::from_utf8_lossy(&exposed.stderr)
    );

    // A gateway enrolled, then run on its credentials alone.
    let edge = dir.path().join("edge-1.json");
    let enrolled = json_of(&warden(
        &data,
        &[
            "gateway",
            "enroll",
            "--name",
            "edge-1",
            "--out",
            edge.to_str().unwrap(),
            "--json",
        ],
    ));
    assert!(
        enrolled["client_id"].as_str().unwrap().starts_with("svc_"),
        "{enrolled}"
    );
    let not_admin = as_principal(&data, &edge, &["tenant", "create", "mine"]);
    assert!(
        String::from_utf8_lossy(&not_admin.stderr).contains("403"),
        "{}",
        String::from_utf8_lossy(&not_admin.stderr)
    );

    let upstream = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream_addr = upstream.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in upstream.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = vec![0u8; 16 * 1024];
            let _ = s.read(&mut buf);
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
    let config = dir.path().join("edge.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\n[[gateway.route]]\nprefix = \"/crm/\"\nupstream = \"http://{upstream_addr}\"\naudience = \"crm\"\ntenant = \"acme\"\n[gateway.route.scopes]\nGET = \"crm:contacts:read\"\n"
        ),
    )
    .unwrap();
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("server.json")).unwrap()).unwrap();
    let authority = info["authority_url"].as_str().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(BIN)
        .args(["gateway", "--authority", authority, "--credentials"])
        .arg(&edge)
        .arg("--config")
        .arg(&config)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env_remove("WARDEN_ADMIN_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _gateway = Server { child };

    let (id, key) = create_agent(&data, dir.path(), "acme", "bot", "crm:contacts:read");
    let token = json_of(&warden(
        &data,
        &[
            "token",
            "--client-id",
            &id,
            "--key",
            key.to_str().unwrap(),
            "--json",
        ],
    ));
    let token = token["access_token"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    let answer = loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            write!(s, "GET /crm/contacts HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n").unwrap();
            let mut answer = String::new();
            let _ = s.read_to_string(&mut answer);
            if !answer.is_empty() {
                break answer;
            }
        }
        assert!(Instant::now() < deadline, "the gateway did not come up");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}
