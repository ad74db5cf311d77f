//! The guest test tool `bdsnap-testio`: reproducible writes with a log of what was written
//! ([`write`]), exact verification of the CBT map against that log ([`verify`]), and an ioctl
//! fuzzer for the control device ([`fuzz`]). Pure parts (plans, block math) are unit-tested on
//! the host; the parts that need a kernel are thin.

pub mod blk;
pub mod caps;
pub mod extent;
pub mod fuzz;
pub mod rng;
pub mod verify;
pub mod write;
