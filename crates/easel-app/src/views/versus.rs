//! The versus panel's state, part of the Dataset view: model B's predictions (the second
//! model over the open set, or a CSV) joined to A's by path, the comparison
//! ([`easel_core::metrics::versus`], computed on the worker), and the galleries of the
//! samples only one model gets right.

use easel_core::metrics::versus::{self, Side, VersusReport};
use easel_core::metrics::{CostMatrix, Predictions};
use easel_jobs::JobSlot;
use easel_jobs::worker::{Event, Request, VersusSource};

use super::dataset::{Gallery, request_thumbnails};
use crate::ctx::Ctx;
use crate::textures::Shown;

#[derive(Default)]
pub struct VersusPanel {
    pub job: JobSlot<()>,
    /// B's predictions in A's row order.
    pub b: Option<Predictions>,
    pub report: Option<VersusReport>,
    /// What B is, in words.
    pub b_name: String,
    /// "A right, B wrong".
    pub a_only: Gallery,
    /// "B right, A wrong".
    pub b_only: Gallery,
}

impl VersusPanel {
    /// Forget B (another model A, another set, or the user asked).
    pub fn clear(&mut self) {
        self.job.clear();
        self.a_only.job.clear();
        self.b_only.job.clear();
        *self = VersusPanel::default();
    }

    pub fn gallery(&self, side: Side) -> &Gallery {
        match side {
            Side::AOnly => &self.a_only,
            Side::BOnly => &self.b_only,
        }
    }

    fn gallery_mut(&mut self, side: Side) -> &mut Gallery {
        match side {
            Side::AOnly => &mut self.a_only,
            Side::BOnly => &mut self.b_only,
        }
    }

    /// Compare `a` with B's predictions from `source`.
    pub fn start(&mut self, a: &Predictions, source: VersusSource, cost: Option<CostMatrix>, ctx: &mut Ctx) {
        let ticket = self.job.restart();
        ctx.send(Request::Versus { ticket, a: Box::new(a.clone()), b: source, cost, cache: ctx.paths.cache.clone() });
    }

    pub fn page(&mut self, side: Side, page: usize, a: Option<&Predictions>, same: bool, ctx: &mut Ctx) {
        let g = self.gallery_mut(side);
        g.page = page;
        request_thumbnails(g, a, same, ctx);
    }

    /// Take the panel's events; `a` are the Dataset view's predictions (model A).
    pub fn on_event(&mut self, ev: Event, a: Option<&Predictions>, same: bool, ctx: &mut Ctx) -> Result<(), Event> {
        match ev {
            Event::Progress { job, done, total, .. } if self.job.owns(job) => {
                self.job.progress(job, done, total);
            }
            Event::Versus { job, b, report, b_name } if self.job.owns(job) => {
                self.job.finish(job, ());
                let Some(a) = a.filter(|a| a.len() == b.len()) else { return Ok(()) };
                for side in [Side::AOnly, Side::BOnly] {
                    let indices = versus::disagreements(a, &b, side);
                    let title = format!("{}: {} images", side.title(), indices.len());
                    let g = self.gallery_mut(side);
                    g.job.clear();
                    *g = Gallery { title, indices, ..Gallery::default() };
                    request_thumbnails(g, Some(a), same, ctx);
                }
                self.b = Some(*b);
                self.report = Some(*report);
                self.b_name = b_name;
                ctx.announce("versus ready");
            }
            Event::Thumbnails { job, pictures } if self.a_only.job.owns(job) || self.b_only.job.owns(job) => {
                let g = if self.a_only.job.owns(job) { &mut self.a_only } else { &mut self.b_only };
                g.job.finish(job, ());
                for (i, p) in pictures {
                    g.thumbnails.insert(i, Shown::new(ctx.egui, &format!("vs-thumb{i}"), &p));
                }
            }
            Event::Cancelled { job } if self.job.owns(job) => {
                self.job.cancelled(job);
            }
            Event::Failed { job: Some(job), message } if self.job.owns(job) || self.a_only.job.owns(job) || self.b_only.job.owns(job) => {
                self.job.fail(job, message.clone());
                self.a_only.job.fail(job, message.clone());
                self.b_only.job.fail(job, message.clone());
                ctx.notes.error(message);
            }
            other => return Err(other),
        }
        Ok(())
    }
}
