//! easel's desktop app: eframe/egui views over the job layer. The app shell ([`app`]) routes
//! commands and events; each view ([`views`]) owns its state, its job slots and its events;
//! panels draw from read-only state and push [`command::Command`]s.

pub mod app;
pub mod command;
pub mod ctx;
pub mod dialogs;
pub mod frames;
pub mod session;
pub mod state;
pub mod textures;
pub mod views;

pub use app::{EaselApp, StartOptions};

/// Open the window. Tries the glow (OpenGL) renderer, then wgpu. Glow comes first because under
/// software rendering (llvmpipe, e.g. a remote desktop or Xvfb) it takes less CPU per frame than
/// wgpu's GL path (an EfficientNet occlusion ran 1.14x the CLI's time with glow, 1.27x with
/// wgpu); `EASEL_RENDERER=wgpu` chooses wgpu first.
pub fn run(start: StartOptions) -> anyhow::Result<()> {
    let mut last_err = None;
    let order = match std::env::var("EASEL_RENDERER").as_deref() {
        Ok("wgpu") => [eframe::Renderer::Wgpu, eframe::Renderer::Glow],
        _ => [eframe::Renderer::Glow, eframe::Renderer::Wgpu],
    };
    for renderer in order {
        let (w, h) = start.window_size.unwrap_or((1400.0, 860.0));
        let options = eframe::NativeOptions {
            renderer,
            viewport: eframe::egui::ViewportBuilder::default()
                .with_title("easel")
                .with_inner_size([w, h])
                .with_min_inner_size([800.0, 520.0])
                .with_drag_and_drop(true),
            ..Default::default()
        };
        let start = start.clone();
        let result = eframe::run_native(
            "easel",
            options,
            Box::new(move |cc| {
                let stored = cc.storage.and_then(|s| eframe::get_value::<state::State>(s, app::STATE_KEY));
                Ok(Box::new(EaselApp::new(&cc.egui_ctx, stored, start)))
            }),
        );
        match result {
            Ok(()) => return Ok(()),
            Err(e) => {
                eprintln!("easel: the {renderer:?} renderer failed ({e}); trying the next one");
                last_err = Some(e);
            }
        }
    }
    Err(anyhow::anyhow!("cannot open a window: {}", last_err.map(|e| e.to_string()).unwrap_or_default()))
}
