//! One client socket, TCP or Unix, behind a single type: the daemon's own
//! [`tickd::server::stream::Stream`], so the two ends share one
//! definition of how reads, writes and mio registration are forwarded.

pub use tickd::server::stream::Stream;
