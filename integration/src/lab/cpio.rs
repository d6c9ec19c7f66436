//! A minimal writer for the `newc` cpio format that the kernel unpacks as an initramfs.
//!
//! Hand-written rather than taken from a crate or the `cpio` command: the format is
//! ten lines of header, we need only files, directories and symlinks, and writing it
//! in-process keeps the initramfs build deterministic (fixed mtimes and inode numbers)
//! and free of shell pipelines.

use std::io::{self, Write};

/// Builds a `newc` archive in memory.
#[derive(Debug, Default)]
pub struct CpioWriter {
    buf: Vec<u8>,
    next_ino: u32,
}

impl CpioWriter {
    /// An empty archive.
    pub fn new() -> Self {
        Self {
            buf: Vec::new(),
            next_ino: 1,
        }
    }

    /// Adds a directory.
    pub fn dir(&mut self, path: &str) {
        self.entry(path, 0o040_755, &[]);
    }

    /// Adds a regular file with the given permission bits.
    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) {
        self.entry(path, 0o100_000 | (mode & 0o7777), data);
    }

    /// Adds a symbolic link at `path` pointing to `target`.
    pub fn symlink(&mut self, path: &str, target: &str) {
        self.entry(path, 0o120_777, target.as_bytes());
    }

    fn entry(&mut self, path: &str, mode: u32, data: &[u8]) {
        let path = path.trim_start_matches('/');
        let ino = self.next_ino;
        self.next_ino += 1;
        let namesize = path.len() + 1;
        let fields: [u32; 13] = [
            ino,
            mode,
            0, // uid
            0, // gid
            1, // nlink
            0, // mtime: fixed, so the archive is reproducible
            u32::try_from(data.len()).unwrap_or(u32::MAX),
            0, // devmajor
            0, // devminor
            0, // rdevmajor
            0, // rdevminor
            u32::try_from(namesize).unwrap_or(u32::MAX),
            0, // check
        ];
        self.buf.extend_from_slice(b"070701");
        for f in fields {
            self.buf.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.buf.extend_from_slice(path.as_bytes());
        self.buf.push(0);
        self.pad4();
        self.buf.extend_from_slice(data);
        self.pad4();
    }

    fn pad4(&mut self) {
        while self.buf.len() % 4 != 0 {
            self.buf.push(0);
        }
    }

    /// Appends the trailer and writes the archive out.
    pub fn finish(mut self, out: &mut impl Write) -> io::Result<()> {
        self.next_ino = 0;
        self.entry("TRAILER!!!", 0, &[]);
        out.write_all(&self.buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout_matches_newc() {
        let mut w = CpioWriter::new();
        w.file("/init", 0o755, b"hi");
        let mut out = Vec::new();
        w.finish(&mut out).unwrap();
        // magic, inode 1, mode 0100755
        assert_eq!(&out[..6], b"070701");
        assert_eq!(&out[6..14], b"00000001");
        assert_eq!(&out[14..22], b"000081ed");
        // filesize field (7th field) is 2, namesize ("init\0") is 5
        assert_eq!(&out[6 + 6 * 8..6 + 7 * 8], b"00000002");
        assert_eq!(&out[6 + 11 * 8..6 + 12 * 8], b"00000005");
        // name starts at 110, header+name padded to 4: 110+5=115 -> 116
        assert_eq!(&out[110..115], b"init\0");
        assert_eq!(&out[116..118], b"hi");
        assert_eq!(out.len() % 4, 0);
        let tail = String::from_utf8_lossy(&out);
        assert!(tail.contains("TRAILER!!!"));
    }
}
