//! Persistent state under `daemon.state_dir`: the records of the journal
//! that lets each job's last scheduled time, the run history and every
//! accepted run survive a restart. (The journal file and its store follow.)

mod record;

pub use record::{Record, RunRecord};
