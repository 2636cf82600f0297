//! [`Storage`] over `std::fs`, used natively (unit tests, tools).

use std::fs::{self, File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::storage::{Storage, StorageFile, check_path};

/// Native storage rooted at a host directory. Exists so the block store can be tested
/// (and used by native tools) without a Wasm runtime.
#[derive(Debug, Clone)]
pub struct StdStorage {
    root: PathBuf,
}

impl StdStorage {
    /// Uses `root` (which should exist) as the storage root.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        StdStorage { root: root.into() }
    }

    /// The host directory this storage is rooted at.
    pub fn root(&self) -> &std::path::Path {
        &self.root
    }

    fn resolve(&self, path: &str) -> Result<PathBuf> {
        check_path(path)?;
        Ok(self.root.join(path))
    }
}

fn io_err(what: &str, path: &str, e: std::io::Error) -> Error {
    Error::Io(format!("{what} {path}: {e}"))
}

/// An open native file plus its storage path (for error messages).
#[derive(Debug)]
pub struct StdFile {
    file: File,
    path: String,
}

impl StorageFile for StdFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            match self.file.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(io_err(
                        &format!("read at {}", offset + done as u64),
                        &self.path,
                        e,
                    ));
                }
            }
        }
        Ok(done)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        self.file.write_all_at(buf, offset).map_err(|e| {
            io_err(
                &format!("write {} bytes at {offset}", buf.len()),
                &self.path,
                e,
            )
        })
    }

    fn size(&self) -> Result<u64> {
        self.file
            .metadata()
            .map(|m| m.len())
            .map_err(|e| io_err("stat", &self.path, e))
    }
}

impl Storage for StdStorage {
    type File = StdFile;

    fn open_read(&self, path: &str) -> Result<Option<StdFile>> {
        match File::open(self.resolve(path)?) {
            Ok(file) => Ok(Some(StdFile {
                file,
                path: path.to_string(),
            })),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("open", path, e)),
        }
    }

    fn open_write(&self, path: &str) -> Result<StdFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(self.resolve(path)?)
            .map_err(|e| io_err("open for writing", path, e))?;
        Ok(StdFile {
            file,
            path: path.to_string(),
        })
    }

    fn read_file(&self, path: &str) -> Result<Option<Vec<u8>>> {
        match fs::read(self.resolve(path)?) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("read", path, e)),
        }
    }

    fn write_file_atomic(&self, path: &str, data: &[u8]) -> Result<()> {
        let target = self.resolve(path)?;
        let tmp = self.resolve(&format!("{path}.tmp"))?;
        fs::write(&tmp, data).map_err(|e| io_err("write", &format!("{path}.tmp"), e))?;
        fs::rename(&tmp, &target).map_err(|e| io_err("rename into place", path, e))
    }

    fn remove_file(&self, path: &str) -> Result<bool> {
        match fs::remove_file(self.resolve(path)?) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err("remove", path, e)),
        }
    }

    fn rename(&self, from: &str, to: &str) -> Result<()> {
        fs::rename(self.resolve(from)?, self.resolve(to)?)
            .map_err(|e| io_err(&format!("rename to {to}:"), from, e))
    }

    fn create_dir_all(&self, path: &str) -> Result<()> {
        fs::create_dir_all(self.resolve(path)?).map_err(|e| io_err("create directory", path, e))
    }

    fn remove_dir_all(&self, path: &str) -> Result<bool> {
        match fs::remove_dir_all(self.resolve(path)?) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err("remove directory", path, e)),
        }
    }

    fn list_dir(&self, path: &str) -> Result<Option<Vec<String>>> {
        let rd = match fs::read_dir(self.resolve(path)?) {
            Ok(rd) => rd,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("list directory", path, e)),
        };
        let mut names = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| io_err("list directory", path, e))?;
            if let Ok(name) = entry.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(Some(names))
    }
}
