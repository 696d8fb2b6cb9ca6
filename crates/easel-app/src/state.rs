//! The app's persisted state (saved through eframe's storage): paths, choices and settings,
//! one part per view. Models, tensors, textures, channels and job slots live in the views.

use std::collections::BTreeMap;
use std::path::PathBuf;

use easel_core::device::DeviceChoice;
use easel_core::explain::{Method, MethodKind};
use easel_core::render::RenderOptions;
use easel_jobs::settings::AttackSettings;
use serde::{Deserialize, Serialize};

/// The views, as tabs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Tab {
    #[default]
    Explain,
    Compare,
    Adversarial,
    Dataset,
    #[value(alias = "lab")]
    Sampling,
    #[value(alias = "transfer")]
    Pretraining,
}

impl Tab {
    pub const ALL: [Tab; 6] = [Tab::Explain, Tab::Compare, Tab::Adversarial, Tab::Dataset, Tab::Sampling, Tab::Pretraining];

    pub fn title(self) -> &'static str {
        match self {
            Tab::Explain => "Explain",
            Tab::Compare => "Compare",
            Tab::Adversarial => "Adversarial",
            Tab::Dataset => "Dataset",
            Tab::Sampling => "Sampling lab",
            Tab::Pretraining => "Pre-training",
        }
    }
}

/// The two bundled demos.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Demo {
    /// The small CNN and the Fashion-MNIST test set.
    #[value(alias = "fashion-mnist")]
    Fashion,
    /// EfficientNet-Lite0 and the bundled photos.
    #[value(alias = "efficientnet")]
    Photos,
}

/// What was open, for the next start.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SessionState {
    pub model_path: Option<PathBuf>,
    pub image_paths: Vec<PathBuf>,
    pub selected: usize,
    pub device: DeviceChoice,
    pub recent_models: Vec<PathBuf>,
    pub recent_images: Vec<PathBuf>,
}

impl SessionState {
    /// Remember a path at the front of a recent list (at most 8).
    pub fn remember(list: &mut Vec<PathBuf>, p: PathBuf) {
        list.retain(|q| q != &p);
        list.insert(0, p);
        list.truncate(8);
    }
}

/// The Explain view's settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct ExplainSettings {
    pub method: MethodKind,
    /// Each method's settings as last used (for the model they were made for).
    pub methods: BTreeMap<MethodKind, Method>,
    pub render: RenderOptions,
    /// Let the method choose sign and colormap (diverging for signed maps).
    pub auto_colours: bool,
    /// Compute the quick sanity score beside gradient maps.
    pub trust: bool,
}

impl Default for ExplainSettings {
    fn default() -> Self {
        ExplainSettings { method: MethodKind::Gradcam, methods: BTreeMap::new(), render: RenderOptions::default(), auto_colours: true, trust: true }
    }
}

/// The Compare view's settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct CompareSettings {
    pub methods: Vec<MethodKind>,
    /// Images in the across-images row.
    pub images: usize,
    /// One colour scale per method across the cells.
    pub shared_scale: bool,
}

impl Default for CompareSettings {
    fn default() -> Self {
        CompareSettings { methods: vec![MethodKind::Saliency, MethodKind::Ig, MethodKind::Gradcam], images: 6, shared_scale: true }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum ConfusionView {
    #[default]
    Counts,
    Recall,
    Precision,
}

/// The Dataset view's settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct DatasetSettings {
    /// The cost matrix of the (merged) classes: rows true, columns predicted.
    pub cost: Option<Vec<Vec<f64>>>,
    /// Groups of merged classes (indices of the model's classes).
    pub merges: Vec<Vec<usize>>,
    /// Decide by minimum expected cost instead of the most probable class.
    pub decide_by_cost: bool,
    pub confusion_view: ConfusionView,
    pub log_scale: bool,
    pub gallery_by_doubt: bool,
    pub threshold_class: usize,
    pub threshold: f64,
    /// The training split shown beside the test split in the distribution chart.
    pub train_split: Option<PathBuf>,
}

impl Default for DatasetSettings {
    fn default() -> Self {
        DatasetSettings {
            cost: None,
            merges: Vec::new(),
            decide_by_cost: false,
            confusion_view: ConfusionView::Counts,
            log_scale: false,
            gallery_by_doubt: false,
            threshold_class: 0,
            threshold: 0.5,
            train_split: None,
        }
    }
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
    /// Also train with the rare classes merged into one (merged at training vs at inference).
    pub merge_rare: bool,
    /// Decide by minimum expected cost in the comparison (with the Dataset view's costs).
    pub by_cost: bool,
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
            merge_rare: false,
            by_cost: false,
        }
    }
}

/// The Adversarial view's panes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
pub enum AdvPane {
    /// FGSM / PGD on the image on screen.
    #[default]
    Attack,
    /// Fooling images.
    Fool,
    /// Accuracy against epsilon over the open set.
    Robust,
}

/// The Adversarial view's settings.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AdversarialSettings {
    pub pane: AdvPane,
    pub attack: AttackSettings,
    pub fool: crate::views::fool::FoolSettings,
    pub robust: crate::views::robust::RobustSettings,
}

/// Everything that comes back on restart.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct State {
    pub tab: Tab,
    pub session: SessionState,
    pub explain: ExplainSettings,
    pub compare: CompareSettings,
    pub adversarial: AdversarialSettings,
    pub dataset: DatasetSettings,
    pub lab: LabSettings,
    pub pretrain: crate::views::pretrain::PretrainSettings,
    pub show_frame_times: bool,
}
