//! The wire protocol: line framing and JSON-RPC 2.0 messages.
//!
//! tickd speaks one JSON-RPC request per line so that a person with `nc`
//! and any JSON-lines client can talk to it. [`codec`] cuts a byte stream
//! into lines under a length limit; [`rpc`] turns a line into a request and
//! a result or error into a response line.

pub mod codec;
pub mod rpc;

pub use rpc::{ErrorCode, RpcError};
