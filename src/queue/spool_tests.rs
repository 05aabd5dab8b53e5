use super::*;
use crate::queue::trailer::{TRAILER_LEN, parse_trailer, trailer};

fn submission() -> Submission {
    Submission {
        sender: Some("a@example.com".into()),
        recipients: vec!["b@example.net".into(), "c@example.org".into()],
        smtputf8: false,
        eight_bit: true,
        auth_user: Some("a@example.com".into()),
        account_id: None,
        client_ip: Some("192.0.2.1".parse().unwrap()),
    }
}

fn files(spool: &Spool) -> Vec<String> {
    let mut names: Vec<String> =
        fs::read_dir(spool.dir()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[test]
fn committed_message_reads_back_with_its_envelope() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path()).unwrap();
    let mut incoming = spool.begin().unwrap();
    incoming.write(b"Subject: x\r\n\r\nhello\r\n").unwrap();
    let env = spool.commit(incoming, &submission(), String::new()).unwrap();
    assert!(valid_id(&env.id));
    assert_eq!(files(&spool), vec![format!("{}.msg", env.id)]);
    assert_eq!(spool.read_message(&env.id).unwrap(), b"Subject: x\r\n\r\nhello\r\n");
    let loaded = spool.load(&env.id).unwrap();
    assert_eq!(loaded, env);
    assert_eq!(loaded.size, 21);
    assert_eq!(loaded.pending().count(), 2);
    assert_eq!(spool.list().unwrap(), vec![env]);
}

#[test]
fn recovery_removes_what_was_never_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path()).unwrap();
    let kept = {
        let mut i = spool.begin().unwrap();
        i.write(b"kept").unwrap();
        spool.commit(i, &submission(), String::new()).unwrap()
    };
    // A crash mid-DATA, a damaged message file, and an envelope left without its message.
    let mut open = spool.begin().unwrap();
    open.write(b"partial").unwrap();
    std::mem::forget(open);
    fs::write(spool.dir().join("0000000000000ABC.msg"), b"no trailer").unwrap();
    // Right lengths, wrong checksum: looks complete but is not what was written.
    let fake = format!("hello{{}}{}", trailer(2, 5, 1));
    fs::write(spool.dir().join("0000000000000ABF.msg"), fake).unwrap();
    fs::write(spool.dir().join("0000000000000ABD.env"), b"{}").unwrap();
    fs::write(spool.dir().join("0000000000000ABE.env.tmp"), b"{").unwrap();
    let spool = Spool::open(dir.path()).unwrap();
    assert_eq!(files(&spool), vec![format!("{}.msg", kept.id)]);
    assert_eq!(spool.read_message(&kept.id).unwrap(), b"kept");
}

#[test]
fn save_replaces_and_remove_deletes_both_files() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path()).unwrap();
    let mut i = spool.begin().unwrap();
    i.write(b"x").unwrap();
    let mut env = spool.commit(i, &submission(), String::new()).unwrap();
    env.attempts = 3;
    env.recipients[0].status = crate::queue::RecipientStatus::Delivered;
    spool.save(&env).unwrap();
    assert_eq!(spool.load(&env.id).unwrap(), env);
    assert_eq!(files(&spool).len(), 2, "message and updated envelope");
    assert_eq!(spool.read_message(&env.id).unwrap(), b"x");
    spool.remove_synced(&env.id).unwrap();
    assert!(files(&spool).is_empty());
    assert!(matches!(spool.load(&env.id), Err(SpoolError::NotFound(_))));
    assert!(matches!(spool.remove(&env.id), Err(SpoolError::NotFound(_))));
}

#[test]
fn aborted_message_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path()).unwrap();
    let mut i = spool.begin().unwrap();
    i.write(b"x").unwrap();
    let id = i.id().to_string();
    assert!(spool.list().unwrap().is_empty(), "a message being received is not listed");
    assert!(matches!(spool.remove_synced(&id), Err(SpoolError::NotFound(_))));
    spool.abort(i);
    assert!(files(&spool).is_empty());
}

#[test]
fn a_second_lock_on_the_same_message_is_busy() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path()).unwrap();
    let i = spool.begin().unwrap();
    let env = spool.commit(i, &submission(), String::new()).unwrap();
    let held = spool.lock(&env.id).unwrap();
    assert!(matches!(spool.lock(&env.id), Err(SpoolError::Busy(_))));
    drop(held);
    assert!(spool.lock(&env.id).is_ok());
}

#[test]
fn ids_that_could_escape_the_directory_are_refused() {
    assert!(!valid_id("../../etc/passwd"));
    assert!(!valid_id("0123456789abcdef"));
    assert!(valid_id("0123456789ABCDEF"));
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path()).unwrap();
    assert!(matches!(spool.load("../x"), Err(SpoolError::NotFound(_))));
}

#[test]
fn enospc_maps_to_disk_full() {
    let io = |errno| EnqueueError::io("writing", io::Error::from_raw_os_error(errno));
    assert!(matches!(io(libc::ENOSPC), EnqueueError::DiskFull));
    assert!(matches!(io(libc::EDQUOT), EnqueueError::DiskFull));
    assert!(matches!(io(libc::EIO), EnqueueError::Io { doing: "writing", .. }));
}

#[test]
fn concurrent_commits_share_directory_fsyncs_and_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path()).unwrap();
    let ids: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..16)
            .map(|i| {
                let spool = spool.clone();
                s.spawn(move || {
                    let mut inc = spool.begin().unwrap();
                    inc.write(format!("message {i}").as_bytes()).unwrap();
                    spool.commit(inc, &submission(), String::new()).unwrap().id
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(spool.ids().unwrap().len(), 16);
    for id in ids {
        assert!(String::from_utf8(spool.read_message(&id).unwrap()).unwrap().starts_with("message "));
    }
}

#[test]
fn trailer_has_its_fixed_length_and_parses_back() {
    let t = trailer(123, 4567, u64::MAX);
    assert_eq!(t.len(), TRAILER_LEN);
    assert_eq!(parse_trailer(t.as_bytes()), Some((123, 4567, u64::MAX)));
    assert_eq!(parse_trailer(b"\nRKQ1 x\n"), None);
}
