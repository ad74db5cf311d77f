//! bdsnap-host: what the harness needs from the machine it runs on — commands run with a record,
//! host packages present, the cache directory, content hashes for cache keys.

pub mod cache;
pub mod cmd;
pub mod packages;

pub use cache::{cache_dir, CacheLock, ContentKey};
pub use cmd::{CmdError, CmdLog, Output};
pub use packages::{ensure_host_tools, HostTool, PackageError};
