//! What a panel asks for. Panels draw from read-only state and push commands; the app shell
//! runs them after the frame and hands each view its own.

use std::path::PathBuf;

use easel_core::device::DeviceChoice;
use easel_core::explain::MethodKind;
use easel_core::metrics::versus::Side;

use crate::state::{Demo, Tab};

/// A file dialog to open (on its own thread; the answer comes back as a command).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pick {
    Model,
    Images,
    ImageFolder,
    SavePng,
    Report,
    Predictions,
    LoadCost,
    SaveCost,
    TrainSplit,
    Runs,
    /// A second model (B) to compare with the open one.
    SecondModel,
    /// Model B's predictions as a CSV.
    VersusPredictions,
    /// A pre-training lab folder (documented runs) to open.
    PretrainLab,
    /// A class-per-folder set to fine-tune the open model on.
    FinetuneFolder,
}

#[derive(Clone, Debug)]
pub enum Command {
    LoadDemo(Demo),
    OpenModel(PathBuf),
    /// Open a second model (B) beside the open one (A), to compare them.
    OpenSecondModel(PathBuf),
    OpenImages(Vec<PathBuf>),
    Pick(Pick),
    SelectImage(usize),
    SetTab(Tab),
    SetDevice(DeviceChoice),
    DismissError(usize),
    /// Save the map on screen as a PNG here (a new name if the file exists).
    SavePngTo(PathBuf),
    /// Write a report folder here (a new name if the folder exists).
    ExportReportTo(PathBuf),
    Explain(ExplainCommand),
    Compare(CompareCommand),
    Attack(AttackCommand),
    Dataset(DatasetCommand),
    Lab(LabCommand),
    Pretrain(PretrainCommand),
}

#[derive(Clone, Debug)]
pub enum ExplainCommand {
    /// Explain this class (`None`: the predicted one).
    SelectClass(Option<usize>),
    SetMethod(MethodKind),
    /// Settings or target changed, or the user pressed Run: start the map now.
    Run,
    /// Only the colours changed: re-render the maps on screen.
    Rerender,
    Cancel,
    /// The full randomisation cascade and deletion / insertion curves.
    RunTrust,
    CancelTrust,
}

#[derive(Clone, Debug)]
pub enum CompareCommand {
    /// Methods x classes for the current image.
    MethodsByClasses,
    /// The current method across the next images.
    AcrossImages,
    Rerender,
    Cancel,
    /// Model A's and model B's maps of the current image side by side, one scale.
    SideBySide,
    /// The same for image `index` of the open set, explaining `target` (`None`: A's
    /// prediction), once it is on screen.
    SideBySideOf {
        index: usize,
        target: Option<usize>,
    },
}

#[derive(Clone, Debug)]
pub enum AttackCommand {
    /// FGSM / PGD on the image on screen.
    Run,
    Cancel,
    /// A fooling image for the chosen class.
    Fool,
    /// A fooling image for every class (the first 16) and their gallery.
    FoolAll,
    CancelFool,
    /// The accuracy-against-epsilon curve over the open labelled set.
    Robust,
    CancelRobust,
    /// Show image `i` of the open set in the Explain view.
    OpenImage(usize),
}

#[derive(Clone, Debug)]
pub enum DatasetCommand {
    Evaluate,
    Cancel,
    /// Recompute metrics after a change of merges, costs or decisions.
    Refresh,
    /// Open the gallery of one confusion-matrix cell (true, predicted) of the merged classes.
    OpenCell(usize, usize),
    OpenIssues,
    GalleryPage(usize),
    /// Show a sample in the Compare view (its predicted-class map next to its true-class map).
    OpenSample(usize),
    /// Set one cell of the (merged) cost matrix.
    SetCostCell {
        row: usize,
        col: usize,
        value: f64,
    },
    /// Missing `class` (of the merged classes) costs `value`, every other mistake 1.
    MissingClassCost {
        class: usize,
        value: f64,
    },
    /// Every mistake costs 1.
    ResetCost,
    LoadPredictions(PathBuf),
    LoadCost(PathBuf),
    SaveCost(PathBuf),
    LoadTrainSplit(PathBuf),
    /// Compare with model B's predictions in this CSV.
    VersusPredictions(PathBuf),
    /// Compare with the second model over the open set.
    VersusSecondModel,
    ClearVersus,
    VersusGalleryPage(Side, usize),
    /// Open sample `i` (a tile of a versus gallery) with both models' maps side by side.
    OpenVersusSample(usize),
}

#[derive(Clone, Debug)]
pub enum LabCommand {
    Train,
    Cancel,
    OpenRuns(PathBuf),
    /// Choose (or leave out) run `i` for the comparison.
    Choose(usize, bool),
    /// Recompute the comparison of the chosen runs.
    Refresh,
}

#[derive(Clone, Debug)]
pub enum PretrainCommand {
    Train,
    Cancel,
    /// Reopen a lab written by `easel transfer` or the view.
    Open(PathBuf),
    /// Open one run's model (and the Fashion-MNIST test set) in the Dataset view.
    OpenModel(easel_core::transfer::Regime, usize),
    /// Fine-tune the open model on this class-per-folder tree.
    Finetune(PathBuf),
}
