//! Fuzzes the SMTP codec: commands re-encode to what they parsed from, AUTH responses never
//! panic, and the DATA reader ends only at CRLF.CRLF, stores no bare CR or LF, reads the same
//! however the input is split, and gives back any message its own dot-stuffing encoded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relaykey::smtp::codec::{parse_auth_response, parse_command};
use relaykey::smtp::data::{DotReader, Feed, dot_stuff};

/// The stored bytes, where the message ended, and whether a line was over the limit.
fn read(input: &[u8], chunk: usize) -> (Vec<u8>, Option<usize>, bool) {
    let mut reader = DotReader::new(u64::MAX);
    let mut out = Vec::new();
    let mut offset = 0;
    for piece in input.chunks(chunk.max(1)) {
        if let Feed::Done { consumed } = reader.feed(piece, &mut out) {
            return (out, Some(offset + consumed), reader.summary().line_too_long);
        }
        offset += piece.len();
    }
    (out, None, reader.summary().line_too_long)
}

fuzz_target!(|data: &[u8]| {
    if let Ok(cmd) = parse_command(data) {
        let mut wire = Vec::new();
        cmd.encode(&mut wire);
        assert_eq!(parse_command(&wire), Ok(cmd));
    }
    let _ = parse_auth_response(data);

    let (whole, end, too_long) = read(data, data.len());
    let chunk = data.first().map_or(1, |b| usize::from(*b % 7) + 1);
    assert_eq!(read(data, chunk), (whole.clone(), end, too_long));
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
    if end.is_some() && !too_long {
        let mut wire = Vec::new();
        dot_stuff(&whole, &mut wire);
        assert_eq!(read(&wire, chunk), (whole, Some(wire.len()), false));
    }
});
