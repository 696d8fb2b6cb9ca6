//! The app's persisted state (saved through eframe's storage): paths, choices and settings.
//! Models, tensors, textures and channels live elsewhere, in the app's runtime.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::device::DeviceChoice;
use crate::explain::Method;
use crate::render::RenderOptions;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Tab {
    #[default]
    Explain,
    Compare,
    Adversarial,
    Dataset,
    Sampling,
}

/// The sampling lab's settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct LabSettings {
    pub ratio: f64,
    pub rare: Vec<usize>,
    pub per_class: usize,
    pub strategies: Vec<String>,
    pub epochs: usize,
    pub seed: u64,
    pub prior_correction: bool,
    #[serde(skip)]
    pub train: PathBuf,
}

impl Default for LabSettings {
    fn default() -> Self {
        LabSettings {
            ratio: 100.0,
            rare: vec![4, 6],
            per_class: 2000,
            strategies: ["uniform", "ignore", "undersample", "oversample", "hnm", "weighted"].map(String::from).to_vec(),
            epochs: 3,
            seed: 0,
            prior_correction: false,
            train: PathBuf::new(),
        }
    }
}

/// The two bundled demos.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Demo {
    /// The small CNN and the Fashion-MNIST test set.
    Fashion,
    /// EfficientNet-Lite0 and the bundled photos.
    Photos,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct State {
    pub model_path: Option<PathBuf>,
    pub image_paths: Vec<PathBuf>,
    pub selected: usize,
    pub tab: Tab,
    /// The method shown in the Explain view.
    pub method: String,
    /// Each method's settings as last used.
    pub methods: BTreeMap<String, Method>,
    pub render: RenderOptions,
    /// Let the method choose sign and colormap (diverging for signed maps).
    pub auto_colours: bool,
    pub device: DeviceChoice,
    pub recent_models: Vec<PathBuf>,
    pub recent_images: Vec<PathBuf>,
    /// Compare view: which methods, and how many images for the across-images row.
    pub compare_methods: Vec<String>,
    pub compare_images: usize,
    pub compare_shared_scale: bool,
    /// Adversarial view.
    pub attack_pgd: bool,
    pub attack_epsilon_levels: f32,
    pub attack_steps: usize,
    pub attack_target: Option<usize>,
    pub show_frame_times: bool,
    /// Compute quick sanity and deletion scores beside gradient maps.
    pub trust: bool,
    /// Dataset view: the cost matrix (rows true, columns predicted), merged class groups,
    /// how the confusion matrix is shown, and the one-vs-rest threshold.
    pub cost: Option<Vec<Vec<f64>>>,
    pub merges: Vec<Vec<usize>>,
    pub confusion_view: ConfusionView,
    pub log_scale: bool,
    pub gallery_by_doubt: bool,
    pub threshold_class: usize,
    pub threshold: f64,
    /// The training split shown beside the test split in the distribution chart.
    pub train_split: Option<PathBuf>,
    pub lab: LabSettings,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum ConfusionView {
    #[default]
    Counts,
    Recall,
    Precision,
}

impl Default for State {
    fn default() -> Self {
        State {
            model_path: None,
            image_paths: Vec::new(),
            selected: 0,
            tab: Tab::Explain,
            method: "gradcam".into(),
            methods: BTreeMap::new(),
            render: RenderOptions::default(),
            auto_colours: true,
            device: DeviceChoice::Auto,
            recent_models: Vec::new(),
            recent_images: Vec::new(),
            compare_methods: vec!["saliency".into(), "ig".into(), "gradcam".into()],
            compare_images: 6,
            compare_shared_scale: true,
            attack_pgd: false,
            attack_epsilon_levels: 2.0,
            attack_steps: 10,
            attack_target: None,
            show_frame_times: false,
            trust: true,
            cost: None,
            merges: Vec::new(),
            confusion_view: ConfusionView::Counts,
            log_scale: false,
            gallery_by_doubt: false,
            threshold_class: 0,
            threshold: 0.5,
            train_split: None,
            lab: LabSettings::default(),
        }
    }
}

impl State {
    /// Remember a path at the front of a recent list (at most 8).
    pub fn remember(list: &mut Vec<PathBuf>, p: PathBuf) {
        list.retain(|q| q != &p);
        list.insert(0, p);
        list.truncate(8);
    }
}
