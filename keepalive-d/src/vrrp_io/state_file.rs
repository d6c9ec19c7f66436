//! The per-instance state file under the state directory (default `/run/keepalive-d`):
//! it lets a daemon that was killed and restarted quickly resume as Master without a
//! failover.
//!
//! While an instance is Master the file holds `master` and its modification time is the
//! time of the last advert sent; it also keeps the highest priority heard from a peer
//! (`master 150`), which tells how soon a peer can take over. On start, an instance whose
//! file says `master` with an advert younger than the master-down interval of its
//! quickest peer ([`vrrp_proto::Instance::resume_window`]) resumes as Master at once
//! ([`vrrp_proto::Event::Resume`]): the peers have not declared it dead yet, so nothing
//! changes for them. The age is checked twice: when the configuration is loaded, and
//! again right before the instance starts, so a slow start-up does not resume after a
//! peer took over. Otherwise it starts as the RFC says (Backup first). A clean stop
//! (priority 0 sent) removes the file: the peers took over, so there is nothing to resume.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use vrrp_proto::State;

/// What a state file says: Master or not, and the highest priority heard from a peer.
fn parse(text: &str) -> (bool, Option<u8>) {
    let mut words = text.split_whitespace();
    let master = words.next() == Some("master");
    (master, words.next().and_then(|w| w.parse().ok()))
}

/// Until when the instance may resume as Master: the time of its last advert plus
/// `window(highest peer priority heard)`, if the file at `path` says Master and that time
/// is still ahead; `None` otherwise.
pub fn resume_deadline(
    path: &Path,
    window: impl FnOnce(Option<u8>) -> Duration,
) -> Option<SystemTime> {
    let (master, peer) = parse(&std::fs::read_to_string(path).ok()?);
    if !master {
        return None;
    }
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok()?;
    let window = window(peer);
    let deadline = modified.checked_add(window)?;
    // A file stamped in the future (the clock stepped back) is not trusted.
    let now = SystemTime::now();
    if modified <= now && now < deadline {
        return Some(deadline);
    }
    tracing::info!(
        file = %path.display(),
        last_advert_ago = ?now.duration_since(modified).ok(),
        ?window,
        "was Master, but not recently enough to resume: a peer may have taken over"
    );
    None
}

/// The state file of one running instance.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    /// Open while Master, to stamp each advert cheaply (one futimens).
    handle: Option<File>,
    /// The highest priority heard from a peer, also by a predecessor.
    peer_priority: Option<u8>,
    warned: bool,
}

impl StateFile {
    /// The file at `path` (not touched until the first state change), keeping the peer
    /// priority a predecessor wrote to it.
    pub fn new(path: PathBuf) -> Self {
        let peer_priority = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| parse(&t).1);
        Self {
            path,
            handle: None,
            peer_priority,
            warned: false,
        }
    }

    /// An advert from a peer with `priority` (not 0): written with the next state change.
    pub fn peer_heard(&mut self, priority: u8) {
        if priority > 0 && self.peer_priority.is_none_or(|p| p < priority) {
            self.peer_priority = Some(priority);
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
        let word = if state == State::Master {
            "master"
        } else {
            "backup"
        };
        let text = match self.peer_priority {
            Some(p) => format!("{word} {p}\n"),
            None => format!("{word}\n"),
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
    fn the_highest_peer_priority_is_kept_and_passed_on() {
        let dir = std::env::temp_dir().join(format!("kad-state-peer-{}", std::process::id()));
        let path = dir.join("vrrp-vi1.state");
        let mut f = StateFile::new(path.clone());
        f.peer_heard(120);
        f.peer_heard(0); // a resigning peer says nothing of its priority
        f.peer_heard(150);
        f.peer_heard(90);
        f.record(State::Master);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "master 150\n");
        let mut heard = None;
        assert!(
            resume_deadline(&path, |p| {
                heard = p;
                Duration::from_secs(3)
            })
            .is_some()
        );
        assert_eq!(heard, Some(150));
        // A successor (restart, upgrade) keeps it.
        let mut next = StateFile::new(path.clone());
        next.record(State::Backup);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "backup 150\n");
        // A file of an earlier version: `master` alone, no peer heard.
        std::fs::write(&path, "master\n").unwrap();
        let mut heard = Some(0);
        assert!(
            resume_deadline(&path, |p| {
                heard = p;
                Duration::from_secs(3)
            })
            .is_some()
        );
        assert_eq!(heard, None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn resume_only_from_a_fresh_master_file() {
        let dir = std::env::temp_dir().join(format!("kad-state-{}", std::process::id()));
        let path = dir.join("vrrp-vi1.state");
        let window = Duration::from_secs(3);
        assert!(resume_deadline(&path, |_| window).is_none(), "no file");
        let mut f = StateFile::new(path.clone());
        f.record(State::Master);
        f.advert_sent();
        assert!(resume_deadline(&path, |_| window).is_some());
        // An advert long ago: the peers have taken over meanwhile.
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(10))
            .unwrap();
        assert!(resume_deadline(&path, |_| window).is_none());
        // Stamped in the future (the clock stepped back): not trusted.
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(SystemTime::now() + Duration::from_secs(10))
            .unwrap();
        assert!(resume_deadline(&path, |_| window).is_none());
        f.record(State::Backup);
        assert!(resume_deadline(&path, |_| window).is_none());
        f.record(State::Master);
        assert!(resume_deadline(&path, |_| window).is_some());
        f.remove();
        assert!(resume_deadline(&path, |_| window).is_none());
        f.remove();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
