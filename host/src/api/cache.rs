//! Answers kept as bytes for the busiest reads: the VM list until the catalog is written
//! again, and finished jobs (which never change). The server owns its data directory, so
//! every catalog write goes through this process and bumps the catalog's generation.

use std::collections::HashMap;
use std::sync::RwLock;

use axum::body::Bytes;
use axum::http::header;
use axum::response::{IntoResponse, Response};

/// Finished jobs kept at most; the map is emptied when full (a cheap, bounded cache).
const MAX_JOBS: usize = 4096;

/// The cached answers.
#[derive(Default)]
pub struct ResponseCache {
    vms: RwLock<Option<(u64, Bytes)>>,
    finished_jobs: RwLock<HashMap<String, Bytes>>,
}

impl ResponseCache {
    /// The VM list as of catalog generation `generation`, if cached.
    pub fn vms(&self, generation: u64) -> Option<Bytes> {
        match &*self.vms.read().unwrap_or_else(|p| p.into_inner()) {
            Some((at, bytes)) if *at == generation => Some(bytes.clone()),
            _ => None,
        }
    }

    /// Keeps the VM list computed after reading `generation`.
    pub fn keep_vms(&self, generation: u64, bytes: Bytes) {
        *self.vms.write().unwrap_or_else(|p| p.into_inner()) = Some((generation, bytes));
    }

    /// A finished job's answer, if cached.
    pub fn job(&self, id: &str) -> Option<Bytes> {
        self.finished_jobs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    /// Keeps a finished job's answer.
    pub fn keep_job(&self, id: &str, bytes: Bytes) {
        let mut jobs = self
            .finished_jobs
            .write()
            .unwrap_or_else(|p| p.into_inner());
        if jobs.len() >= MAX_JOBS {
            jobs.clear();
        }
        jobs.insert(id.to_string(), bytes);
    }
}

/// A JSON answer from bytes already serialized.
pub fn json_bytes(bytes: Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}
