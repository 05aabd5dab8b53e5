//! Socket activation with `systemd-socket-activate`: the daemon serves on the sockets it was
//! handed (matched by name: `sasl`, `policy`, and `relay` plus the port): a real AUTH, a policy
//! request and an SMTP banner come through them, and nothing is bound in their place.

mod ops_support;
mod support;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Instant;

use ops_support::*;
use support::ports::free_port;

fn available() -> bool {
    let found = Command::new("systemd-socket-activate").arg("--version").output().is_ok_and(|o| o.status.success());
    require(found, "systemd-socket-activate")
}

#[test]
fn serves_on_the_socket_systemd_passed() {
    if !available() {
        return;
    }
    let builder = serve();
    let dir = builder.dir().to_path_buf();
    let activated = dir.join("activated-sasl.sock");
    let activated_policy = dir.join("activated-policy.sock");
    let notify_env = format!("NOTIFY_SOCKET={}", builder.notify_path().display());
    let (username, password) = smtp_credential(&builder.config_path());
    let mut daemon = builder
        .launcher([
            "systemd-socket-activate".as_ref(),
            "-l".as_ref(),
            activated.as_os_str(),
            "-l".as_ref(),
            activated_policy.as_os_str(),
            "--fdname=sasl:policy".as_ref(),
            "-E".as_ref(),
            std::ffi::OsStr::new(&notify_env),
        ])
        .spawn();
    let notify = &daemon.notify;

    // systemd-socket-activate starts the daemon on the first connection, like a socket unit.
    let deadline = Instant::now() + PATIENCE;
    while !activated.exists() {
        let gone = daemon.has_exited();
        assert!(
            !gone && Instant::now() < deadline,
            "systemd-socket-activate did not listen: {:#?}",
            daemon.log_lines()
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let mut client = UnixStream::connect(&activated).unwrap();
    notify.wait_for("READY=1");
    daemon.wait_log("sockets passed by systemd sockets=sasl,policy");

    let front_ends = daemon.front_ends();
    for name in ["sasl", "policy"] {
        assert!(front_ends.iter().any(|f| f == name), "no {name} front end: {:#?}", daemon.log_lines());
        let configured = dir.join(format!("{name}.sock"));
        assert!(!configured.exists(), "bound {} although systemd passed a socket", configured.display());
    }
    assert_eq!(daemon.log_lines().iter().filter(|l| l.contains("using the socket systemd passed")).count(), 2);
    assert!(!daemon.log_lines().iter().any(|l| l.contains("no enabled front end uses")), "{:#?}", daemon.log_lines());

    // The connection that woke the daemon gets the Dovecot handshake, then a real AUTH.
    client.set_read_timeout(Some(PATIENCE)).unwrap();
    let handshake = read_until(&mut client, "DONE\n");
    assert!(handshake.starts_with("VERSION\t1\t"), "{handshake:?}");
    client.write_all(b"VERSION\t1\t2\nCPID\t4242\n").unwrap();
    let reply = auth_plain(&mut client, 1, &username, &password);
    assert!(reply.starts_with(&format!("OK\t1\tuser={username}")), "{reply:?}");
    let reply = auth_plain(&mut client, 2, &username, "wrong");
    assert!(reply.starts_with("FAIL\t2"), "{reply:?}");

    // The policy service answers on the other socket it was handed.
    let mut policy = UnixStream::connect(&activated_policy).unwrap();
    policy.set_read_timeout(Some(PATIENCE)).unwrap();
    policy
        .write_all(
            b"request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\nclient_address=127.0.0.1\n\
              client_port=40000\nserver_address=127.0.0.1\nserver_port=25\ninstance=1.1\nsasl_username=\n\n",
        )
        .unwrap();
    let reply = read_until(&mut policy, "\n\n");
    assert!(reply.starts_with("action="), "{reply:?}");

    daemon.signal(libc::SIGTERM);
    notify.wait_for("STOPPING=1");
    assert_eq!(daemon.wait_exit().code(), Some(0), "{:#?}", daemon.log_lines());
}

#[test]
fn the_relay_serves_on_the_tcp_socket_systemd_passed() {
    if !available() {
        return;
    }
    let address = format!("127.0.0.1:{}", free_port());
    let builder = serve();
    let dir = builder.dir().to_path_buf();
    let builder = builder.toml(&format!(
        "[relay]\nenabled = true\nhostname = \"relay.test\"\nspool = \"{}/spool\"\n\
         [[relay.listen]]\naddress = \"{address}\"\ntls = \"none\"\n",
        dir.display()
    ));
    let notify_env = format!("NOTIFY_SOCKET={}", builder.notify_path().display());
    let launcher = ["systemd-socket-activate", "-l", &address, "--fdname=relay", "-E", &notify_env];
    let mut daemon = builder.launcher(launcher).spawn();
    let notify = &daemon.notify;
    daemon.wait_log("Listening on");
    // The daemon would fail to start if it bound the address itself: systemd-socket-activate holds it.
    let mut client = std::net::TcpStream::connect(&address).unwrap();
    notify.wait_for("READY=1");
    assert!(daemon.front_ends().iter().any(|f| f == "relay"), "{:#?}", daemon.log_lines());
    daemon.wait_log(&format!("front_end=\"relay:{address}\""));
    client.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut banner = [0u8; 64];
    let n = client.read(&mut banner).unwrap();
    assert!(banner[..n].starts_with(b"220 "), "{:?}", String::from_utf8_lossy(&banner[..n]));
    daemon.signal(libc::SIGTERM);
    notify.wait_for("STOPPING=1");
    assert_eq!(daemon.wait_exit().code(), Some(0), "{:#?}", daemon.log_lines());
}
