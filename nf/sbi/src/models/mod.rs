//! 3GPP data types (TS 29.571, TS 29.510, TS 29.518) shared by the NetGPT NFs, with the
//! specification's JSON names and utoipa schemas.

pub mod common;
pub mod namf;
pub mod nnrf;
