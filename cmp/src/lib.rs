//! CmP controller of the NetGPT testbed (the computing plane): node and device inventory,
//! the HEFT-class scheduler ([`sched`]) and the logical AI workflow engine.

pub mod sched;
