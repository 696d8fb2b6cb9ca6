//! Native file dialogs block, so each runs on its own thread and its answer comes back as a
//! command on the next frame.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender};

use crate::command::{Command, DatasetCommand, LabCommand, Pick, PretrainCommand};

pub struct Dialogs {
    tx: Sender<Option<Command>>,
    rx: Receiver<Option<Command>>,
    pub open: bool,
}

impl Default for Dialogs {
    fn default() -> Self {
        let (tx, rx) = std::sync::mpsc::channel();
        Dialogs { tx, rx, open: false }
    }
}

impl Dialogs {
    /// Open the dialog for `pick`, starting in `dir`; `Err` when no thread could be started.
    pub fn open(&mut self, pick: Pick, dir: Option<&Path>) -> Result<(), String> {
        if self.open {
            return Ok(());
        }
        self.open = true;
        let tx = self.tx.clone();
        let dir = dir.map(Path::to_path_buf);
        let spawned = std::thread::Builder::new().name("easel-dialog".into()).spawn(move || {
            let _ = tx.send(ask(pick, dir));
        });
        if spawned.is_err() {
            self.open = false;
            return Err("cannot open a file dialog".into());
        }
        Ok(())
    }

    /// The answers that came back (never blocks).
    pub fn drain(&mut self) -> Vec<Command> {
        let mut out = Vec::new();
        while let Ok(answer) = self.rx.try_recv() {
            self.open = false;
            out.extend(answer);
        }
        out
    }
}

fn ask(pick: Pick, dir: Option<PathBuf>) -> Option<Command> {
    let mut d = rfd::FileDialog::new();
    if let Some(dir) = dir {
        d = d.set_directory(dir);
    }
    Some(match pick {
        Pick::Model => Command::OpenModel(d.add_filter("model card or weights", &["json", "safetensors", "pth", "pt"]).pick_file()?),
        Pick::Images => Command::OpenImages(d.add_filter("images", &easel_core::imaging::IMAGE_EXTENSIONS).pick_files()?),
        Pick::ImageFolder => Command::OpenImages(vec![d.pick_folder()?]),
        Pick::SavePng => Command::SavePngTo(d.add_filter("PNG", &["png"]).set_file_name("easel-view.png").save_file()?),
        Pick::Report => Command::ExportReportTo(d.set_file_name("easel-report").save_file()?),
        Pick::Predictions => Command::Dataset(DatasetCommand::LoadPredictions(d.add_filter("predictions CSV", &["csv"]).pick_file()?)),
        Pick::LoadCost => Command::Dataset(DatasetCommand::LoadCost(d.add_filter("cost matrix CSV", &["csv"]).pick_file()?)),
        Pick::SaveCost => Command::Dataset(DatasetCommand::SaveCost(d.add_filter("cost matrix CSV", &["csv"]).set_file_name("costs.csv").save_file()?)),
        Pick::TrainSplit => Command::Dataset(DatasetCommand::LoadTrainSplit(d.pick_folder()?)),
        Pick::Runs => Command::Lab(LabCommand::OpenRuns(d.pick_folder()?)),
        Pick::PretrainLab => Command::Pretrain(PretrainCommand::Open(d.pick_folder()?)),
        Pick::FinetuneFolder => Command::Pretrain(PretrainCommand::Finetune(d.pick_folder()?)),
        Pick::SecondModel => Command::OpenSecondModel(d.add_filter("model card or weights", &["json", "safetensors", "pth", "pt"]).pick_file()?),
        Pick::VersusPredictions => Command::Dataset(DatasetCommand::VersusPredictions(d.add_filter("predictions CSV", &["csv"]).pick_file()?)),
    })
}
