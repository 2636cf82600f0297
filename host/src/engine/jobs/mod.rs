//! The machinery every workflow shares: what a workflow is ([`workflow`]), the journal and
//! the step context ([`journal`]), compensation ([`undo`]), progress ([`progress`],
//! [`progress_hub`]) and the test hooks ([`hooks`]).

pub mod hooks;
pub mod job_endpoints;
pub mod journal;
pub mod progress;
pub mod progress_hub;
pub mod slots;
pub mod undo;
pub mod workflow;
