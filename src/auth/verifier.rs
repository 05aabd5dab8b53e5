//! The argon2 verification pool: a fixed number of threads, each keeping its own argon2 memory
//! between logins, taking jobs in arrival order. Memory stays at threads × memory cost, and no
//! login pays for allocating and faulting in that memory again (about 19 MiB by default).

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::secret::{self, Secret};

/// Stored hashes asking for more memory than this are refused, not computed (a corrupt row
/// must not make the daemon allocate without bound). libsodium's "sensitive" level is 1 GiB.
pub const MAX_MEMORY_KIB: u32 = 1024 * 1024;

struct Job {
    secret: Secret,
    hash: String,
    done: oneshot::Sender<bool>,
}

pub(crate) struct VerifierPool {
    jobs: Sender<Job>,
}

impl VerifierPool {
    pub fn new(threads: usize) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..threads.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new().name(format!("argon2-{n}")).spawn(move || work(&queue))?;
        }
        Ok(Self { jobs })
    }

    /// `None` when the pool is gone (its threads died).
    pub async fn verify(&self, secret: &Secret, hash: String) -> Option<bool> {
        let (done, result) = oneshot::channel();
        self.jobs.send(Job { secret: secret.clone(), hash, done }).ok()?;
        result.await.ok()
    }
}

/// Runs until the pool's sender is dropped with the Authenticator.
fn work(queue: &Mutex<Receiver<Job>>) {
    let mut memory = Vec::new();
    loop {
        // The lock is held only while waiting for the next job, so jobs go out in order.
        let job = match queue.lock().unwrap_or_else(|p| p.into_inner()).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        let matched = secret::verify_with_memory(&job.secret, &job.hash, &mut memory, MAX_MEMORY_KIB);
        drop(job.secret);
        let _ = job.done.send(matched);
    }
}
