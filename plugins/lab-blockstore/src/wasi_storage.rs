//! [`Storage`] over WASI 0.2 `wasi:filesystem`, used inside the lab adapter components.

use wasip2::filesystem::preopens::get_directories;
use wasip2::filesystem::types::{
    Advice, Descriptor, DescriptorFlags, DescriptorType, ErrorCode, OpenFlags, PathFlags,
};

use crate::error::{Error, Result};
use crate::storage::{Storage, StorageFile, check_path};

/// Storage rooted at a directory the host preopened for the component. Exists because the
/// adapters run as WASI components and keep all their state under that directory.
pub struct WasiStorage {
    root: Descriptor,
    guest_path: String,
}

impl std::fmt::Debug for WasiStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasiStorage")
            .field("guest_path", &self.guest_path)
            .finish()
    }
}

fn norm(p: &str) -> &str {
    let t = p.trim_end_matches('/');
    if t.is_empty() { "/" } else { t }
}

impl WasiStorage {
    /// Uses the preopened directory whose guest path is `guest_path` (e.g. `/data`);
    /// `NotFound` naming the available preopens if the host did not grant it.
    pub fn preopened(guest_path: &str) -> Result<Self> {
        let mut seen = Vec::new();
        for (desc, path) in get_directories() {
            if norm(&path) == norm(guest_path) {
                return Ok(WasiStorage {
                    root: desc,
                    guest_path: path,
                });
            }
            seen.push(path);
        }
        Err(Error::NotFound(format!(
            "no preopened directory {guest_path:?} (the host preopened {seen:?}); \
             the endpoint's data directory capability is missing"
        )))
    }

    /// The guest path of the root preopen.
    pub fn guest_path(&self) -> &str {
        &self.guest_path
    }

    fn open(
        &self,
        path: &str,
        open: OpenFlags,
        flags: DescriptorFlags,
    ) -> std::result::Result<Descriptor, ErrorCode> {
        self.root.open_at(PathFlags::empty(), path, open, flags)
    }

    fn err(&self, what: &str, path: &str, e: ErrorCode) -> Error {
        Error::Io(format!(
            "{what} {}/{path}: {e}",
            self.guest_path.trim_end_matches('/')
        ))
    }

    fn remove_tree(&self, path: &str) -> Result<()> {
        let dir = self
            .open(path, OpenFlags::DIRECTORY, DescriptorFlags::READ)
            .map_err(|e| self.err("open directory", path, e))?;
        let stream = dir
            .read_directory()
            .map_err(|e| self.err("list directory", path, e))?;
        let mut entries = Vec::new();
        while let Some(entry) = stream
            .read_directory_entry()
            .map_err(|e| self.err("list directory", path, e))?
        {
            entries.push(entry);
        }
        drop(stream);
        drop(dir);
        for entry in entries {
            let child = format!("{path}/{}", entry.name);
            if entry.type_ == DescriptorType::Directory {
                self.remove_tree(&child)?;
            } else {
                self.root
                    .unlink_file_at(&child)
                    .map_err(|e| self.err("remove", &child, e))?;
            }
        }
        self.root
            .remove_directory_at(path)
            .map_err(|e| self.err("remove directory", path, e))
    }
}

/// An open WASI file plus its storage path (for error messages).
pub struct WasiFile {
    fd: Descriptor,
    path: String,
}

impl WasiFile {
    fn err(&self, what: &str, e: ErrorCode) -> Error {
        Error::Io(format!("{what} {}: {e}", self.path))
    }
}

impl StorageFile for WasiFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        let mut done = 0usize;
        while done < buf.len() {
            let at = offset + done as u64;
            let (chunk, eof) = self
                .fd
                .read((buf.len() - done) as u64, at)
                .map_err(|e| self.err(&format!("read at {at}"), e))?;
            let n = chunk.len().min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&chunk[..n]);
            done += n;
            if eof || n == 0 {
                break;
            }
        }
        Ok(done)
    }

    fn read_vec_at(&self, len: usize, offset: u64) -> Result<Vec<u8>> {
        // The component ABI already hands us an owned buffer: keep it, no extra copy.
        let (mut out, mut eof) = self
            .fd
            .read(len as u64, offset)
            .map_err(|e| self.err(&format!("read at {offset}"), e))?;
        out.truncate(len);
        while out.len() < len && !eof {
            let at = offset + out.len() as u64;
            let (chunk, e) = self
                .fd
                .read((len - out.len()) as u64, at)
                .map_err(|e| self.err(&format!("read at {at}"), e))?;
            if chunk.is_empty() {
                break;
            }
            let n = chunk.len().min(len - out.len());
            out.extend_from_slice(&chunk[..n]);
            eof = e;
        }
        Ok(out)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        let mut done = 0usize;
        while done < buf.len() {
            let at = offset + done as u64;
            let n = self
                .fd
                .write(&buf[done..], at)
                .map_err(|e| self.err(&format!("write {} bytes at {at}", buf.len() - done), e))?;
            if n == 0 {
                return Err(Error::Io(format!(
                    "write at {at} {}: wrote nothing",
                    self.path
                )));
            }
            done += n as usize;
        }
        Ok(())
    }

    fn will_need(&self, offset: u64, len: u64) {
        let _ = self.fd.advise(offset, len, Advice::WillNeed);
    }

    fn size(&self) -> Result<u64> {
        self.fd
            .stat()
            .map(|s| s.size)
            .map_err(|e| self.err("stat", e))
    }
}

impl Storage for WasiStorage {
    type File = WasiFile;

    fn open_read(&self, path: &str) -> Result<Option<WasiFile>> {
        check_path(path)?;
        match self.open(path, OpenFlags::empty(), DescriptorFlags::READ) {
            Ok(fd) => Ok(Some(WasiFile {
                fd,
                path: path.to_string(),
            })),
            Err(ErrorCode::NoEntry) => Ok(None),
            Err(e) => Err(self.err("open", path, e)),
        }
    }

    fn open_write(&self, path: &str) -> Result<WasiFile> {
        check_path(path)?;
        let fd = self
            .open(
                path,
                OpenFlags::CREATE,
                DescriptorFlags::READ | DescriptorFlags::WRITE,
            )
            .map_err(|e| self.err("open for writing", path, e))?;
        Ok(WasiFile {
            fd,
            path: path.to_string(),
        })
    }

    fn read_file(&self, path: &str) -> Result<Option<Vec<u8>>> {
        let Some(file) = self.open_read(path)? else {
            return Ok(None);
        };
        // Small files: usually one read call, no stat.
        let mut out = Vec::new();
        loop {
            let at = out.len() as u64;
            let (chunk, eof) = file
                .fd
                .read(256 * 1024, at)
                .map_err(|e| file.err(&format!("read at {at}"), e))?;
            let empty = chunk.is_empty();
            if out.is_empty() {
                out = chunk;
            } else {
                out.extend_from_slice(&chunk);
            }
            if eof || empty {
                return Ok(Some(out));
            }
        }
    }

    fn write_file_atomic(&self, path: &str, data: &[u8]) -> Result<()> {
        check_path(path)?;
        // A name of its own, so another session cleaning up leftover `<path>.tmp` files
        // (as opening a writer does) never removes this one before its rename (found by
        // the conformance suite's group snapshot under a concurrent writer).
        let tmp = format!(
            "{path}.{:016x}.tmp",
            wasip2::random::random::get_random_u64()
        );
        {
            let fd = self
                .open(
                    &tmp,
                    OpenFlags::CREATE | OpenFlags::TRUNCATE,
                    DescriptorFlags::READ | DescriptorFlags::WRITE,
                )
                .map_err(|e| self.err("create", &tmp, e))?;
            WasiFile {
                fd,
                path: tmp.clone(),
            }
            .write_at(data, 0)?;
        }
        self.root
            .rename_at(&tmp, &self.root, path)
            .map_err(|e| self.err("rename into place", path, e))
    }

    fn remove_file(&self, path: &str) -> Result<bool> {
        check_path(path)?;
        match self.root.unlink_file_at(path) {
            Ok(()) => Ok(true),
            Err(ErrorCode::NoEntry) => Ok(false),
            Err(e) => Err(self.err("remove", path, e)),
        }
    }

    fn rename(&self, from: &str, to: &str) -> Result<()> {
        check_path(from)?;
        check_path(to)?;
        self.root
            .rename_at(from, &self.root, to)
            .map_err(|e| self.err(&format!("rename to {to}:"), from, e))
    }

    fn create_dir_all(&self, path: &str) -> Result<()> {
        check_path(path)?;
        let mut prefix = String::new();
        for comp in path.split('/') {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(comp);
            match self.root.create_directory_at(&prefix) {
                Ok(()) | Err(ErrorCode::Exist) => {}
                Err(e) => return Err(self.err("create directory", &prefix, e)),
            }
        }
        Ok(())
    }

    fn remove_dir_all(&self, path: &str) -> Result<bool> {
        check_path(path)?;
        match self.open(path, OpenFlags::DIRECTORY, DescriptorFlags::READ) {
            Ok(_) => {}
            Err(ErrorCode::NoEntry) => return Ok(false),
            Err(e) => return Err(self.err("open directory", path, e)),
        }
        self.remove_tree(path)?;
        Ok(true)
    }

    fn list_dir(&self, path: &str) -> Result<Option<Vec<String>>> {
        check_path(path)?;
        let dir = match self.open(path, OpenFlags::DIRECTORY, DescriptorFlags::READ) {
            Ok(d) => d,
            Err(ErrorCode::NoEntry) => return Ok(None),
            Err(e) => return Err(self.err("open directory", path, e)),
        };
        let stream = dir
            .read_directory()
            .map_err(|e| self.err("list directory", path, e))?;
        let mut names = Vec::new();
        while let Some(entry) = stream
            .read_directory_entry()
            .map_err(|e| self.err("list directory", path, e))?
        {
            names.push(entry.name);
        }
        Ok(Some(names))
    }
}
