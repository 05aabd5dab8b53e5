//! relaykey's signing path timed in this process, without SMTP, spool or scheduling around it:
//! what the relay spends per message on DKIM, split into the body pass (header section kept,
//! body relaxed-canonicalized and SHA-256 hashed, `crate::dkim::message`) and the signature of
//! each key (`DomainKeys::sign`: header canonicalization, hash, ring's RSA or Ed25519, the
//! folded field), and what loading one domain's keys into ring costs (the keyring does it when
//! the active keys change). Times are this
//! thread's CPU time (not wall time, which a busy neighbour on a shared machine stretches),
//! median of several batches.

use relaykey::dkim::key::generate;
use relaykey::dkim::{ActiveKeyRow, Algorithm, DomainKeys, KeySnapshot, MessageDigest, PrivateKey};

const BATCHES: usize = 7;

pub struct SignCost {
    pub digest_us: f64,
    /// SHA-256 of the same number of bytes, alone: the floor of the body pass.
    pub sha256_us: f64,
    /// (algorithm, µs per whole signature, µs of that in the bare signing primitive).
    pub sign_us: Vec<(Algorithm, f64, f64)>,
    /// Loading one domain's keys (one per algorithm) into ring.
    pub reload_us: f64,
}

/// Times `message` (CRLF lines, as spooled) through the digest, then through each algorithm's
/// signature alone.
pub fn measure(message: &[u8], algorithms: &[Algorithm]) -> SignCost {
    let sha256_us = per_op_us(2000, || {
        std::hint::black_box(ring::digest::digest(&ring::digest::SHA256, message));
    });
    let digest_us = per_op_us(2000, || {
        let mut d = MessageDigest::new();
        d.feed(message);
        std::hint::black_box(d.finish());
    });
    let mut digest = MessageDigest::new();
    digest.feed(message);
    let digested = digest.finish().expect("a signable message");
    let sign_us = algorithms
        .iter()
        .map(|&algorithm| {
            let keys = domain_keys(algorithm);
            let reps = if algorithm == Algorithm::Rsa { 200 } else { 2000 };
            let whole = per_op_us(reps, || {
                let signed = keys.sign(&digested.head, &digested.body_hash, 1_796_300_000);
                assert_eq!(signed.selectors.len(), 1, "the key did not sign");
                std::hint::black_box(signed);
            });
            // The primitive over input of the size the signature covers (the canonical header).
            let key = &keys.keys[0].key;
            let primitive = per_op_us(reps, || {
                std::hint::black_box(key.sign(&digested.head).expect("sign"));
            });
            (algorithm, whole, primitive)
        })
        .collect();
    let pkcs8: Vec<(Algorithm, Vec<u8>)> =
        algorithms.iter().map(|&a| (a, generate(a).expect("generate a key").private.pkcs8().to_vec())).collect();
    let reload_us = per_op_us(50, || {
        let rows = pkcs8
            .iter()
            .map(|(a, der)| ActiveKeyRow {
                domain: "example.com".into(),
                owner: 1,
                selector: a.tag().into(),
                private: PrivateKey::from_pkcs8(*a, der.clone()),
            })
            .collect();
        std::hint::black_box(KeySnapshot::from_rows(rows));
    });
    SignCost { digest_us, sha256_us, sign_us, reload_us }
}

fn domain_keys(algorithm: Algorithm) -> std::sync::Arc<DomainKeys> {
    let private = generate(algorithm).expect("generate a key").private;
    let row = ActiveKeyRow { domain: "example.com".into(), owner: 1, selector: "micro".into(), private };
    KeySnapshot::from_rows(vec![row]).domain("example.com").expect("the key loaded")
}

/// Median over batches of this thread's CPU time per call, in µs.
fn per_op_us(reps: usize, mut op: impl FnMut()) -> f64 {
    op();
    let mut batches: Vec<f64> = (0..BATCHES)
        .map(|_| {
            let start = thread_cpu_secs();
            for _ in 0..reps {
                op();
            }
            (thread_cpu_secs() - start) * 1e6 / reps as f64
        })
        .collect();
    batches.sort_by(f64::total_cmp);
    batches[BATCHES / 2]
}

fn thread_cpu_secs() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}
