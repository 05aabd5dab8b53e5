//! Signing at enqueue, through [`Outbox`]: who is signed, with which keys, and that the
//! signature is stored once and read back the same by every delivery attempt.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::super::{Outbox, Spool, Submission};
use crate::address::EmailAddress;
use crate::dkim::test_verifier::{split_signed, tag, verifies};
use crate::dkim::{Algorithm, KeyState, Keyring, SigningKey, key::generate};
use crate::senders::SenderEntry;
use crate::store::Store;

struct Setup {
    _dir: tempfile::TempDir,
    cli: Store,
    outbox: Outbox,
    ann: i64,
    bob: i64,
    /// (selector, PKCS#1 or raw public key ring verifies with).
    publics: Vec<(String, Vec<u8>)>,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let mut cli = Store::open(&db).unwrap();
    let ann_addr = EmailAddress::parse("ann@example.com").unwrap();
    let ann = cli.add_account(&ann_addr).unwrap().id;
    let bob = cli.add_account(&EmailAddress::parse("bob@example.net").unwrap()).unwrap().id;
    cli.add_sender(&ann_addr, &SenderEntry::parse("example.org").unwrap(), true).unwrap();
    let mut keys = Vec::new();
    let mut publics = Vec::new();
    for (selector, algorithm) in [("r1", Algorithm::Rsa), ("e1", Algorithm::Ed25519)] {
        let generated = generate(algorithm).unwrap();
        publics.push((selector.to_string(), SigningKey::load(&generated.private).unwrap().public_key().to_vec()));
        keys.push((selector.to_string(), generated));
    }
    cli.add_dkim_keys("example.org", &keys).unwrap();
    let spool = Spool::open(&dir.path().join("spool")).unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    std::mem::forget(rx);
    let outbox = Outbox::new(spool, tx).with_keyring(Arc::new(Keyring::open(&db).unwrap()));
    Setup { _dir: dir, cli, outbox, ann, bob, publics }
}

fn submission(account_id: Option<i64>) -> Submission {
    Submission {
        sender: Some("ann@example.org".into()),
        recipients: vec!["x@example.net".into()],
        smtputf8: false,
        eight_bit: false,
        auth_user: account_id.map(|_| "ann@example.com".into()),
        account_id,
        client_ip: None,
    }
}

const MESSAGE: &[u8] = b"Received: from c ([192.0.2.1])\r\n\tby relay (relaykey) with ESMTPSA id X;\r\n\tThu, 3 Dec 2026 12:00:00 +0000\r\n\
    From: Ann <ann@Example.ORG>\r\nTo: x@example.net\r\nSubject: hello\r\n\r\nbody \t text\r\n\r\n";

/// Queues MESSAGE in two writes (as the relay does) and returns what delivery would send.
async fn send(s: &Setup, account_id: Option<i64>) -> Vec<u8> {
    let incoming = s.outbox.begin(account_id.is_some()).unwrap();
    let incoming = s.outbox.write(incoming, MESSAGE[..40].to_vec()).await.unwrap();
    let id = s.outbox.enqueue(incoming, MESSAGE[40..].to_vec(), submission(account_id), "smtp").await.unwrap();
    let first = s.outbox.spool().read_message(&id).unwrap();
    // A retry reads the same bytes: the signature was made once, at enqueue.
    assert_eq!(s.outbox.spool().read_message(&id).unwrap(), first);
    assert_eq!(s.outbox.spool().load(&id).unwrap().size, first.len() as u64);
    first
}

fn selectors(message: &[u8]) -> Vec<String> {
    split_signed(message).0.iter().map(|f| tag(f, "s").unwrap()).collect()
}

#[tokio::test]
async fn active_keys_sign_the_owners_mail_only() {
    let mut s = setup();
    // Published keys do not sign yet.
    assert_eq!(send(&s, Some(s.ann)).await, MESSAGE);

    s.cli.set_dkim_key_state("example.org", "r1", KeyState::Active).unwrap();
    s.cli.set_dkim_key_state("example.org", "e1", KeyState::Active).unwrap();
    let signed = send(&s, Some(s.ann)).await;
    assert_eq!(selectors(&signed), ["r1", "e1"]);
    assert!(signed.ends_with(MESSAGE), "the signatures go above the message as received");
    let (fields, head, body) = split_signed(&signed);
    for (field, (selector, public)) in fields.iter().zip(&s.publics) {
        assert_eq!(tag(field, "s").as_deref(), Some(selector.as_str()));
        assert_eq!(tag(field, "d").as_deref(), Some("example.org"));
        assert!(verifies(&head, &body, field, public), "{field}");
    }

    // Unauthenticated (inbound) mail, and another account's, are not signed.
    assert_eq!(send(&s, None).await, MESSAGE);
    assert_eq!(send(&s, Some(s.bob)).await, MESSAGE);

    // Retiring a key takes effect with the next message.
    s.cli.set_dkim_key_state("example.org", "r1", KeyState::Retired).unwrap();
    assert_eq!(selectors(&send(&s, Some(s.ann)).await), ["e1"]);
}
