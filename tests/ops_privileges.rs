//! Started as root with `[daemon] user`, the daemon binds first, gives its sockets and database
//! to that user, and runs as that user (and only its groups) before it reports READY=1.

mod ops_support;
mod support;

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::process::Command;

use ops_support::*;

/// `(uid, gid)` of a user and a group that exist on Debian: nobody and nogroup.
fn test_identity() -> (u32, u32) {
    let out = Command::new("id").args(["-u", "nobody"]).output().unwrap();
    let uid = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let out = Command::new("getent").args(["group", "nogroup"]).output().unwrap();
    let gid = String::from_utf8_lossy(&out.stdout).split(':').nth(2).unwrap().parse().unwrap();
    (uid, gid)
}

#[test]
fn drops_root_after_binding() {
    if !require(is_root(), "root") {
        return;
    }
    let (uid, gid) = test_identity();
    let mut daemon = serve()
        .toml(
            "[daemon]\nuser = \"nobody\"\ngroup = \"nogroup\"\n\
             [sasl]\nsocket_mode = \"0660\"\nsocket_group = \"root\"\n",
        )
        .spawn();
    let (dir, config) = (daemon.dir().to_path_buf(), daemon.config_path().to_path_buf());
    let notify = &daemon.notify;
    notify.wait_for("READY=1");

    // READY=1 comes after the switch: the process is already nobody:nogroup, for good.
    let pid = daemon.pid();
    assert_eq!(status_field(pid, "Uid"), format!("{uid}\t{uid}\t{uid}\t{uid}"));
    assert_eq!(status_field(pid, "Gid"), format!("{gid}\t{gid}\t{gid}\t{gid}"));
    let groups = status_field(pid, "Groups");
    assert!(groups.split_whitespace().all(|g| g == gid.to_string()), "supplementary groups kept: {groups}");
    assert_eq!(status_field(pid, "CapEff"), "0000000000000000");
    daemon.wait_log("dropped root");

    let db = std::fs::metadata(dir.join("relaykey.db")).unwrap();
    assert_eq!((db.uid(), db.gid(), db.mode() & 0o777), (uid, gid, 0o600));
    let front_ends = daemon.front_ends();
    assert!(front_ends.iter().any(|f| f == "sasl"), "{front_ends:?}");
    for front_end in front_ends {
        let socket = dir.join(format!("{front_end}.sock"));
        let meta = std::fs::metadata(&socket).unwrap();
        // sasl's group is configured (root); policy's defaults to the daemon's group.
        let want_gid = if front_end == "sasl" { 0 } else { gid };
        assert_eq!((meta.uid(), meta.gid(), meta.mode() & 0o7777), (uid, want_gid, 0o660), "{front_end}");
    }

    // The store still answers as nobody: a credential made now (by root, through the CLI)
    // logs in through the SASL socket.
    let (username, password) = smtp_credential(&config);
    let mut client = std::os::unix::net::UnixStream::connect(dir.join("sasl.sock")).unwrap();
    client.set_read_timeout(Some(PATIENCE)).unwrap();
    read_until(&mut client, "DONE\n");
    client.write_all(b"VERSION\t1\t2\nCPID\t4242\n").unwrap();
    let reply = auth_plain(&mut client, 1, &username, &password);
    assert!(reply.starts_with("OK\t1\t"), "{reply:?}");

    daemon.signal(libc::SIGTERM);
    notify.wait_for("STOPPING=1");
    assert_eq!(daemon.wait_exit().code(), Some(0), "{:#?}", daemon.log_lines());
}

#[test]
fn refuses_to_start_as_an_unknown_user() {
    if !require(is_root(), "root") {
        return;
    }
    let mut daemon = serve().toml("[daemon]\nuser = \"no-such-user-relaykey\"\n").spawn();
    assert_ne!(daemon.wait_exit().code(), Some(0));
    let log = daemon.log();
    let notify = &daemon.notify;
    assert!(log.contains("daemon.user: no such user \"no-such-user-relaykey\""), "{log}");
    assert!(notify.next(std::time::Duration::from_millis(10)).is_none_or(|l| !l.contains(&"READY=1".to_string())));
}

#[test]
fn refuses_to_keep_root_when_the_user_is_root() {
    if !require(is_root(), "root") {
        return;
    }
    let mut daemon = serve().toml("[daemon]\nuser = \"root\"\n").spawn();
    assert_ne!(daemon.wait_exit().code(), Some(0));
    assert!(daemon.log().contains("root could be regained"), "{:#?}", daemon.log_lines());
}
