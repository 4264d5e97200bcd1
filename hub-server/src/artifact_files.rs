//! The artifact byte store: files in `MCP_HUB_ARTIFACTS_DIR`. Owns every filesystem call on
//! artifact bytes (stream to a temp file, hash while writing, fsync, rename; removal; the
//! startup sweep). Knows no SQL and no HTTP: `http::artifacts` feeds it a body, the store
//! records what it returns.
//!
//! Crash safety: bytes go to `.upload-<id>-<rand>` first; only a complete, fsynced file is
//! renamed to its final name `<id>.<rand>`, and only then does the row point at it. A hub
//! killed at any step leaves either a temp file or a final file no row names; the startup
//! sweep deletes both, so nothing half-written is ever visible.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use axum::body::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

const TEMP_PREFIX: &str = ".upload-";
/// Chunks queued between the request and the writer thread: bounds an upload's memory to
/// this many body chunks, whatever the file size.
const QUEUE_CHUNKS: usize = 32;
const WRITE_BUFFER: usize = 256 * 1024;

/// A file committed to disk, not yet named by any row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFile {
    /// File name inside the artifacts directory.
    pub file_name: String,
    pub size_bytes: u64,
    pub sha256: String,
}

enum Chunk {
    Data(Bytes),
    Finish(oneshot::Sender<io::Result<WrittenFile>>),
}

/// An upload in progress. Dropping it without [`ArtifactWriter::finish`] deletes the
/// temp file (a refused or broken upload leaves nothing).
pub struct ArtifactWriter {
    chunks: mpsc::Sender<Chunk>,
}

fn random_suffix() -> String {
    hex::encode(rand::random::<[u8; 8]>())
}

impl ArtifactWriter {
    /// Starts a writer thread on the blocking pool: it writes and hashes what it is sent.
    pub async fn begin(dir: &Path, artifact_id: &str) -> io::Result<ArtifactWriter> {
        let suffix = random_suffix();
        let temp = dir.join(format!("{TEMP_PREFIX}{artifact_id}-{suffix}"));
        let final_name = format!("{artifact_id}.{suffix}");
        let dir = dir.to_path_buf();
        let (ready_tx, ready_rx) = oneshot::channel();
        let (chunks, receiver) = mpsc::channel(QUEUE_CHUNKS);
        tokio::task::spawn_blocking(move || {
            write_file(dir, temp, final_name, receiver, ready_tx);
        });
        ready_rx
            .await
            .map_err(|_| io::Error::other("artifact writer did not start"))??;
        Ok(ArtifactWriter { chunks })
    }

    /// Queues a chunk; waits while the writer is behind (backpressure).
    pub async fn write(&self, data: Bytes) -> io::Result<()> {
        self.chunks
            .send(Chunk::Data(data))
            .await
            .map_err(|_| io::Error::other("artifact writer stopped"))
    }

    /// Flushes, fsyncs and renames the file to its final name.
    pub async fn finish(self) -> io::Result<WrittenFile> {
        let (done_tx, done_rx) = oneshot::channel();
        self.chunks
            .send(Chunk::Finish(done_tx))
            .await
            .map_err(|_| io::Error::other("artifact writer stopped"))?;
        done_rx
            .await
            .map_err(|_| io::Error::other("artifact writer stopped"))?
    }
}

/// The writer thread: everything here is blocking I/O and hashing, off the async workers.
fn write_file(
    dir: PathBuf,
    temp: PathBuf,
    final_name: String,
    mut chunks: mpsc::Receiver<Chunk>,
    ready: oneshot::Sender<io::Result<()>>,
) {
    let file = match File::create_new(&temp) {
        Ok(file) => file,
        Err(error) => {
            let _ = ready.send(Err(error));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    let mut out = BufWriter::with_capacity(WRITE_BUFFER, file);
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut failed: Option<io::Error> = None;
    while let Some(chunk) = chunks.blocking_recv() {
        match chunk {
            Chunk::Data(data) => {
                if failed.is_none() {
                    hasher.update(&data);
                    size += data.len() as u64;
                    if let Err(error) = out.write_all(&data) {
                        failed = Some(error);
                    }
                }
            }
            Chunk::Finish(done) => {
                let result = match failed.take() {
                    Some(error) => Err(error),
                    None => commit(out, &temp, &dir, &final_name),
                };
                let result = result.map(|()| WrittenFile {
                    file_name: final_name.clone(),
                    size_bytes: size,
                    sha256: hex::encode(hasher.finalize()),
                });
                if result.is_err() {
                    let _ = fs::remove_file(&temp);
                }
                let _ = done.send(result);
                return;
            }
        }
    }
    // The request went away (refused, client gone): nothing may remain.
    drop(out);
    let _ = fs::remove_file(&temp);
}

fn commit(out: BufWriter<File>, temp: &Path, dir: &Path, final_name: &str) -> io::Result<()> {
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    drop(file);
    fs::rename(temp, dir.join(final_name))?;
    // The rename itself must survive a power loss before the row names the file.
    File::open(dir)?.sync_all()
}

/// The path of a committed file; `None` for a name that could leave the directory.
pub fn path_of(dir: &Path, file_name: &str) -> Option<PathBuf> {
    is_final_name(file_name).then(|| dir.join(file_name))
}

/// Deletes committed files (retention, a refused commit). Missing files are fine.
pub fn remove(dir: &Path, file_names: &[String]) {
    for name in file_names {
        if let Some(path) = path_of(dir, name)
            && let Err(error) = fs::remove_file(&path)
            && error.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), %error, "could not delete an artifact file");
        }
    }
}

/// `<uuid>.<16 hex>`: only names this module creates count as ours.
fn is_final_name(name: &str) -> bool {
    let Some((id, suffix)) = name.split_once('.') else {
        return false;
    };
    id.len() == 36
        && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
        && suffix.len() == 16
        && suffix.chars().all(|c| c.is_ascii_hexdigit())
}

/// How recently a file in a directory shared by replicas may have been written and still
/// belong to a live upload of another replica: spared by the startup sweep. Generous, since
/// an upload's temp file is written to continuously and a final file is committed right
/// after its rename.
pub const SHARED_DIR_GRACE: std::time::Duration = std::time::Duration::from_secs(3600);

/// At startup, before serving: creates the directory and deletes the temp files of
/// interrupted uploads and committed-looking files no row names. Files this hub did not
/// name are left alone. Files modified within `spare_recent` are kept: with replicas
/// sharing the directory (PostgreSQL) they may be another replica's upload in flight, or
/// a file renamed an instant before its row commits. Returns how many were deleted.
pub fn sweep(
    dir: &Path,
    referenced: &HashSet<String>,
    spare_recent: std::time::Duration,
) -> io::Result<usize> {
    fs::create_dir_all(dir)?;
    let mut removed = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let orphan =
            name.starts_with(TEMP_PREFIX) || (is_final_name(&name) && !referenced.contains(&name));
        if !orphan || !entry.file_type()?.is_file() {
            continue;
        }
        // An mtime in the future (clock skew between hosts) counts as recent.
        let modified = match entry.metadata().and_then(|m| m.modified()) {
            Ok(modified) => modified,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let age = modified.elapsed().unwrap_or(std::time::Duration::ZERO);
        if age < spare_recent {
            continue;
        }
        match fs::remove_file(entry.path()) {
            Ok(()) => removed += 1,
            // Another replica sweeping the same shared directory got there first.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_names_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let keep = "0b7c7a4e-1d1f-4f2b-9c5e-4a3c2b1a0f9e.0123456789abcdef";
        let orphan = "1b7c7a4e-1d1f-4f2b-9c5e-4a3c2b1a0f9e.0123456789abcdef";
        for name in [keep, orphan, ".upload-x-1", "notes.txt"] {
            fs::write(dir.path().join(name), b"x").unwrap();
        }
        let referenced = HashSet::from([keep.to_string()]);
        assert_eq!(
            sweep(dir.path(), &referenced, std::time::Duration::ZERO).unwrap(),
            2
        );
        let mut left: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, vec![keep.to_string(), "notes.txt".to_string()]);
        assert!(path_of(dir.path(), "../etc/passwd").is_none());
    }

    #[test]
    fn a_shared_directory_keeps_recent_orphans() {
        let dir = tempfile::tempdir().unwrap();
        let hour = std::time::Duration::from_secs(3600);
        let stale = "1b7c7a4e-1d1f-4f2b-9c5e-4a3c2b1a0f9e.0123456789abcdef";
        let fresh = "2b7c7a4e-1d1f-4f2b-9c5e-4a3c2b1a0f9e.0123456789abcdef";
        for name in [stale, fresh, ".upload-old-1", ".upload-new-1"] {
            fs::write(dir.path().join(name), b"x").unwrap();
        }
        for name in [stale, ".upload-old-1"] {
            let two_hours_ago = std::time::SystemTime::now() - 2 * hour;
            fs::File::options()
                .write(true)
                .open(dir.path().join(name))
                .unwrap()
                .set_modified(two_hours_ago)
                .unwrap();
        }
        assert_eq!(sweep(dir.path(), &HashSet::new(), hour).unwrap(), 2);
        let mut left: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, vec![".upload-new-1".to_string(), fresh.to_string()]);
    }

    #[tokio::test]
    async fn writes_hashes_and_drops_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let id = "0b7c7a4e-1d1f-4f2b-9c5e-4a3c2b1a0f9e";
        let writer = ArtifactWriter::begin(dir.path(), id).await.unwrap();
        writer.write(Bytes::from_static(b"hello ")).await.unwrap();
        writer.write(Bytes::from_static(b"world")).await.unwrap();
        let written = writer.finish().await.unwrap();
        assert_eq!(written.size_bytes, 11);
        assert_eq!(
            written.sha256,
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
        let path = path_of(dir.path(), &written.file_name).unwrap();
        assert_eq!(fs::read(path).unwrap(), b"hello world");
    }
}
