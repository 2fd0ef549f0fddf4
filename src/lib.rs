//! `docker-credential-gar`: a Docker credential helper that hands docker short-lived
//! Google OAuth access tokens for Artifact Registry hosts.
//!
//! The binary (`src/main.rs`) only dispatches; everything lives in these modules so
//! that benchmarks and tests can reach the pieces in-process.

#![warn(missing_docs)]

pub mod cache;
pub mod docker_config;
pub mod doctor;
pub mod error;
pub mod files;
pub mod http;
pub mod log;
pub mod print_token;
pub mod process;
pub mod protocol;
pub mod proxy;
pub mod registry;
pub mod sources;
pub mod store;
pub mod token;
