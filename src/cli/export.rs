//! `easel export`: write images of a labelled set (IDX or folder) as PNG files, either in a
//! class-per-folder tree (torchvision's ImageFolder layout) or flat with the class in the name.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;
use easel_core::card::{InputSpec, ResizeMode};
use easel_core::data::{self, FASHION_MNIST_CLASSES};

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// IDX folder or images file (Fashion-MNIST layout).
    #[arg(long)]
    pub data: PathBuf,
    /// `train` or `t10k` for an IDX folder.
    #[arg(long, default_value = "t10k")]
    pub split: String,
    /// At most this many images of each class (the first ones in file order).
    #[arg(long)]
    pub per_class: Option<usize>,
    /// One folder: `<index>-<class>.png`, instead of `<class>/<index>.png`.
    #[arg(long)]
    pub flat: bool,
    #[arg(long)]
    pub out: PathBuf,
}

pub fn slug(s: &str) -> String {
    s.to_lowercase().replace(['/', ' '], "-")
}

pub fn run(args: ExportArgs) -> Result<ExitCode> {
    let classes: Vec<String> = FASHION_MNIST_CLASSES.iter().map(|s| s.to_string()).collect();
    let spec = InputSpec {
        channels: 1,
        height: 28,
        width: 28,
        resize: ResizeMode::Stretch,
        crop_fraction: 0.875,
        scale: 1.0 / 255.0,
        mean: vec![0.0],
        std: vec![1.0],
    };
    let source = data::resolve_source(&args.data, &args.split)?;
    let set = data::load_source(&source, &spec, &classes)?;
    let mut taken = vec![0usize; classes.len()];
    let mut files = Vec::new();
    for i in 0..set.len() {
        let l = set.labels[i];
        if args.per_class.is_some_and(|n| taken[l] >= n) {
            continue;
        }
        taken[l] += 1;
        let name = if args.flat { format!("{i}-{}.png", slug(&classes[l])) } else { format!("{}/{i}.png", slug(&classes[l])) };
        let img = set.image(i);
        let gray =
            image::GrayImage::from_raw(img.width as u32, img.height as u32, img.pixels).ok_or_else(|| anyhow::anyhow!("image {i} has the wrong size"))?;
        let mut png = Vec::new();
        gray.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
        files.push((name, png));
    }
    if files.is_empty() {
        bail!("no images to export");
    }
    let written = files.len();
    // all images appear, or none; nothing is overwritten
    easel_core::fsutil::write_files(&args.out, &files, false)?;
    eprintln!("easel: wrote {written} images under {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}
