//! Group commit of directory fsyncs for the spool: every commit needs its directory entry on
//! disk before its `250`, but one fsync of the directory covers every entry made before it
//! started, so commits that arrive together share one.

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::{Condvar, Mutex};

pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Group commit of directory fsyncs: a caller that created or renamed an entry before asking is
/// covered by any fsync that *starts* after it asked, so concurrent commits share one.
#[derive(Default)]
pub struct DirSync {
    state: Mutex<SyncState>,
    done: Condvar,
}

#[derive(Default)]
struct SyncState {
    requested: u64,
    completed: u64,
    running: bool,
}

impl DirSync {
    pub fn sync(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.requested += 1;
        let ticket = st.requested;
        loop {
            if st.completed >= ticket {
                return Ok(());
            }
            if !st.running {
                st.running = true;
                let target = st.requested;
                drop(st);
                let result = sync_dir(dir);
                st = self.state.lock().unwrap_or_else(|p| p.into_inner());
                st.running = false;
                if result.is_ok() {
                    st.completed = st.completed.max(target);
                }
                self.done.notify_all();
                // A failed fsync covers nobody: report it to this caller; others retry.
                return result;
            }
            st = self.done.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }
}
