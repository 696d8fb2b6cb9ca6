//! What every view looks at: the device, the open model, the open images, and the image being
//! looked at with its predictions. Loading and predicting are jobs with their own slots, so a
//! late answer for an image the user has left is dropped.

use std::path::PathBuf;

use easel_core::device::DeviceInfo;
use easel_core::imaging::PreparedImage;
use easel_core::predict::ClassScore;
use easel_jobs::JobSlot;
use easel_jobs::worker::{Event, ImageList, ModelSummary, Request, WorkerHandle};
use eframe::egui;

use crate::state::SessionState;
use crate::textures::{Shown, show};

/// The image being looked at, ready for the model: what every view shows and explains.
pub struct Current {
    /// Changes every time another image (or model) becomes current: results computed for an
    /// older generation are never drawn beside this one.
    pub generation: u64,
    pub index: usize,
    pub name: String,
    pub image: PreparedImage,
    pub picture: Shown,
    pub top: Vec<ClassScore>,
    /// The true class's name, where the open set is labelled.
    pub label: Option<String>,
    /// How long the model's forward pass took for this image (for time estimates).
    pub forward_secs: f64,
}

impl Current {
    pub fn predicted(&self) -> Option<usize> {
        self.top.first().map(|t| t.class_index)
    }
}

/// What changed, for the views to follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Another model is open: results of the old one are void.
    Model,
    /// Another image set is open.
    Images,
    /// The selection moved: jobs on the old image stop now.
    Leaving,
    /// The selected image is ready (`current` holds it).
    Ready,
    /// A second model (B) is open beside the first, to compare them.
    SecondModel,
}

#[derive(Default)]
pub struct Session {
    pub device: Option<DeviceInfo>,
    pub model: Option<ModelSummary>,
    pub model_job: JobSlot<()>,
    /// Model B, compared with `model` (A) in the Dataset and Compare views.
    pub second: Option<ModelSummary>,
    pub second_job: JobSlot<()>,
    pub images: ImageList,
    pub images_job: JobSlot<()>,
    pub current: Option<Current>,
    pub predict_job: JobSlot<()>,
    /// The index being loaded or shown.
    pub selected: usize,
    generation: u64,
    /// Scroll the image list to the selection (after keys move it).
    pub scroll_to_selected: bool,
    /// Where the open images came from, as restored from the last run (keeps its selection).
    restored_source: Option<String>,
    /// Select the first image whose name contains this, once (`easel gui --image`).
    pub select_name: Option<String>,
}

impl Session {
    pub fn new(state: &SessionState, select_name: Option<String>) -> Session {
        Session { selected: state.selected, restored_source: state.image_paths.first().map(|p| p.display().to_string()), select_name, ..Default::default() }
    }

    pub fn load_model(&mut self, worker: &WorkerHandle, path: PathBuf) -> Result<(), String> {
        let ticket = self.model_job.restart();
        worker.send(Request::LoadModel { ticket, path })
    }

    pub fn load_second_model(&mut self, worker: &WorkerHandle, path: PathBuf) -> Result<(), String> {
        let ticket = self.second_job.restart();
        worker.send(Request::LoadSecondModel { ticket, path })
    }

    pub fn load_images(&mut self, worker: &WorkerHandle, paths: Vec<PathBuf>) -> Result<(), String> {
        let ticket = self.images_job.restart();
        worker.send(Request::LoadImages { ticket, paths })
    }

    /// Move to image `i`: the current image is cleared at once (its views stop) and the new
    /// one is prepared and predicted.
    pub fn select(&mut self, worker: &WorkerHandle, i: usize) -> Result<bool, String> {
        let Some(entry) = self.images.entries.get(i) else { return Ok(false) };
        self.selected = i;
        self.current = None;
        self.generation += 1;
        if self.model.is_none() {
            return Ok(true);
        }
        let ticket = self.predict_job.restart();
        worker.send(Request::Predict { ticket, image: entry.source.clone() })?;
        Ok(true)
    }

    /// The name of image `i`.
    pub fn name_of(&self, i: usize) -> String {
        self.images.entries.get(i).map(|e| e.name.clone()).unwrap_or_default()
    }

    /// Take the session's events; returns what changed, or gives the event back.
    pub fn on_event(&mut self, ctx: &egui::Context, ev: Event, state: &mut SessionState) -> Result<Option<Change>, Event> {
        match ev {
            Event::Device(info) => {
                self.device = Some(*info);
                Ok(None)
            }
            Event::ModelLoaded { job, model } => {
                if !self.model_job.finish(job, ()) {
                    return Ok(None);
                }
                state.model_path = Some(model.path.clone());
                SessionState::remember(&mut state.recent_models, model.path.clone());
                self.model = Some(*model);
                self.current = None;
                self.generation += 1;
                Ok(Some(Change::Model))
            }
            Event::SecondModelLoaded { job, model } => {
                if !self.second_job.finish(job, ()) {
                    return Ok(None);
                }
                self.second = Some(*model);
                Ok(Some(Change::SecondModel))
            }
            Event::ImagesLoaded { job, list } => {
                if !self.images_job.finish(job, ()) {
                    return Ok(None);
                }
                // the set open when the app last closed keeps its selection; another starts at 0
                let restored = self.restored_source.take().is_some_and(|s| s == list.source);
                let by_name = self.select_name.take().and_then(|n| list.entries.iter().position(|e| e.name.contains(n.as_str())));
                self.selected = match by_name {
                    Some(i) => i,
                    None if restored => self.selected.min(list.len().saturating_sub(1)),
                    None => 0,
                };
                if let Some(easel_jobs::worker::ImageEntry { source: easel_jobs::worker::ImageRef::File(p), .. }) = list.entries.first()
                    && let Some(dir) = p.parent()
                {
                    SessionState::remember(&mut state.recent_images, dir.to_path_buf());
                }
                state.image_paths = vec![PathBuf::from(&list.source)];
                self.images = *list;
                self.current = None;
                self.generation += 1;
                Ok(Some(Change::Images))
            }
            Event::Predicted { job, prediction } => {
                if !self.predict_job.finish(job, ()) {
                    return Ok(None);
                }
                let easel_jobs::worker::Prediction { image, picture, top, forward_secs } = *prediction;
                let index = self.selected;
                let mut slot = self.current.take().map(|c| c.picture);
                show(ctx, "image", &picture, &mut slot);
                let Some(picture) = slot else { return Ok(None) };
                self.current = Some(Current {
                    generation: self.generation,
                    index,
                    name: self.name_of(index),
                    image,
                    picture,
                    top,
                    label: self.images.label_name(index).map(String::from),
                    forward_secs,
                });
                state.selected = index;
                Ok(Some(Change::Ready))
            }
            Event::Failed { job: Some(job), message }
                if self.model_job.owns(job) || self.images_job.owns(job) || self.predict_job.owns(job) || self.second_job.owns(job) =>
            {
                self.model_job.fail(job, message.clone());
                self.second_job.fail(job, message.clone());
                self.images_job.fail(job, message.clone());
                self.predict_job.fail(job, message.clone());
                Err(Event::Failed { job: None, message })
            }
            other => Err(other),
        }
    }

    /// The generation of the image on screen (0: none).
    pub fn generation(&self) -> u64 {
        self.current.as_ref().map(|c| c.generation).unwrap_or(0)
    }

    /// The true-class verdict of the current image: (text, correct) where the set is labelled
    /// with a class this model knows.
    pub fn verdict(&self) -> Option<(String, bool)> {
        let cur = self.current.as_ref()?;
        let label = cur.label.as_ref()?;
        let model = self.model.as_ref()?;
        if !model.classes.iter().any(|c| c == label) {
            return Some((format!("labelled: {label} (not one of this model's classes)"), false));
        }
        let predicted = cur.predicted().map(|p| model.class_name(p));
        let correct = predicted.as_deref() == Some(label.as_str());
        Some((format!("true class: {label}{}", if correct { " (correct)" } else { " (misclassified)" }), correct))
    }
}
