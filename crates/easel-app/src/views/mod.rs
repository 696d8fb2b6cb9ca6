//! The views, one pair of files each where they are large: `<view>.rs` owns the state, the
//! job slots and the event handling; `<view>_ui.rs` draws from read-only state and pushes
//! commands.

pub mod adversarial;
pub mod chrome;
pub mod compare;
pub mod dataset;
pub mod dataset_ui;
pub mod explain;
pub mod explain_ui;
pub mod fool;
pub mod lab;
pub mod lab_ui;
pub mod pair;
pub mod pretrain;
pub mod pretrain_ui;
pub mod robust;
pub mod versus;
pub mod versus_ui;
