//! The wire protocol: line framing and JSON-RPC 2.0 messages.
//!
//! tickd speaks one JSON-RPC request (or batch of requests) per line so
//! that a person with `nc` and any JSON-lines client can talk to it.
//! [`codec`] cuts a byte stream into lines under a length limit; [`rpc`]
//! turns a result or error into a response line, and [`decode`] a line into
//! a request; [`id`] keeps a request's id as written, [`params`] reads
//! named parameters, and [`strict`] is the decoding that refuses a key
//! given twice. [`call`] turns a method name and its params into the typed
//! request the handlers answer; [`error`] maps the daemon's errors to
//! JSON-RPC codes.

pub mod call;
pub mod codec;
pub mod decode;
pub mod error;
pub mod id;
pub mod params;
pub mod rpc;
pub mod strict;

pub use rpc::{ErrorCode, RpcError};
