//! Durable jobs: the step journal, retries, compensation; one file per workflow.

pub mod ports;
