//! easel's job layer: what the CLI and the app both run. Typed requests and results
//! ([`explain::ExplainRequest`] -> [`explain::ExplainOutput`], [`lab::LabRequest`]), the
//! construction of every method from typed settings ([`settings`]), one job slot type for
//! every long job ([`slot::JobSlot`]), the compute worker thread ([`worker`]), report
//! writing and pictures. Nothing here knows about egui.

pub mod explain;
pub mod finetune;
pub mod fool;
pub mod lab;
pub mod pair;
pub mod picture;
pub mod report;
pub mod robustness;
pub mod settings;
pub mod slot;
pub mod transfer;
pub mod worker;

pub use slot::{JobId, JobSlot, SlotState, Ticket};
