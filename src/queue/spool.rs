//! The spool directory `<spool>/queue/`: one `<id>.msg` per queued message, holding the
//! message followed by its envelope (JSON) and a fixed-size trailer with both lengths and a
//! checksum, and, once delivery has changed something, an `<id>.env` with the current envelope.
//!
//! Crash safety. The message file is created under its final name when DATA starts; it counts
//! as queued only once its trailer is written and checks out. At the end of DATA the envelope
//! and trailer are appended, the file is fsynced, then the directory (which holds its entry);
//! only then does the session say `250`. That is one data fsync per message, and no rename
//! that would need a journal commit of its own: the entry was created long before, so the
//! directory fsync usually finds nothing left to write. Directory fsyncs are shared by every
//! commit waiting at the same moment (group commit, [`DirSync`]); each reply still follows
//! its own. At startup [`Spool::open`] removes every file whose trailer is missing or whose
//! checksum fails (never acknowledged), every `.tmp`, and every `.env` without its message.
//! Envelope updates go through write-fsync-rename, so a crash leaves the old or the new
//! envelope. Delivery is at-least-once: a crash between a delivery and the envelope update
//! sends that recipient's copy again.
//!
//! All functions here block; the async callers run them on the blocking pool.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, ErrorKind, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::dir_sync::{DirSync, sync_dir};
use super::trailer::{Fnv, TRAILER_LEN, parse_trailer, trailer};
use super::{EnqueueError, Envelope, Submission};
use crate::dkim::{Digested, MessageDigest};

#[derive(Clone)]
pub struct Spool {
    dir: PathBuf,
    dir_sync: Arc<DirSync>,
}

/// A message being received: its `.msg.tmp` file, open for writing.
pub struct Incoming {
    id: String,
    file: BufWriter<File>,
    size: u64,
    checksum: Fnv,
    /// The message read on its way to disk for DKIM (header kept, body hashed), when some
    /// domain has an active key.
    digest: Option<MessageDigest>,
}

/// Holds a message's flock: delivery and the CLI never work on the same message at once.
pub struct MessageLock {
    _file: File,
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("no queued message {0}")]
    NotFound(String),
    #[error("message {0} is being delivered right now; try again")]
    Busy(String),
    #[error("spool {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("envelope {path}: {message}")]
    Corrupt { path: PathBuf, message: String },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io { path: path.to_path_buf(), source }
}

pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// 16 upper-case hex digits: microseconds (so `ls` sorts by arrival) and 12 random bits.
fn new_id() -> String {
    let micros = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros()).unwrap_or(0) as u64;
    let mut r = [0u8; 2];
    let _ = getrandom::fill(&mut r);
    format!("{:013X}{:03X}", micros & 0x000F_FFFF_FFFF_FFFF, u16::from_le_bytes(r) & 0xFFF)
}

/// A queue id is what [`new_id`] makes; anything else (`../x`) never reaches a path.
pub fn valid_id(id: &str) -> bool {
    id.len() == 16 && id.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
}

impl Spool {
    /// Creates the spool if needed and clears what a crash left behind.
    pub fn open(root: &Path) -> Result<Self, SpoolError> {
        let dir = root.join("queue");
        fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir).map_err(io_err(&dir))?;
        let spool = Self { dir, dir_sync: Arc::default() };
        spool.recover()?;
        Ok(spool)
    }

    /// Opens the spool without recovery (the CLI, while the daemon runs).
    pub fn open_existing(root: &Path) -> Result<Self, SpoolError> {
        let dir = root.join("queue");
        if !dir.is_dir() {
            return Err(SpoolError::Io { path: dir, source: io::Error::from(ErrorKind::NotFound) });
        }
        Ok(Self { dir, dir_sync: Arc::default() })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn recover(&self) -> Result<(), SpoolError> {
        for entry in fs::read_dir(&self.dir).map_err(io_err(&self.dir))? {
            let path = entry.map_err(io_err(&self.dir))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
            let orphan = if let Some(id) = name.strip_suffix(".env") {
                !self.msg_path(id).exists()
            } else if let Some(id) = name.strip_suffix(".msg") {
                !self.is_intact(id)
            } else {
                name.ends_with(".tmp")
            };
            if orphan {
                tracing::info!(file = %path.display(), "spool: removing unacknowledged or damaged file");
                fs::remove_file(&path).map_err(io_err(&path))?;
            }
        }
        sync_dir(&self.dir).map_err(io_err(&self.dir))
    }

    pub fn msg_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.msg"))
    }

    fn env_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.env"))
    }

    /// Starts receiving a message: creates its file, which is not queued until committed.
    pub fn begin(&self) -> Result<Incoming, EnqueueError> {
        for _ in 0..8 {
            let id = new_id();
            match OpenOptions::new().write(true).create_new(true).mode(0o600).open(self.msg_path(&id)) {
                Ok(file) => {
                    let file = BufWriter::with_capacity(64 * 1024, file);
                    return Ok(Incoming { id, file, size: 0, checksum: Fnv::new(), digest: None });
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(EnqueueError::io("creating the message file", e)),
            }
        }
        Err(EnqueueError::NoFreeId)
    }

    /// Makes the message durable and returns its envelope: only after this may `250` be sent.
    /// `header_prefix` (the DKIM signatures) is stored with the envelope and put above the
    /// message whenever it is read. On failure nothing of the message remains.
    pub fn commit(
        &self,
        mut incoming: Incoming,
        submission: &Submission,
        header_prefix: String,
    ) -> Result<Envelope, EnqueueError> {
        let envelope = Envelope::new(incoming.id.clone(), submission, unix_now(), incoming.size, header_prefix);
        let json = envelope_json(&envelope);
        let result = (|| -> io::Result<()> {
            incoming.file.write_all(&json)?;
            incoming.checksum.update(&json);
            let end = trailer(json.len(), incoming.size, incoming.checksum.0);
            incoming.file.write_all(end.as_bytes())?;
            incoming.file.flush()?;
            incoming.file.get_ref().sync_all()?;
            self.dir_sync.sync(&self.dir)
        })();
        match result {
            Ok(()) => Ok(envelope),
            Err(e) => {
                self.discard(&envelope.id);
                Err(EnqueueError::io("committing", e))
            }
        }
    }

    /// Removes every file of a message that was not acknowledged.
    fn discard(&self, id: &str) {
        for name in [format!("{id}.env"), format!("{id}.env.tmp"), format!("{id}.msg")] {
            let _ = fs::remove_file(self.dir.join(name));
        }
    }

    pub fn abort(&self, incoming: Incoming) {
        let id = incoming.id.clone();
        drop(incoming);
        self.discard(&id);
    }

    /// The current envelope: `<id>.env` if delivery wrote one, else the one in the message file.
    pub fn load(&self, id: &str) -> Result<Envelope, SpoolError> {
        if !valid_id(id) {
            return Err(SpoolError::NotFound(id.to_string()));
        }
        let path = self.env_path(id);
        let text = match fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::NotFound => return self.initial_envelope(id),
            Err(e) => return Err(SpoolError::Io { path, source: e }),
        };
        serde_json::from_slice(&text).map_err(|e| SpoolError::Corrupt { path, message: e.to_string() })
    }

    fn open_msg(&self, id: &str) -> Result<File, SpoolError> {
        let path = self.msg_path(id);
        match File::open(&path) {
            Ok(f) => Ok(f),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(SpoolError::NotFound(id.to_string())),
            Err(e) => Err(SpoolError::Io { path, source: e }),
        }
    }

    /// (envelope length, message length, checksum) from the trailer, checked against the size.
    /// A message still being received has no trailer yet and reads as `Corrupt`.
    fn read_trailer(&self, id: &str) -> Result<(File, u64, u64, u64), SpoolError> {
        let path = self.msg_path(id);
        let corrupt = |message: &str| SpoolError::Corrupt { path: path.clone(), message: message.into() };
        let mut f = self.open_msg(id)?;
        let len = f.metadata().map_err(io_err(&path))?.len();
        if len < TRAILER_LEN as u64 {
            return Err(corrupt("shorter than its trailer"));
        }
        let mut t = [0u8; TRAILER_LEN];
        f.seek(SeekFrom::Start(len - TRAILER_LEN as u64)).map_err(io_err(&path))?;
        f.read_exact(&mut t).map_err(io_err(&path))?;
        let (env_len, msg_len, sum) = parse_trailer(&t).ok_or_else(|| corrupt("no trailer"))?;
        if env_len + msg_len + TRAILER_LEN as u64 != len {
            return Err(corrupt("lengths do not add up"));
        }
        Ok((f, env_len, msg_len, sum))
    }

    /// Trailer present and checksum right: the message was committed (used at startup).
    fn is_intact(&self, id: &str) -> bool {
        let Ok((mut f, env_len, msg_len, sum)) = self.read_trailer(id) else { return false };
        let mut content = Vec::with_capacity((env_len + msg_len) as usize);
        if f.seek(SeekFrom::Start(0)).is_err() || (&mut f).take(env_len + msg_len).read_to_end(&mut content).is_err() {
            return false;
        }
        let mut fnv = Fnv::new();
        fnv.update(&content);
        fnv.0 == sum
    }

    fn initial_envelope(&self, id: &str) -> Result<Envelope, SpoolError> {
        let (mut f, env_len, msg_len, _) = self.read_trailer(id)?;
        let path = self.msg_path(id);
        let mut json = vec![0u8; env_len as usize];
        f.seek(SeekFrom::Start(msg_len)).map_err(io_err(&path))?;
        f.read_exact(&mut json).map_err(io_err(&path))?;
        serde_json::from_slice(&json).map_err(|e| SpoolError::Corrupt { path, message: e.to_string() })
    }

    /// Rewrites an envelope atomically (write, fsync, rename, fsync directory).
    pub fn save(&self, envelope: &Envelope) -> Result<(), SpoolError> {
        let tmp = self.dir.join(format!("{}.env.tmp", envelope.id));
        let result = write_synced(&tmp, &envelope_json(envelope))
            .and_then(|()| fs::rename(&tmp, self.env_path(&envelope.id)))
            .and_then(|()| self.dir_sync.sync(&self.dir));
        result.map_err(|e| {
            let _ = fs::remove_file(&tmp);
            SpoolError::Io { path: tmp.clone(), source: e }
        })
    }

    /// Removes a message for good. The directory is not fsynced: if a crash undoes the removal,
    /// the message is delivered again (at-least-once), which costs less than a sync per message.
    pub fn remove(&self, id: &str) -> Result<(), SpoolError> {
        if !valid_id(id) {
            return Err(SpoolError::NotFound(id.to_string()));
        }
        let msg = self.msg_path(id);
        match fs::remove_file(&msg) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => return Err(SpoolError::NotFound(id.to_string())),
            Err(e) => return Err(SpoolError::Io { path: msg, source: e }),
        }
        let _ = fs::remove_file(self.env_path(id));
        Ok(())
    }

    /// [`Spool::remove`], made durable (the operator's `queue delete`).
    pub fn remove_synced(&self, id: &str) -> Result<(), SpoolError> {
        // A message still being received is not in the queue yet.
        self.read_trailer(id).map_err(|_| SpoolError::NotFound(id.to_string()))?;
        self.remove(id)?;
        self.dir_sync.sync(&self.dir).map_err(io_err(&self.dir))
    }

    /// Ids of every queued message, oldest first.
    pub fn ids(&self) -> Result<Vec<String>, SpoolError> {
        let mut ids = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io_err(&self.dir))? {
            let entry = entry.map_err(io_err(&self.dir))?;
            if let Some(id) = entry.file_name().to_str().and_then(|n| n.strip_suffix(".msg"))
                && valid_id(id)
            {
                ids.push(id.to_string());
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Every readable envelope, oldest first; a message removed meanwhile is skipped.
    pub fn list(&self) -> Result<Vec<Envelope>, SpoolError> {
        let mut out = Vec::new();
        for id in self.ids()? {
            match self.load(&id) {
                Ok(e) => out.push(e),
                // Removed meanwhile, or still being received (no trailer yet).
                Err(SpoolError::NotFound(_) | SpoolError::Corrupt { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// The message as it is delivered: the header prefix made at enqueue (DKIM signatures),
    /// then the message as received.
    pub fn read_message(&self, id: &str) -> Result<Vec<u8>, SpoolError> {
        let (mut f, env_len, msg_len, _) = self.read_trailer(id)?;
        let path = self.msg_path(id);
        // One read of the message and the envelope after it; the prefix only lives there.
        let mut content = vec![0u8; (msg_len + env_len) as usize];
        f.seek(SeekFrom::Start(0)).map_err(io_err(&path))?;
        f.read_exact(&mut content).map_err(io_err(&path))?;
        let json = content.split_off(msg_len as usize);
        let prefix = serde_json::from_slice::<Envelope>(&json)
            .map_err(|e| SpoolError::Corrupt { path, message: e.to_string() })?
            .header_prefix;
        if prefix.is_empty() {
            return Ok(content);
        }
        let mut message = prefix.into_bytes();
        message.extend_from_slice(&content);
        Ok(message)
    }

    /// Takes the message's lock without waiting; `Busy` when someone else holds it.
    pub fn lock(&self, id: &str) -> Result<MessageLock, SpoolError> {
        let file = self.open_msg(id)?;
        // SAFETY: flock on a descriptor this function owns; no memory is involved.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            return Err(SpoolError::Busy(id.to_string()));
        }
        Ok(MessageLock { _file: file })
    }
}

impl Incoming {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Reads the message for DKIM as it is written (see [`Incoming::take_digest`]).
    pub fn digest_for_dkim(&mut self) {
        self.digest = Some(MessageDigest::new());
    }

    /// The header section and body hash of everything written, if [`Incoming::digest_for_dkim`]
    /// was asked for and the header section was not too large.
    pub fn take_digest(&mut self) -> Option<Digested> {
        self.digest.take().and_then(MessageDigest::finish)
    }

    pub fn write(&mut self, bytes: &[u8]) -> Result<(), EnqueueError> {
        if let Some(digest) = &mut self.digest {
            digest.feed(bytes);
        }
        self.size += bytes.len() as u64;
        self.checksum.update(bytes);
        self.file.write_all(bytes).map_err(|e| EnqueueError::io("writing", e))
    }
}

fn envelope_json(envelope: &Envelope) -> Vec<u8> {
    // Serializing a struct of strings and numbers cannot fail.
    serde_json::to_vec(envelope).unwrap_or_default()
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
#[path = "spool_tests.rs"]
mod tests;
