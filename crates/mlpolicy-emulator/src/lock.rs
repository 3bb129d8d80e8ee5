//! One writer per state file: an exclusive operating-system lock (`flock` on Unix, `LockFileEx`
//! on Windows, through `fs4`) on `STATE.lock` beside the state, held from before the state is
//! loaded until the emulator has saved it for the last time. A second emulator on the same file
//! (another `--emulator` command on the same directory, or a second `mlpolicy emulator --state`)
//! waits for it, saying so once on stderr, and fails with [`StateError::Locked`] after the
//! timeout. The lock dies with its process, so a killed emulator never leaves it stale; the
//! lock file holds the holder's process id, for the message only.

use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::state::StateError;

/// How long a second emulator waits for the state by default.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(120);

/// How often a waiting emulator tries the lock again.
const POLL: Duration = Duration::from_millis(50);

/// A held lock on a state file; dropping it releases the lock.
#[derive(Debug)]
pub struct StateLock {
    _file: std::fs::File,
    path: PathBuf,
}

/// The lock file of a state file: `STATE.lock`.
pub fn lock_path(state: &Path) -> PathBuf {
    let mut name = state.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

impl StateLock {
    /// Takes the lock of `state`, waiting up to `timeout` for another process to release it.
    /// `waiting` is called once, with a sentence naming the holder, when the lock is taken.
    pub async fn acquire(
        state: &Path,
        timeout: Duration,
        waiting: &(dyn Fn(&str) + Sync),
    ) -> Result<StateLock, StateError> {
        let path = lock_path(state);
        let shown = path.display().to_string();
        let io = |source: std::io::Error| StateError::Io { path: shown.clone(), source };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut file =
            std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
        let started = Instant::now();
        let mut told = false;
        loop {
            match fs4::FileExt::try_lock(&file) {
                Ok(()) => break,
                Err(fs4::TryLockError::WouldBlock) => {}
                Err(fs4::TryLockError::Error(e)) => return Err(io(e)),
            }
            let holder = holder(&mut file);
            if started.elapsed() >= timeout {
                return Err(StateError::Locked {
                    path: state.display().to_string(),
                    holder,
                    waited: humantime::format_duration(timeout).to_string(),
                });
            }
            if !told {
                told = true;
                waiting(&format!(
                    "`{}` is in use by another emulator ({holder}); waiting up to {} for it to finish",
                    state.display(),
                    humantime::format_duration(timeout)
                ));
            }
            tokio::time::sleep(POLL).await;
        }
        // The holder's pid, for the message a waiting process prints. Best effort: the lock,
        // not this text, is what excludes.
        let _ =
            file.set_len(0).and_then(|()| file.rewind()).and_then(|()| writeln!(file, "pid {}", std::process::id()));
        Ok(StateLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Who holds the lock, as the lock file says (`pid N`), or `another process`.
fn holder(file: &mut std::fs::File) -> String {
    let mut text = String::new();
    let read = file.rewind().and_then(|()| file.take(64).read_to_string(&mut text));
    match read {
        Ok(_) if text.trim().starts_with("pid ") && text.trim()[4..].bytes().all(|b| b.is_ascii_digit()) => {
            text.trim().to_owned()
        }
        _ => "another process".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_holder_waits_then_times_out_with_the_holders_pid() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("emulator.yaml");
        let first = StateLock::acquire(&state, Duration::ZERO, &|_| panic!("no wait")).await.unwrap();
        assert!(first.path().ends_with("emulator.yaml.lock"));
        let said = std::sync::Mutex::new(Vec::new());
        let err = StateLock::acquire(&state, Duration::from_millis(200), &|m| said.lock().unwrap().push(m.to_owned()))
            .await
            .unwrap_err()
            .to_string();
        let pid = format!("pid {}", std::process::id());
        assert!(err.contains(&pid) && err.contains("200ms"), "{err}");
        let said = said.into_inner().unwrap();
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(said[0].contains(&pid), "{said:?}");
        drop(first);
        StateLock::acquire(&state, Duration::ZERO, &|_| panic!("no wait")).await.unwrap();
    }
}
