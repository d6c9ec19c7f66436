//! Script security: the programs a configuration names (notify commands, track scripts,
//! exec checks) run as the daemon's user, normally root, so only root may be able to
//! change what they are. The rule is keepalived's `enable_script_security`, always on:
//!
//! - the program is an absolute path to a **regular file**, executable (any `x` bit),
//!   **owned by root** and **not writable by others**, nor by its group unless the group
//!   is root (gid 0);
//! - every **directory** the path goes through, `/` included, is **owned by root** and not
//!   writable by others, nor by a group other than root, unless the directory has the
//!   **sticky bit** (as `/tmp`: there nobody but root can replace root's files);
//! - **symbolic links** are followed like the kernel does, and the directories on the
//!   way to each link's target are checked too (keepalived checks the fully resolved
//!   path; checking the directory that holds each link as well means no one but root can
//!   re-point a link either). The link's own owner and mode do not matter: nobody can
//!   change a link in place.
//!
//! A program that does not exist is an error as well. The check reads the file system
//! (`lstat`, `readlink`); nothing is run. It happens when the configuration is loaded:
//! `keepalive-d check`, `run` and every reload ([`crate::config::load`]). It covers the
//! program only, not its arguments: `[/bin/sh, -c, "/tmp/x"]` passes (as in keepalived).

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

/// Symbolic links followed at most while resolving one program (the kernel's limit).
const MAX_LINKS: u32 = 40;

/// Why a program is refused; each names the file or directory at fault.
#[derive(Debug)]
pub enum ScriptSecurityError {
    /// The program is not an absolute path.
    NotAbsolute {
        /// The program as written.
        program: PathBuf,
    },
    /// The program, or a directory on its path, does not exist.
    NotFound {
        /// The program as written.
        program: PathBuf,
        /// The first path that is missing (as resolved so far).
        missing: PathBuf,
    },
    /// A path could not be inspected (`lstat` or `readlink` failed).
    Inspect {
        /// The path.
        path: PathBuf,
        /// The system's error.
        source: io::Error,
    },
    /// A path component that must be a directory is something else.
    NotADirectory {
        /// The path.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// The program resolves to something other than a regular file.
    NotARegularFile {
        /// The resolved path.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// More than [`MAX_LINKS`] symbolic links (probably a loop).
    TooManyLinks {
        /// The program as written.
        program: PathBuf,
    },
    /// The file or a directory on its path is not owned by root.
    NotOwnedByRoot {
        /// The file or directory.
        path: PathBuf,
        /// Whether it is a directory on the program's path.
        directory: bool,
        /// Its owner.
        uid: u32,
    },
    /// The file or a directory on its path is writable by others, or by a group other than
    /// root (a directory only without the sticky bit).
    Writable {
        /// The file or directory.
        path: PathBuf,
        /// Whether it is a directory on the program's path.
        directory: bool,
        /// Writable by others (`true`) or by its group (`false`).
        others: bool,
        /// Its group.
        gid: u32,
        /// Its permission bits.
        mode: u32,
    },
    /// The file has no execute bit.
    NotExecutable {
        /// The resolved file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

impl fmt::Display for ScriptSecurityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = |directory: bool| if directory { "directory " } else { "" };
        match self {
            Self::NotAbsolute { program } => {
                write!(f, "`{}` is not an absolute path", program.display())
            }
            Self::NotFound { program, missing } if program == missing => {
                write!(f, "`{}` does not exist", program.display())
            }
            Self::NotFound { program, missing } => write!(
                f,
                "`{}` does not exist (no `{}`)",
                program.display(),
                missing.display()
            ),
            Self::Inspect { path, source } => {
                write!(f, "cannot inspect `{}`: {source}", path.display())
            }
            Self::NotADirectory { path, kind } => {
                write!(
                    f,
                    "`{}` is not a directory (it is a {kind})",
                    path.display()
                )
            }
            Self::NotARegularFile { path, kind } => {
                write!(
                    f,
                    "`{}` is not a regular file (it is a {kind})",
                    path.display()
                )
            }
            Self::TooManyLinks { program } => write!(
                f,
                "`{}`: more than {MAX_LINKS} symbolic links (a loop?)",
                program.display()
            ),
            Self::NotOwnedByRoot {
                path,
                directory,
                uid,
            } => write!(
                f,
                "{}`{}` is owned by uid {uid}, not root",
                what(*directory),
                path.display()
            ),
            Self::Writable {
                path,
                directory,
                others,
                gid,
                mode,
            } => {
                write!(
                    f,
                    "{}`{}` is writable by ",
                    what(*directory),
                    path.display()
                )?;
                if *others {
                    f.write_str("others")?;
                } else {
                    write!(f, "group {gid}")?;
                }
                write!(f, " (mode {mode:04o})")?;
                if *directory {
                    f.write_str(" and not sticky")?;
                }
                Ok(())
            }
            Self::NotExecutable { path, mode } => {
                write!(
                    f,
                    "`{}` is not executable (mode {mode:04o})",
                    path.display()
                )
            }
        }
    }
}

impl std::error::Error for ScriptSecurityError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Inspect { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Checks that `program` may be run as root: see the [module](self) for the rule.
pub fn check_program(program: &Path) -> Result<(), ScriptSecurityError> {
    if !program.is_absolute() {
        return Err(ScriptSecurityError::NotAbsolute {
            program: program.to_path_buf(),
        });
    }
    let root = PathBuf::from("/");
    check_directory(&root, &lstat(program, &root)?)?;
    // What is left to walk, last component first; a link's target is pushed onto it.
    let mut pending: Vec<OsString> = Vec::new();
    push_components(&mut pending, program);
    // A trailing slash makes the kernel want a directory.
    if program.as_os_str().as_encoded_bytes().ends_with(b"/") {
        pending.insert(0, OsString::from("."));
    }
    let mut dir = root;
    let mut links = 0;
    while let Some(name) = pending.pop() {
        if name == "." {
            continue;
        }
        if name == ".." {
            // `dir` is fully resolved, so its parent is the real `..`.
            dir.pop();
            continue;
        }
        let path = dir.join(&name);
        let meta = lstat(program, &path)?;
        let kind = meta.file_type();
        if kind.is_symlink() {
            links += 1;
            if links > MAX_LINKS {
                return Err(ScriptSecurityError::TooManyLinks {
                    program: program.to_path_buf(),
                });
            }
            let target =
                std::fs::read_link(&path).map_err(|source| ScriptSecurityError::Inspect {
                    path: path.clone(),
                    source,
                })?;
            if target.as_os_str().is_empty() {
                return Err(ScriptSecurityError::NotFound {
                    program: program.to_path_buf(),
                    missing: path,
                });
            }
            if target.is_absolute() {
                dir = PathBuf::from("/");
            }
            push_components(&mut pending, &target);
            continue;
        }
        if pending.iter().all(|n| n == ".") && !pending.is_empty() {
            // `file/.`: the kernel wants a directory here.
            return Err(ScriptSecurityError::NotARegularFile {
                path,
                kind: kind_name(&meta),
            });
        }
        if pending.is_empty() {
            return check_file(&path, &meta);
        }
        if !kind.is_dir() {
            return Err(ScriptSecurityError::NotADirectory {
                path,
                kind: kind_name(&meta),
            });
        }
        check_directory(&path, &meta)?;
        dir = path;
    }
    // The path ends at a directory (`/`, `/usr/..`).
    let meta = lstat(program, &dir)?;
    Err(ScriptSecurityError::NotARegularFile {
        path: dir,
        kind: kind_name(&meta),
    })
}

/// Pushes the components of `path` (after its root, if any) so that the first is popped
/// first.
fn push_components(pending: &mut Vec<OsString>, path: &Path) {
    let names: Vec<OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::CurDir => Some(OsString::from(".")),
            Component::RootDir | Component::Prefix(_) => None,
        })
        .collect();
    pending.extend(names.into_iter().rev());
}

fn lstat(program: &Path, path: &Path) -> Result<std::fs::Metadata, ScriptSecurityError> {
    std::fs::symlink_metadata(path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => ScriptSecurityError::NotFound {
            program: program.to_path_buf(),
            missing: path.to_path_buf(),
        },
        _ => ScriptSecurityError::Inspect {
            path: path.to_path_buf(),
            source,
        },
    })
}

fn kind_name(meta: &std::fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        "directory"
    } else if t.is_file() {
        "regular file"
    } else if t.is_symlink() {
        "symbolic link"
    } else if t.is_fifo() {
        "FIFO"
    } else if t.is_socket() {
        "socket"
    } else if t.is_block_device() {
        "block device"
    } else if t.is_char_device() {
        "character device"
    } else {
        "special file"
    }
}

/// Owned by root; not writable by others or a non-root group, unless sticky.
fn check_directory(path: &Path, meta: &std::fs::Metadata) -> Result<(), ScriptSecurityError> {
    owner_and_writers(path, meta, true, meta.mode() & 0o1000 != 0)
}

fn check_file(path: &Path, meta: &std::fs::Metadata) -> Result<(), ScriptSecurityError> {
    if !meta.file_type().is_file() {
        return Err(ScriptSecurityError::NotARegularFile {
            path: path.to_path_buf(),
            kind: kind_name(meta),
        });
    }
    owner_and_writers(path, meta, false, false)?;
    let mode = meta.mode() & 0o7777;
    if mode & 0o111 == 0 {
        return Err(ScriptSecurityError::NotExecutable {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

fn owner_and_writers(
    path: &Path,
    meta: &std::fs::Metadata,
    directory: bool,
    sticky: bool,
) -> Result<(), ScriptSecurityError> {
    if meta.uid() != 0 {
        return Err(ScriptSecurityError::NotOwnedByRoot {
            path: path.to_path_buf(),
            directory,
            uid: meta.uid(),
        });
    }
    let mode = meta.mode() & 0o7777;
    let others = mode & 0o002 != 0;
    let group = mode & 0o020 != 0 && meta.gid() != 0;
    if !sticky && (others || group) {
        return Err(ScriptSecurityError::Writable {
            path: path.to_path_buf(),
            directory,
            others,
            gid: meta.gid(),
            mode,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use std::os::unix::fs::{PermissionsExt, chown, symlink};

    /// `nobody` on Debian.
    const NOBODY: u32 = 65534;

    /// A fresh root-owned 0755 directory under the temporary directory (root-owned and
    /// sticky: allowed).
    struct Tree(PathBuf);

    impl Tree {
        fn new(tag: &str) -> Self {
            assert!(
                nix::unistd::geteuid().is_root(),
                "the script security tests create root-owned files: run them as root"
            );
            let dir = Path::new("/tmp").join(format!("kad-scrsec-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir(&dir).unwrap();
            chmod(&dir, 0o755);
            Self(dir)
        }

        fn dir(&self, rel: &str, mode: u32) -> PathBuf {
            let p = self.0.join(rel);
            std::fs::create_dir(&p).unwrap();
            chmod(&p, mode);
            p
        }

        fn file(&self, rel: &str, mode: u32) -> PathBuf {
            let p = self.0.join(rel);
            std::fs::write(&p, "#!/bin/sh\nexit 0\n").unwrap();
            chmod(&p, mode);
            p
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn chmod(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn refused(p: &Path) -> String {
        match check_program(p) {
            Ok(()) => panic!("{} accepted", p.display()),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn system_programs_pass_through_symlinked_directories() {
        // /bin is a link to usr/bin on Debian 12; /usr/bin/pidof links to /sbin/killall5,
        // and /sbin to usr/sbin.
        for p in [
            "/bin/true",
            "/usr/bin/true",
            "/bin/sh",
            "/usr/bin/pidof",
            "/usr//bin/./true",
        ] {
            if Path::new(p).exists() {
                check_program(Path::new(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
            }
        }
    }

    #[test]
    fn a_root_owned_0755_file_in_a_root_owned_directory_passes() {
        let t = Tree::new("ok");
        let f = t.file("ok.sh", 0o755);
        check_program(&f).unwrap();
        // Only the owner may execute it: enough for root.
        chmod(&f, 0o700);
        check_program(&f).unwrap();
        // Group-writable with group root: allowed (keepalived's rule).
        chmod(&f, 0o775);
        check_program(&f).unwrap();
    }

    #[test]
    fn file_writable_by_others_or_a_group_or_owned_by_someone_else() {
        let t = Tree::new("file");
        let f = t.file("x.sh", 0o777);
        assert_eq!(
            refused(&f),
            format!("`{}` is writable by others (mode 0777)", f.display())
        );
        chmod(&f, 0o775);
        chown(&f, None, Some(NOBODY)).unwrap();
        assert_eq!(
            refused(&f),
            format!(
                "`{}` is writable by group {NOBODY} (mode 0775)",
                f.display()
            )
        );
        chmod(&f, 0o755);
        check_program(&f).unwrap();
        chown(&f, Some(NOBODY), None).unwrap();
        assert_eq!(
            refused(&f),
            format!("`{}` is owned by uid {NOBODY}, not root", f.display())
        );
    }

    #[test]
    fn not_executable_missing_or_not_a_file() {
        let t = Tree::new("kind");
        let f = t.file("data", 0o644);
        assert_eq!(
            refused(&f),
            format!("`{}` is not executable (mode 0644)", f.display())
        );
        let missing = t.0.join("nope.sh");
        assert_eq!(
            refused(&missing),
            format!("`{}` does not exist", missing.display())
        );
        let deeper = t.0.join("nodir/x.sh");
        assert_eq!(
            refused(&deeper),
            format!(
                "`{}` does not exist (no `{}`)",
                deeper.display(),
                t.0.join("nodir").display()
            )
        );
        let d = t.dir("d", 0o755);
        assert_eq!(
            refused(&d),
            format!(
                "`{}` is not a regular file (it is a directory)",
                d.display()
            )
        );
        let through_file = f.join("x");
        assert_eq!(
            refused(&through_file),
            format!(
                "`{}` is not a directory (it is a regular file)",
                f.display()
            )
        );
        assert_eq!(
            refused(Path::new("relative/x.sh")),
            "`relative/x.sh` is not an absolute path"
        );
        assert_eq!(
            refused(Path::new("/")),
            "`/` is not a regular file (it is a directory)"
        );
    }

    #[test]
    fn directories_on_the_path() {
        let t = Tree::new("dirs");
        let d = t.dir("open", 0o777);
        let f = d.join("x.sh");
        std::fs::write(&f, "").unwrap();
        chmod(&f, 0o755);
        assert_eq!(
            refused(&f),
            format!(
                "directory `{}` is writable by others (mode 0777) and not sticky",
                d.display()
            )
        );
        // Sticky and root-owned, as /tmp: allowed.
        chmod(&d, 0o1777);
        check_program(&f).unwrap();
        // Sticky but owned by someone else: refused.
        chown(&d, Some(NOBODY), None).unwrap();
        assert_eq!(
            refused(&f),
            format!(
                "directory `{}` is owned by uid {NOBODY}, not root",
                d.display()
            )
        );
        chown(&d, Some(0), Some(NOBODY)).unwrap();
        chmod(&d, 0o775);
        assert_eq!(
            refused(&f),
            format!(
                "directory `{}` is writable by group {NOBODY} (mode 0775) and not sticky",
                d.display()
            )
        );
    }

    #[test]
    fn symbolic_links_are_followed_and_their_directories_checked() {
        let t = Tree::new("links");
        let real = t.file("real.sh", 0o755);
        // A link in a safe directory to a safe file.
        let safe = t.0.join("safe-link");
        symlink("real.sh", &safe).unwrap();
        check_program(&safe).unwrap();
        // A link to an unsafe file names the file.
        let bad = t.file("bad.sh", 0o757);
        let to_bad = t.0.join("to-bad");
        symlink(&bad, &to_bad).unwrap();
        assert_eq!(
            refused(&to_bad),
            format!("`{}` is writable by others (mode 0757)", bad.display())
        );
        // A link to a safe file, but in a directory anyone can write: anyone could
        // re-point it. keepalived's resolved-path check would miss this.
        let open = t.dir("open", 0o777);
        let hop = open.join("hop");
        symlink(&real, &hop).unwrap();
        let via = t.0.join("via");
        symlink(&hop, &via).unwrap();
        assert_eq!(
            refused(&via),
            format!(
                "directory `{}` is writable by others (mode 0777) and not sticky",
                open.display()
            )
        );
        // `..` after a link is taken from the link's target, as the kernel does.
        let sub = t.dir("sub", 0o755);
        let up = t.0.join("up");
        symlink(&sub, &up).unwrap();
        check_program(&up.join("../real.sh")).unwrap();
        // Loops.
        let a = t.0.join("loop-a");
        let b = t.0.join("loop-b");
        symlink(&b, &a).unwrap();
        symlink(&a, &b).unwrap();
        assert_eq!(
            refused(&a),
            format!("`{}`: more than 40 symbolic links (a loop?)", a.display())
        );
        // A dangling link.
        let dangling = t.0.join("dangling");
        symlink("nowhere.sh", &dangling).unwrap();
        assert_eq!(
            refused(&dangling),
            format!(
                "`{}` does not exist (no `{}`)",
                dangling.display(),
                t.0.join("nowhere.sh").display()
            )
        );
    }
}
