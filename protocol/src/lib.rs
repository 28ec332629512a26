//! The wire format and the pure ingestion rules shared by the collector and the profile store.
//!
//! Nothing here knows about Workers or browsers: a request body goes in as bytes
//! ([`decode::decode`]), each event is judged on its own ([`validate::check_batch`]),
//! and what comes out is plain data ([`event::Event`]) that the edge routes to a
//! profile. Keeping it pure lets `cargo test` cover every rule
//! natively and fast.

pub mod api;
pub mod audience;
pub mod auth;
pub mod catalog;
pub mod computed;
pub mod decode;
pub mod destination;
pub mod enrich;
pub mod event;
pub mod export;
pub mod hash;
pub mod identity;
pub mod import;
pub mod report;
pub mod retention;
pub mod routing;
pub mod search;
pub mod source;
pub mod time;
pub mod timeline;
pub mod validate;
pub mod webhook;
