//! Fuzzes the SMTP codec: commands re-encode to what they parsed from, AUTH responses never
//! panic, and the DATA reader ends only at CRLF.CRLF, stores no bare CR or LF and no NUL, reads
//! the same however the input is split, and gives back any message its own dot-stuffing encoded.
//! Mailboxes parse to what they were made from (the RFC 5321 parser shared with the API).
#![no_main]

use libfuzzer_sys::fuzz_target;
use relaykey::mailbox::Mailbox;
use relaykey::smtp::codec::{parse_auth_response, parse_command};
use relaykey::smtp::data::{DotReader, Feed, dot_stuff};

/// The stored bytes, where the message ended, and whether storing stopped early (a line over
/// the limit, or a NUL: the message is refused either way).
fn read(input: &[u8], chunk: usize) -> (Vec<u8>, Option<usize>, bool) {
    let mut reader = DotReader::new(u64::MAX);
    let mut out = Vec::new();
    let mut offset = 0;
    for piece in input.chunks(chunk.max(1)) {
        if let Feed::Done { consumed } = reader.feed(piece, &mut out) {
            return (out, Some(offset + consumed), stopped(&reader));
        }
        offset += piece.len();
    }
    (out, None, stopped(&reader))
}

fn stopped(reader: &DotReader) -> bool {
    let summary = reader.summary();
    summary.line_too_long || summary.nul
}

fuzz_target!(|data: &[u8]| {
    if let Ok(cmd) = parse_command(data) {
        let mut wire = Vec::new();
        cmd.encode(&mut wire);
        assert_eq!(parse_command(&wire), Ok(cmd));
    }
    let _ = parse_auth_response(data);
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(mailbox) = Mailbox::parse(text)
    {
        assert_eq!(Mailbox::parse(mailbox.as_str()), Ok(mailbox));
    }

    let (whole, end, stopped) = read(data, data.len());
    let chunk = data.first().map_or(1, |b| usize::from(*b % 7) + 1);
    assert_eq!(read(data, chunk), (whole.clone(), end, stopped));
    assert!(!whole.contains(&0), "a NUL was stored");
    if let Some(end) = end {
        assert!(data[..end].ends_with(b"\r\n.\r\n") || &data[..end] == b".\r\n");
    }
    for (i, &b) in whole.iter().enumerate() {
        if b == b'\r' {
            assert_eq!(whole.get(i + 1), Some(&b'\n'));
        }
        if b == b'\n' {
            assert!(i > 0 && whole[i - 1] == b'\r');
        }
    }
    // What the reader stored (CRLF lines only) survives stuffing and reading again.
    if end.is_some() && !stopped {
        let mut wire = Vec::new();
        dot_stuff(&whole, &mut wire);
        assert_eq!(read(&wire, chunk), (whole, Some(wire.len()), false));
    }
});
