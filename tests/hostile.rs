//! The hostile corpus: broken and malicious inputs, generated here (`hostile/files.rs`), run
//! through the built `easel` binary. Every case is either one `easel: error: ...` line with
//! a non-zero exit, or a correct result where the input is valid; no panic, no case over
//! 10 s, no exit 0 on garbage, and no input file changes.

mod common;
#[path = "hostile/files.rs"]
mod files;
#[path = "hostile/model_files.rs"]
mod model_files;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use files::*;
use model_files::{card_cases, pickle_cases, weights_cases};

const CASE_LIMIT: Duration = Duration::from_secs(10);

enum Expect {
    /// A clean failure whose message holds every needle.
    Error(Vec<&'static str>),
    /// Success.
    Ok,
}

struct Case {
    name: String,
    args: Vec<String>,
    expect: Expect,
}

struct Corpus {
    inputs: PathBuf,
    outputs: PathBuf,
    cases: Vec<Case>,
}

impl Corpus {
    fn new() -> Corpus {
        let root = std::env::temp_dir().join(format!("easel-hostile-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let (inputs, outputs) = (root.join("inputs"), root.join("outputs"));
        std::fs::create_dir_all(&inputs).unwrap();
        std::fs::create_dir_all(&outputs).unwrap();
        Corpus { inputs, outputs, cases: Vec::new() }
    }
    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.inputs.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, bytes).unwrap();
        p
    }
    fn out(&self, name: &str) -> PathBuf {
        self.outputs.join(name)
    }
    fn case(&mut self, name: &str, args: &[&str], expect: Expect) {
        self.cases.push(Case { name: name.into(), args: args.iter().map(|s| s.to_string()).collect(), expect });
    }
    /// A card for the fixture CNN in `inputs/<dir>/` whose weights field is `weights`.
    fn card(&self, dir: &str, weights: &str, edit: impl Fn(&mut serde_json::Value)) -> PathBuf {
        let mut card: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(common::fixture("smallcnn_fashion/card.json")).unwrap()).unwrap();
        card["weights"] = weights.into();
        edit(&mut card);
        self.file(&format!("{dir}/card.json"), serde_json::to_string(&card).unwrap().as_bytes())
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn err(needles: &[&'static str]) -> Expect {
    Expect::Error(needles.to_vec())
}

fn fixture_tensors() -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let map = easel_core::weights::read_tensors(&common::fixture("smallcnn_fashion/weights.safetensors")).unwrap();
    map.tensors.into_iter().map(|(k, t)| (k, t.shape, t.data)).collect()
}

#[cfg(unix)]
fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo {}", p.display());
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                out.insert(e.path(), std::fs::read(e.path()).unwrap());
            } else {
                out.insert(e.path(), Vec::new());
            }
        }
    }
    out
}

struct Outcome {
    code: Option<i32>,
    stderr: String,
    secs: f64,
    timed_out: bool,
}

fn run(args: &[String], cache: &Path) -> Outcome {
    let started = Instant::now();
    // EASEL_HOSTILE_BIN runs the corpus against another build (e.g. an older one, to count
    // what it got wrong)
    let bin = std::env::var_os("EASEL_HOSTILE_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_easel").into());
    let mut child = Command::new(bin)
        .args(args)
        .env("EASEL_NO_GPU", "1")
        .env("EASEL_CACHE_DIR", cache)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    let mut timed_out = false;
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if started.elapsed() > CASE_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            timed_out = true;
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Outcome { code, stderr: reader.join().unwrap_or_default(), secs: started.elapsed().as_secs_f64(), timed_out }
}

/// Judge one case; `None` when it behaved.
fn judge(case: &Case, o: &Outcome) -> Option<String> {
    if o.timed_out {
        return Some(format!("hung (killed after {:.1} s)", o.secs));
    }
    if o.stderr.contains("panicked") {
        return Some(format!("panicked: {}", o.stderr));
    }
    match &case.expect {
        Expect::Ok => (o.code != Some(0)).then(|| format!("a valid input failed (exit {:?}): {}", o.code, o.stderr)),
        Expect::Error(needles) => {
            if o.code == Some(0) {
                return Some(format!("exit 0 on garbage: {}", o.stderr));
            }
            let lines: Vec<&str> = o.stderr.lines().filter(|l| l.starts_with("easel: error")).collect();
            if lines.len() != 1 || o.code.is_none() {
                return Some(format!("not one error line (exit {:?}): {}", o.code, o.stderr));
            }
            let missing: Vec<&&str> = needles.iter().filter(|n| !lines[0].contains(**n)).collect();
            (!missing.is_empty()).then(|| format!("error lacks {missing:?}: {}", lines[0]))
        }
    }
}

#[test]
fn the_hostile_corpus_fails_cleanly_and_valid_files_load() {
    let mut c = Corpus::new();
    weights_cases(&mut c);
    pickle_cases(&mut c);
    card_cases(&mut c);
    image_cases(&mut c);
    option_cases(&mut c);
    data_cases(&mut c);
    csv_cases(&mut c);
    output_cases(&mut c);
    let cache = c.outputs.join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    let before = snapshot(&c.inputs);
    let mut failures = Vec::new();
    let mut slowest = (0.0, String::new());
    for case in &c.cases {
        let o = run(&case.args, &cache);
        if o.secs > slowest.0 {
            slowest = (o.secs, case.name.clone());
        }
        if let Some(f) = judge(case, &o) {
            failures.push(format!("{}: {f}", case.name));
        }
        let after = snapshot(&c.inputs);
        if after != before {
            let changed: Vec<_> = before.keys().chain(after.keys()).filter(|k| before.get(*k) != after.get(*k)).collect();
            failures.push(format!("{}: changed input files {changed:?}", case.name));
            break;
        }
    }
    eprintln!("{} cases, slowest {:.1} s ({})", c.cases.len(), slowest.0, slowest.1);
    assert!(c.cases.len() >= 60, "the corpus holds {} cases", c.cases.len());
    assert!(failures.is_empty(), "{} of {} cases misbehaved:\n{}", failures.len(), c.cases.len(), failures.join("\n"));
    let _ = std::fs::remove_dir_all(c.inputs.parent().unwrap());
}

fn predict_image(img: &Path) -> Vec<String> {
    vec!["predict".into(), "--model".into(), s(&common::fixture("smallcnn_fashion/card.json")).into(), "--images".into(), s(img).into()]
}

/// Images: truncated, lying about their size, not files at all.
fn image_cases(c: &mut Corpus) {
    let image = |c: &mut Corpus, name: &str, file: &str, bytes: &[u8], expect: Expect| {
        let p = c.file(&format!("i-{name}/{file}"), bytes);
        c.cases.push(Case { name: format!("image: {name}"), args: predict_image(&p), expect });
    };
    let jpg = jpeg(64, 48);
    image(c, "jpeg", "a.jpg", &jpg, Expect::Ok);
    image(c, "jpeg-truncated", "a.jpg", &jpg[..jpg.len() * 2 / 3], err(&["truncated JPEG"]));
    image(c, "jpeg-header-only", "a.jpg", &jpg[..200.min(jpg.len())], err(&["a.jpg"]));
    let p = png(40, 30);
    image(c, "png-truncated", "a.png", &p[..p.len() - 20], err(&["not a readable image"]));
    image(c, "png-claims-a-million-pixels-a-side", "a.png", &png_header_only(1_000_000, 1_000_000), err(&["larger than easel accepts"]));
    image(c, "png-claims-100-megapixels", "a.png", &png_header_only(10_000, 10_000), err(&["pixels"]));
    image(c, "garbage-named-png", "a.png", &noise(5000, 3), err(&["not a readable image"]));
    image(c, "empty", "a.png", b"", err(&["empty"]));
    #[cfg(unix)]
    {
        std::fs::create_dir_all(c.inputs.join("i-fifo")).unwrap();
        mkfifo(&c.inputs.join("i-fifo/pipe.png"));
        c.cases.push(Case { name: "image: a FIFO".into(), args: predict_image(&c.inputs.join("i-fifo/pipe.png")), expect: err(&["FIFO"]) });
        c.cases.push(Case { name: "image: /dev/zero".into(), args: predict_image(Path::new("/dev/zero")), expect: err(&["device"]) });
    }
}

fn explain(extra: &[&str], out: &Path) -> Vec<String> {
    let mut a: Vec<String> = [
        "explain",
        "--model",
        s(&common::fixture("smallcnn_fashion/card.json")),
        "--image",
        s(&common::fixture("smallcnn_fashion/input.png")),
        "--out",
        s(out),
    ]
    .iter()
    .map(|x| x.to_string())
    .collect();
    a.extend(extra.iter().map(|x| x.to_string()));
    a
}

/// Options that are not numbers, or would never end.
fn option_cases(c: &mut Corpus) {
    let cases: [(&str, &[&str], &[&'static str]); 13] = [
        ("fill NaN", &["--method", "occlusion", "--fill", "NaN"], &["--fill"]),
        ("scale NaN", &["--method", "saliency", "--scale", "NaN"], &["scale"]),
        ("alpha NaN", &["--method", "saliency", "--alpha", "NaN"], &["alpha"]),
        ("clip NaN", &["--method", "saliency", "--clip", "NaN"], &["clipped"]),
        ("noise NaN", &["--method", "smoothgrad", "--noise", "NaN"], &["noise"]),
        ("epsilon NaN", &["--method", "fgsm", "--epsilon", "NaN"], &["epsilon"]),
        ("window fraction NaN", &["--method", "occlusion", "--window-fraction", "NaN", "--windows", "4"], &["window fraction"]),
        ("windows a million", &["--method", "occlusion", "--window-fraction", "0.2", "--windows", "1000000"], &["windows per axis"]),
        ("roi overflow", &["--method", "occlusion", "--window", "4", "--roi", "18446744073709551615,0,8,8"], &["region of interest"]),
        ("ig steps a million", &["--method", "ig", "--steps", "1000000"], &["steps"]),
        ("smoothgrad samples a million", &["--method", "smoothgrad", "--samples", "1000000"], &["samples"]),
        ("noise tunnel over IG too long", &["--method", "smoothgrad", "--noise-base", "ig", "--samples", "5000", "--steps", "2000"], &["backward passes"]),
        ("pgd steps a billion", &["--method", "pgd", "--steps", "1000000000"], &["steps"]),
    ];
    for (i, (name, extra, needles)) in cases.iter().enumerate() {
        let out = c.out(&format!("opt-{i}"));
        c.cases.push(Case { name: format!("option: {name}"), args: explain(extra, &out), expect: err(needles) });
    }
    let mut top = predict_image(&common::fixture("smallcnn_fashion/input.png"));
    top.extend(["--top-k".to_string(), "100000".to_string()]);
    c.cases.push(Case { name: "option: top-k 100000".into(), args: top, expect: err(&["--top-k"]) });
}

fn evaluate(data: &Path) -> Vec<String> {
    vec!["evaluate".into(), "--model".into(), s(&common::fixture("smallcnn_fashion/card.json")).into(), "--data".into(), s(data).into(), "--no-cache".into()]
}

/// Labelled data: IDX files that lie, gzip bombs, empty sets, link loops.
fn data_cases(c: &mut Corpus) {
    let idx_pair = |c: &mut Corpus, name: &str, images: Vec<u8>, labels: Vec<u8>, expect: Expect| {
        let img = c.file(&format!("d-{name}/t10k-images-idx3-ubyte"), &images);
        c.file(&format!("d-{name}/t10k-labels-idx1-ubyte"), &labels);
        c.cases.push(Case { name: format!("data: {name}"), args: evaluate(&img), expect });
    };
    idx_pair(c, "valid", idx(&[3, 28, 28], &[7; 3 * 784]), idx(&[3], &[0, 1, 2]), Expect::Ok);
    idx_pair(c, "no-images", idx(&[0, 28, 28], &[]), idx(&[0], &[]), err(&["no images"]));
    idx_pair(c, "dims-overflow", idx(&[u32::MAX, u32::MAX, u32::MAX], &[0; 64]), idx(&[1], &[0]), err(&["overflow"]));
    idx_pair(c, "truncated", idx(&[5, 28, 28], &[0; 100]), idx(&[5], &[0; 5]), err(&["truncated"]));
    idx_pair(c, "label-out-of-range", idx(&[1, 28, 28], &[0; 784]), idx(&[1], &[200]), err(&["label 200"]));
    idx_pair(c, "count-mismatch", idx(&[2, 28, 28], &[0; 2 * 784]), idx(&[3], &[0; 3]), err(&["3 labels for 2 images"]));
    let gz = |c: &mut Corpus, name: &str, images: Vec<u8>, needles: &[&'static str]| {
        let img = c.file(&format!("d-{name}/t10k-images-idx3-ubyte.gz"), &images);
        c.file(&format!("d-{name}/t10k-labels-idx1-ubyte.gz"), &gzip(&idx(&[2], &[0, 1])));
        c.cases.push(Case { name: format!("data: {name}"), args: evaluate(&img), expect: err(needles) });
    };
    let mut trailing = gzip(&idx(&[2, 28, 28], &[1; 2 * 784]));
    trailing.extend_from_slice(b"trailing garbage");
    gz(c, "gzip-trailing-data", trailing, &["after the end of the gzip"]);
    let mut bomb = idx(&[2, 28, 28], &[]);
    bomb.resize(64 << 20, 0);
    gz(c, "gzip-bomb", gzip(&bomb), &["more than the"]);
    let good = gzip(&idx(&[2, 28, 28], &[1; 2 * 784]));
    gz(c, "gzip-truncated", good[..good.len() - 10].to_vec(), &["gzip"]);
    gz(c, "gzip-garbage", [vec![0x1f, 0x8b], noise(500, 9)].concat(), &["gzip"]);
    let empty = c.inputs.join("d-empty-tree/Trouser");
    std::fs::create_dir_all(&empty).unwrap();
    c.cases.push(Case { name: "data: class folders without images".into(), args: evaluate(empty.parent().unwrap()), expect: err(&["no images"]) });
    #[cfg(unix)]
    {
        let tree = c.inputs.join("d-link-loop");
        c.file("d-link-loop/Trouser/a.png", &png(28, 28));
        std::os::unix::fs::symlink(".", tree.join("Trouser/loop")).unwrap();
        std::os::unix::fs::symlink("..", tree.join("Trouser/up")).unwrap();
        let mut args = evaluate(&tree);
        args.pop(); // with the cache: the fingerprint walks the tree
        c.cases.push(Case { name: "data: a tree with link loops".into(), args, expect: Expect::Ok });
        let img = c.file("d-fifo-labels/t10k-images-idx3-ubyte", &idx(&[1, 28, 28], &[0; 784]));
        mkfifo(&c.inputs.join("d-fifo-labels/t10k-labels-idx1-ubyte"));
        c.cases.push(Case { name: "data: the labels are a FIFO".into(), args: evaluate(&img), expect: err(&["FIFO"]) });
    }
}

fn metrics(preds: &Path, extra: &[&str]) -> Vec<String> {
    let mut a = vec!["metrics".to_string(), "--predictions".into(), s(preds).into()];
    a.extend(extra.iter().map(|x| x.to_string()));
    a
}

/// Predictions and cost CSVs: too wide, not numbers, not files.
fn csv_cases(c: &mut Corpus) {
    let good = "path,label,p0,p1\na.png,0,0.9,0.1\nb.png,1,0.2,0.8\n";
    let p = c.file("csv/good.csv", good.as_bytes());
    c.cases.push(Case { name: "csv: valid".into(), args: metrics(&p, &[]), expect: Expect::Ok });
    let wide: String = format!("path,label,{}\n", (0..100_000).map(|i| format!("p{i}")).collect::<Vec<_>>().join(","));
    let p = c.file("csv/wide.csv", wide.as_bytes());
    c.cases.push(Case { name: "csv: 100k probability columns".into(), args: metrics(&p, &[]), expect: err(&["100000 probability columns"]) });
    let p = c.file("csv/nan.csv", b"path,label,p0,p1\na.png,0,NaN,0.1\n");
    c.cases.push(Case { name: "csv: NaN probability".into(), args: metrics(&p, &[]), expect: err(&["[0, 1]"]) });
    let p = c.file("csv/header-only.csv", b"path,label,p0,p1\n");
    c.cases.push(Case { name: "csv: no rows".into(), args: metrics(&p, &[]), expect: err(&["no predictions"]) });
    let p = c.file("csv/binary.csv", &noise(3000, 11));
    c.cases.push(Case { name: "csv: binary garbage".into(), args: metrics(&p, &[]), expect: err(&["binary.csv"]) });
    let ok = c.inputs.join("csv/good.csv");
    let cost_wide = format!("{}\n", vec!["1"; 100_000].join(","));
    let cw = c.file("csv/cost-wide.csv", cost_wide.as_bytes());
    c.cases.push(Case { name: "csv: cost matrix 1e5 wide".into(), args: metrics(&ok, &["--cost", s(&cw)]), expect: err(&["100000 costs"]) });
    let cn = c.file("csv/cost-negative.csv", b"0,-1\n1,0\n");
    c.cases.push(Case { name: "csv: negative cost".into(), args: metrics(&ok, &["--cost", s(&cn)]), expect: err(&["negative"]) });
    let dir = c.inputs.join("csv");
    c.cases.push(Case { name: "csv: predictions are a folder".into(), args: metrics(&dir, &[]), expect: err(&["a folder"]) });
    #[cfg(unix)]
    {
        mkfifo(&c.inputs.join("csv/cost-fifo.csv"));
        let f = c.inputs.join("csv/cost-fifo.csv");
        c.cases.push(Case { name: "csv: cost matrix is a FIFO".into(), args: metrics(&ok, &["--cost", s(&f)]), expect: err(&["FIFO"]) });
    }
}

/// Outputs: nothing written over without --force.
fn output_cases(c: &mut Corpus) {
    let taken = c.out("taken-explain");
    std::fs::create_dir_all(&taken).unwrap();
    std::fs::write(taken.join("original.png"), b"mine").unwrap();
    c.cases.push(Case {
        name: "output: explain over original.png".into(),
        args: explain(&["--method", "fgsm"], &taken),
        expect: err(&["original.png", "already exists"]),
    });
    let conv = c.out("taken-convert");
    std::fs::create_dir_all(&conv).unwrap();
    std::fs::write(conv.join("weights.safetensors"), b"mine").unwrap();
    let classes = c.file("o-classes.txt", b"a\nb\n");
    let w = common::fixture("smallcnn_fashion/weights.safetensors");
    let args = ["convert", "--arch", "resnet18", "--weights", s(&w), "--classes", s(&classes), "--out", s(&conv)];
    c.case("output: convert over weights.safetensors", &args, err(&["weights.safetensors", "already exists"]));
    let train = c.out("taken-train");
    std::fs::create_dir_all(&train).unwrap();
    std::fs::write(train.join("training.json"), b"mine").unwrap();
    let data = common::asset("fashion-mnist");
    let args = ["train", "--data", s(&data), "--limit", "8", "--epochs", "1", "--out", s(&train)];
    c.case("output: train over training.json", &args, err(&["training.json", "already exists"]));
    let bench = c.out("bench.json");
    std::fs::write(&bench, b"mine").unwrap();
    c.case("output: bench over its json", &["bench", "--quick", "--json", s(&bench)], err(&["already exists"]));
    let export = c.out("taken-export");
    std::fs::create_dir_all(&export).unwrap();
    std::fs::write(export.join("0-ankle-boot.png"), b"mine").unwrap();
    let args = ["export", "--data", s(&data), "--per-class", "1", "--flat", "--out", s(&export)];
    c.case("output: export over an image", &args, err(&["already exists"]));
}

#[test]
fn outputs_a_user_owns_are_untouched_by_refused_commands() {
    // the output cases above also check this; here the bytes are compared after the run
    let dir = std::env::temp_dir().join(format!("easel-hostile-out-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("original.png"), b"mine").unwrap();
    let o = run(&explain(&["--method", "fgsm"], &dir), &dir.join("cache"));
    assert_ne!(o.code, Some(0), "{}", o.stderr);
    assert_eq!(std::fs::read(dir.join("original.png")).unwrap(), b"mine");
    assert!(!dir.join("fgsm.npy").exists(), "nothing is written when one name is taken");
    let _ = std::fs::remove_dir_all(&dir);
}
