//! The floor: a socketmap server that does nothing but frame. It reads one netstring request at
//! a time and answers a fixed `OK` reply, with no parsing of the key, no session and no lookup:
//! what moving the bytes over a Unix socket on this runtime costs at best.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

const REPLY: &[u8] = b"18:OK ann@example.com,";

pub async fn run(listener: UnixListener) {
    while let Ok((mut stream, _)) = listener.accept().await {
        tokio::spawn(async move {
            let mut buf = Vec::with_capacity(512);
            loop {
                // A whole netstring buffered? `len:payload,`
                let colon = buf.iter().position(|&b| b == b':');
                let len: Option<usize> = colon.and_then(|c| std::str::from_utf8(&buf[..c]).ok()?.parse().ok());
                if let (Some(c), Some(len)) = (colon, len)
                    && buf.len() > c + len + 1
                {
                    buf.drain(..c + len + 2);
                    if stream.write_all(REPLY).await.is_err() {
                        return;
                    }
                    continue;
                }
                match stream.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        });
    }
}
