//! The per-instance state file under the state directory (default `/run/keepalive-d`):
//! it lets a daemon that was killed and restarted quickly resume as Master without a
//! failover.
//!
//! While an instance is Master the file holds `master` and its modification time is the
//! time of the last advert sent. On start, an instance whose file says `master` with an
//! advert younger than its master-down interval resumes as Master at once
//! ([`vrrp_proto::Event::Resume`]): the peers have not declared it dead yet, so nothing
//! changes for them. Otherwise it starts as the RFC says (Backup first). A clean stop
//! (priority 0 sent) removes the file: the peers took over, so there is nothing to resume.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use vrrp_proto::State;

/// Whether the file at `path` says Master with its last advert less than `window` ago.
pub fn may_resume(path: &Path, window: Duration) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    if text.trim() != "master" {
        return false;
    }
    let Ok(modified) = std::fs::metadata(path).and_then(|m| m.modified()) else {
        return false;
    };
    SystemTime::now()
        .duration_since(modified)
        .is_ok_and(|age| age < window)
}

/// The state file of one running instance.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    /// Open while Master, to stamp each advert cheaply (one futimens).
    handle: Option<File>,
    warned: bool,
}

impl StateFile {
    /// The file at `path` (not touched until the first state change).
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            handle: None,
            warned: false,
        }
    }

    fn warn(&mut self, what: &str, e: &std::io::Error) {
        if !self.warned {
            self.warned = true;
            tracing::warn!(
                file = %self.path.display(),
                "cannot {what} the VRRP state file ({e}): a quick restart will not resume as Master"
            );
        }
    }

    /// Records a state change.
    pub fn record(&mut self, state: State) {
        self.handle = None;
        if let Some(dir) = self.path.parent() {
            if let Err(e) = std::fs::create_dir_all(dir) {
                self.warn("create the directory of", &e);
                return;
            }
        }
        let text = if state == State::Master {
            "master\n"
        } else {
            "backup\n"
        };
        if let Err(e) = std::fs::write(&self.path, text) {
            self.warn("write", &e);
            return;
        }
        if state == State::Master {
            match File::options().write(true).open(&self.path) {
                Ok(f) => self.handle = Some(f),
                Err(e) => self.warn("open", &e),
            }
        }
    }

    /// Stamps an advert sent as Master.
    pub fn advert_sent(&mut self) {
        if let Some(f) = &self.handle {
            if let Err(e) = f.set_modified(SystemTime::now()) {
                self.handle = None;
                self.warn("stamp", &e);
            }
        }
    }

    /// A clean stop: nothing to resume.
    pub fn remove(&mut self) {
        self.handle = None;
        match std::fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => self.warn("remove", &e),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn resume_only_from_a_fresh_master_file() {
        let dir = std::env::temp_dir().join(format!("kad-state-{}", std::process::id()));
        let path = dir.join("vrrp-vi1.state");
        let window = Duration::from_secs(3);
        assert!(!may_resume(&path, window), "no file");
        let mut f = StateFile::new(path.clone());
        f.record(State::Master);
        f.advert_sent();
        assert!(may_resume(&path, window));
        // An advert long ago: the peers have taken over meanwhile.
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(10))
            .unwrap();
        assert!(!may_resume(&path, window));
        f.record(State::Backup);
        assert!(!may_resume(&path, window));
        f.record(State::Master);
        assert!(may_resume(&path, window));
        f.remove();
        assert!(!may_resume(&path, window));
        f.remove();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
