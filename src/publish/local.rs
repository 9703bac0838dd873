//! Publishing into a local origin folder (the origin's `StoragePrefix`, shared with this machine).
//!
//! Each object is copied once: read from the shard folder, hashed while it is written to a
//! temporary file in `<origin>/<path>/.etd-staging-<version>/` (same filesystem, never under
//! the final name), checked against the manifest, fsynced, and moved to its final name without
//! replacing (`persist_noclobber`: fails if the name appeared meanwhile); then the folder is
//! fsynced. Files are 0644 so the origin's service user can read them. A lock file beside the
//! version keeps two publishes of one version from interleaving.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use fs_err as fs;

use super::config::PublishConfig;
use super::{describe, digest_file, Action, CheckedPlan, Destination, Item, Replace};
use crate::digest::HashingWriter;
use crate::error::UserError;
use crate::fsx::sync_dir;

/// `<origin>/<path>/<version>` and its parent, in a local origin folder.
pub struct LocalFolder {
    pub parent: PathBuf,
    pub dest: PathBuf,
    pub version: String,
    /// `<origin>/<path>/<version>/` as the recipe spells it, for messages.
    shown: String,
    /// The version's publish lock, once taken.
    lock: Option<fs::File>,
}

impl LocalFolder {
    pub fn new(origin: &Path, cfg: &PublishConfig) -> Self {
        let parent = origin.join(&cfg.path);
        LocalFolder {
            dest: parent.join(&cfg.version),
            parent,
            version: cfg.version.clone(),
            shown: cfg.destination(),
            lock: None,
        }
    }

    fn staging(&self) -> PathBuf {
        self.parent.join(format!(".etd-staging-{}", self.version))
    }

    /// Check, without writing, that this process may create what publishing creates: the lock
    /// file and staging folder in `<origin>/<path>/` and the objects in the version folder (or,
    /// where a folder does not exist yet, in the nearest existing folder above it). The error
    /// names the folder, the permission missing, its mode and owner.
    pub fn check_writable(&self) -> Result<(), UserError> {
        for needed in [&self.parent, &self.dest] {
            let folder = needed.ancestors().find(|a| a.as_os_str().is_empty() || a.exists()).unwrap_or(needed);
            let folder = if folder.as_os_str().is_empty() { Path::new(".") } else { folder };
            if !folder.is_dir() {
                return Err(UserError::failure(format!(
                    "cannot publish into {}: {} is not a folder",
                    self.dest.display(),
                    folder.display()
                ))
                .with_hint("check `publish.origin` and `publish.path` in the recipe"));
            }
            let missing: Vec<&str> = [(libc::W_OK, "write"), (libc::X_OK, "search (x)")]
                .into_iter()
                .filter(|(mode, _)| !may_access(folder, *mode))
                .map(|(_, name)| name)
                .collect();
            if missing.is_empty() {
                continue;
            }
            let what = if folder != needed.as_path() {
                format!("{}/", needed.strip_prefix(folder).unwrap_or(needed).display())
            } else if needed == &self.parent {
                "its publish lock and staging folder".to_string()
            } else {
                "the shards and the manifest".to_string()
            };
            return Err(UserError::failure(format!(
                "cannot publish into {}: no {} permission on the folder {} ({}), where etd must create {what}",
                self.dest.display(),
                missing.join(" or "),
                folder.display(),
                describe_owner(folder),
            ))
            .with_hint(
                "run etd as a user who may write there (the origin's owner or a member of its group with write \
                 permission), or have its owner grant that (e.g. chmod g+w); `etd publish --dry-run` checks again \
                 without writing",
            ));
        }
        Ok(())
    }

    /// The version's publish lock (created beside the version folder).
    fn take_lock(&self) -> anyhow::Result<fs::File> {
        fs::create_dir_all(&self.parent)?;
        let path = self.parent.join(format!(".etd-publish-{}.lock", self.version));
        let file = fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path)?;
        match file.file().try_lock() {
            Ok(()) => Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => Err(UserError::failure(format!(
                "another etd publish of {} is running (lock {})",
                self.dest.display(),
                path.display()
            ))
            .with_hint("wait for it to finish; publishing is safe to run again afterwards")
            .into()),
            Err(std::fs::TryLockError::Error(e)) => Err(e).with_context(|| format!("cannot lock {}", path.display())),
        }
    }

    fn copy_in(&self, item: &Item, replace: Replace) -> anyhow::Result<()> {
        let staging = self.staging();
        let staging = staging.as_path();
        let mut src = fs::File::open(&item.path)?;
        let mut builder = tempfile::Builder::new();
        builder.prefix(crate::fsx::TEMP_PREFIX);
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644));
        let tmp = builder
            .tempfile_in(staging)
            .with_context(|| format!("cannot create a temporary file in {}", staging.display()))?;
        // md5 only where the manifest has one to compare (a folder reports no digests).
        let mut w = HashingWriter::with_md5(std::io::BufWriter::with_capacity(1 << 20, tmp), item.md5().is_some());
        let mut buf = vec![0u8; 1 << 20];
        loop {
            // The temporary file goes with `tmp` when this returns early.
            crate::stop::check(|| super::STOPPED.into())?;
            let n = src.read(&mut buf).with_context(|| format!("cannot read {}", item.path.display()))?;
            if n == 0 {
                break;
            }
            w.write_all(&buf[..n]).with_context(|| format!("cannot write into {}", staging.display()))?;
        }
        let (buffered, digests) = w.finish()?;
        let tmp = buffered.into_inner().map_err(|e| e.into_error())?;
        super::check_local(item, &digests)?;
        tmp.as_file().sync_all().with_context(|| format!("cannot sync {}", tmp.path().display()))?;
        let final_path = self.dest.join(&item.name);
        let persisted = match replace {
            Replace::No => tmp.persist_noclobber(&final_path),
            Replace::UnfinishedUpload => tmp.persist(&final_path),
        };
        persisted.map_err(|e| {
            if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                anyhow::Error::new(
                    UserError::failure(format!(
                        "{} appeared while this publish was writing it; it was not replaced",
                        final_path.display()
                    ))
                    .with_hint("something else writes into this version; publish under a new `publish.version`"),
                )
            } else {
                anyhow::Error::new(e.error).context(format!("cannot move a file into {}", final_path.display()))
            }
        })?;
        sync_dir(&self.dest)
    }
}

impl Destination for LocalFolder {
    fn describe(&self) -> String {
        self.shown.clone()
    }

    fn check_writable(&self) -> Option<Result<(), UserError>> {
        Some(LocalFolder::check_writable(self))
    }

    fn lock(&mut self) -> anyhow::Result<()> {
        self.lock = Some(self.take_lock()?);
        Ok(())
    }

    /// Reads existing objects to compare them; writes nothing.
    fn plan(&mut self, items: &[Item]) -> anyhow::Result<Vec<Action>> {
        let mut plan = Vec::with_capacity(items.len());
        for item in items {
            let path = self.dest.join(&item.name);
            plan.push(if path.exists() {
                let d = digest_file(&path, item.md5().is_some())?;
                if item.matches(&d) {
                    Action::Identical { name: item.name.clone() }
                } else {
                    Action::Conflict {
                        name: item.name.clone(),
                        published: describe(d.size, Some(&d.sha256), None, None),
                        local: describe(item.size, Some(&item.sha256), None, None),
                    }
                }
            } else {
                Action::Create { name: item.name.clone(), bytes: item.size }
            });
        }
        Ok(plan)
    }

    fn begin(&mut self, _plan: &CheckedPlan) -> anyhow::Result<()> {
        fs::create_dir_all(self.staging())?;
        fs::create_dir_all(&self.dest)?;
        Ok(())
    }

    fn put(&mut self, item: &Item, replace: Replace) -> anyhow::Result<()> {
        self.copy_in(item, replace)
    }

    /// Leftovers of killed runs are ours (the lock is held): remove the staging folder.
    fn end(&mut self) -> anyhow::Result<()> {
        fs::remove_dir_all(self.staging())?;
        Ok(())
    }
}

/// Whether this process has `mode` (`libc::W_OK`, `libc::X_OK`) access to `path`, as the kernel
/// decides it (owner, group, other bits, ACLs, read-only mounts, root).
fn may_access(path: &Path, mode: libc::c_int) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c_path` is a valid NUL-terminated string that outlives the call; access(2) only
    // reads it.
    unsafe { libc::access(c_path.as_ptr(), mode) == 0 }
}

/// `mode 0555, owner uid 0, group gid 0` for messages.
fn describe_owner(path: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    match fs::metadata(path) {
        Ok(m) => format!("mode {:04o}, owner uid {}, group gid {}", m.mode() & 0o7777, m.uid(), m.gid()),
        Err(e) => format!("cannot read its permissions: {}", crate::fsx::os_reason(&e, path)),
    }
}
