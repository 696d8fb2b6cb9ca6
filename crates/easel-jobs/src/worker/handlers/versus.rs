//! The worker's side of a second model: loading it (B), comparing its predictions with the
//! current model's (A) on the open set or from a CSV, and both models' maps of one image.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use easel_core::data;
use easel_core::error::{Error, Result};
use easel_core::explain::Method;
use easel_core::imaging::PreparedImage;
use easel_core::metrics::versus::{self, VersusOptions};
use easel_core::metrics::{CostMatrix, Predictions};
use easel_core::models::Classifier;
use easel_core::progress::Progress;

use super::{PROGRESS_EVERY, Throttle, Worker, summary_of};
use crate::explain::{ExplainRequest, Provenance};
use crate::pair;
use crate::slot::{JobId, Ticket};
use crate::worker::{Event, VersusSource};

impl Worker {
    fn second_model(&self) -> Result<Arc<Classifier>> {
        self.second.as_ref().map(|(_, m)| m.clone()).ok_or_else(|| Error::invalid("open a second model first"))
    }

    pub(super) fn load_second(&mut self, job: JobId, path: PathBuf) {
        match Classifier::load(&path, &self.device()) {
            Ok(m) => {
                let summary = summary_of(&m, &path);
                self.second = Some((path, Arc::new(m)));
                self.send(Event::SecondModelLoaded { job, model: Box::new(summary) });
            }
            Err(e) => self.fail(job, format!("cannot load the second model {}: {e}", path.display())),
        }
    }

    pub(super) fn versus(&self, ticket: &Ticket, a: &Predictions, b: &VersusSource, cost: Option<&CostMatrix>, cache: Option<&Path>) {
        let job = ticket.id;
        let result = (|| -> Result<(Predictions, String)> {
            match b {
                VersusSource::Csv(path) => {
                    let p = Predictions::read_csv(path, Some(&a.classes))?;
                    Ok((p, path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()))
                }
                VersusSource::SecondModel => {
                    let model = self.second_model()?;
                    let (Some(set), Some(source)) = (&self.set, &self.set_source) else {
                        return Err(Error::invalid("open a labelled set to evaluate the second model on"));
                    };
                    if model.card.classes != set.classes {
                        return Err(Error::invalid(format!("{} has other classes than the open set: compare through a predictions CSV", model.card.name)));
                    }
                    let spec = &model.card.input;
                    // the open set was read for A: read it again at B's input if B's differs
                    let own;
                    let set = if (spec.channels, spec.height, spec.width) == (set.channels, set.height, set.width) {
                        set
                    } else {
                        own = data::load_source(source, spec, &model.card.classes)?;
                        &own
                    };
                    let throttle = Throttle::new(PROGRESS_EVERY);
                    let report = |d: usize, t: usize| self.progress(&throttle, job, d, t);
                    let progress = Progress::none().with_cancel(&ticket.cancel).with_report(&report);
                    let (p, _) = easel_core::evaluate::evaluate_cached(&model, source, set, 256, cache, progress)?;
                    Ok((p, model.card.name.clone()))
                }
            }
        })();
        let compared = result.and_then(|(b, name)| {
            if ticket.is_cancelled() {
                return Err(Error::Cancelled);
            }
            let (joined, report) = versus::compare(a, &b, cost, VersusOptions::default(), "A", &format!("B ({name})"))?;
            Ok((joined, report, name))
        });
        match compared {
            Ok((b, report, b_name)) => self.send(Event::Versus { job, b: Box::new(b), report: Box::new(report), b_name }),
            Err(e) => self.finish_err(job, e),
        }
    }

    pub(super) fn explain_pair(&self, ticket: &Ticket, image: PreparedImage, image_name: String, request: &ExplainRequest) {
        let job = ticket.id;
        let result = self.current_model().and_then(|a| {
            let b = self.second_model()?;
            let spec = &b.card.input;
            let image_b = image.prepared_for(spec);
            // the method's settings were made for A; B gets its own where its input differs
            let mut request_b = request.clone();
            if (spec.height, spec.width) != (a.card.input.height, a.card.input.width) || b.net.stage_names() != a.net.stage_names() {
                request_b.method = Method::defaults(request.method.kind(), spec.height, spec.width);
            }
            let provenance = Provenance { image: image_name, device: self.device_words() };
            let progress = Progress::none().with_cancel(&ticket.cancel);
            pair::run_pair(&a, &b, &image, &image_b, &provenance, request, &request_b, progress)
        });
        match result {
            Ok(output) => self.send(Event::ExplainedPair { job, output: Box::new(output) }),
            Err(e) => self.finish_err(job, e),
        }
    }
}
