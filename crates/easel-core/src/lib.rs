//! easel: see why an image classifier is right or wrong.
//!
//! This library holds everything that computes: models and weights, image decoding,
//! predictions, explanations, metrics and training. It never imports egui; the desktop app
//! (feature `gui`) and the command line both call it.

pub mod card;
pub mod data;
pub mod device;
pub mod error;
pub mod evaluate;
pub mod explain;
pub mod fsutil;
pub mod imaging;
pub mod kernels;
pub mod metrics;
pub mod models;
pub mod npy;
pub mod parallel;
pub mod predict;
pub mod progress;
pub mod render;
pub mod rng;
pub mod sampling;
pub mod train;
pub mod transfer;
pub mod weights;

pub use error::{Error, Result};
