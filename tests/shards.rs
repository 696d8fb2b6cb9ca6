//! Datasets beyond one machine: three shards of the 10k Fashion-MNIST test set, evaluated by
//! three processes with Slurm's array variables set (through `deploy/slurm/`), merged, equal
//! the single run; Kubernetes' index does the same; overlapping, missing, mixed or
//! incomplete shards are refused; a stopped run resumes; a class-per-folder tree streams and
//! shards the same way; the Dataset view opens a merged CSV like any other.

mod common;
#[path = "common/models.rs"]
mod models;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use easel_core::metrics::Predictions;

fn easel_cmd(cache: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_easel"));
    c.env("EASEL_NO_GPU", "1").env("EASEL_CACHE_DIR", cache);
    for v in ["SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN", "JOB_COMPLETION_INDEX"] {
        c.env_remove(v);
    }
    c
}

fn easel(args: &[&str], cache: &Path) -> Output {
    easel_cmd(cache).args(args).output().expect("the binary runs")
}

fn ok(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    err
}

fn refused(out: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "accepted: {err}");
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks '{n}': {err}");
    }
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("easel-shards-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Same samples in the same order with the same labels, probabilities within 1e-5.
fn assert_same_predictions(a: &Path, b: &Path) {
    let (pa, pb) = (Predictions::read_csv(a, None).unwrap(), Predictions::read_csv(b, None).unwrap());
    assert_eq!(pa.paths, pb.paths, "paths");
    assert_eq!(pa.labels, pb.labels, "labels");
    let (x, y) = (pa.probs.unwrap(), pb.probs.unwrap());
    let worst = x.iter().flatten().zip(y.iter().flatten()).map(|(u, v)| (u - v).abs()).fold(0.0f32, f32::max);
    assert!(worst <= 1e-5, "probabilities differ by {worst}");
}

fn record(csv: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(csv.with_extension("run.json")).unwrap()).unwrap()
}

#[test]
fn three_slurm_shards_merged_equal_the_single_run_and_bad_merges_are_refused() {
    let d = scratch("slurm");
    let model = asset("fashion-mnist/model/card.json");
    let data = asset("fashion-mnist");
    let single = d.join("single.csv");
    ok(&easel(&["evaluate", "--model", s(&model), "--data", s(&data), "--out", s(&single), "--no-cache", "--device", "cpu"], &d));

    // three array tasks at once, each run by the Slurm script with the variables Slurm sets
    let results = d.join("results");
    let script = root().join("deploy/slurm/evaluate.sbatch");
    let tasks: Vec<_> = (0..3)
        .map(|i| {
            Command::new("bash")
                .arg(&script)
                .env("EASEL", env!("CARGO_BIN_EXE_easel"))
                .env("EASEL_NO_GPU", "1")
                .env("EASEL_CACHE_DIR", &d)
                .env("MODEL", &model)
                .env("DATA", &data)
                .env("OUT_DIR", &results)
                .env("DEVICE", "cpu")
                .env("SLURM_ARRAY_TASK_ID", i.to_string())
                .env("SLURM_ARRAY_TASK_COUNT", "3")
                .env("SLURM_ARRAY_TASK_MIN", "0")
                .spawn()
                .unwrap()
        })
        .collect();
    for mut t in tasks {
        assert!(t.wait().unwrap().success());
    }
    let shard = |i: usize| results.join(format!("shard-{i}.csv"));
    for i in 0..3 {
        let r = record(&shard(i));
        assert_eq!(r["shard"]["index"], i);
        assert_eq!(r["shard"]["count"], 3);
        assert_eq!(r["complete"], true);
        assert_eq!(r["rows"].as_u64().unwrap(), r["end"].as_u64().unwrap() - r["start"].as_u64().unwrap());
    }
    assert_eq!(record(&shard(2))["end"], 10_000);
    let merge =
        Command::new("bash").arg(root().join("deploy/slurm/merge.sbatch")).env("EASEL", env!("CARGO_BIN_EXE_easel")).env("OUT_DIR", &results).output().unwrap();
    ok(&merge);
    let all = results.join("all.csv");
    assert_same_predictions(&all, &single);
    let merged_metrics: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(results.join("all.metrics.json")).unwrap()).unwrap();
    let single_metrics: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(d.join("single.metrics.json")).unwrap()).unwrap();
    assert_eq!(merged_metrics["summary"], single_metrics["summary"]);
    assert_eq!(merged_metrics["confusion"], single_metrics["confusion"]);
    let r = record(&all);
    assert_eq!((r["rows"].as_u64(), r["complete"].as_bool()), (Some(10_000), Some(true)));
    assert_eq!(r["model_hash"], record(&single)["model_hash"]);
    assert_eq!(r["data_fingerprint"], record(&single)["data_fingerprint"]);

    // Kubernetes: JOB_COMPLETION_INDEX with --shards gives the same shard
    let k8s = d.join("k8s-1.csv");
    let out = easel_cmd(&d)
        .args(["evaluate", "--model", s(&model), "--data", s(&data), "--shards", "3", "--out", s(&k8s), "--no-cache", "--device", "cpu"])
        .env("JOB_COMPLETION_INDEX", "1")
        .output()
        .unwrap();
    assert!(ok(&out).contains("shard 1/3 (from JOB_COMPLETION_INDEX)"));
    assert_same_predictions(&k8s, &shard(1));
    refused(
        &easel(&["evaluate", "--model", s(&model), "--data", s(&data), "--shards", "3", "--device", "cpu"], &d),
        &["--shards 3 needs JOB_COMPLETION_INDEX"],
    );

    // missing, overlapping, mixed splits, another model: refused, naming the problem
    let out_bad = d.join("bad.csv");
    refused(&easel(&["merge", s(&shard(0)), s(&shard(2)), "--out", s(&out_bad)], &d), &["missing shard 1/3 (items 3333..6666)"]);
    let copy = d.join("copy-of-0.csv");
    std::fs::copy(shard(0), &copy).unwrap();
    std::fs::copy(shard(0).with_extension("run.json"), copy.with_extension("run.json")).unwrap();
    refused(&easel(&["merge", s(&shard(0)), s(&copy), s(&shard(1)), s(&shard(2)), "--out", s(&out_bad)], &d), &["are both shard 0/3: they overlap"]);
    let half = d.join("half-0.csv");
    ok(&easel(&["evaluate", "--model", s(&model), "--data", s(&data), "--shard", "0/2", "--out", s(&half), "--no-cache", "--device", "cpu"], &d));
    refused(&easel(&["merge", s(&half), s(&shard(1)), s(&shard(2)), "--out", s(&out_bad)], &d), &["shards of different splits"]);
    let b_model = d.join("b");
    let b_card = models::shifted_demo_model(&b_model, 6, 1.0);
    let other = d.join("other-1.csv");
    ok(&easel(&["evaluate", "--model", s(&b_card), "--data", s(&data), "--shard", "1/3", "--out", s(&other), "--no-cache", "--device", "cpu"], &d));
    refused(&easel(&["merge", s(&shard(0)), s(&other), s(&shard(2)), "--out", s(&out_bad)], &d), &["from model", "same model and data"]);
    let plain = d.join("plain.csv");
    std::fs::copy(shard(1), &plain).unwrap();
    refused(&easel(&["merge", s(&shard(0)), s(&plain), s(&shard(2)), "--out", s(&out_bad)], &d), &["no run record beside it"]);
    assert!(!out_bad.exists(), "nothing written by a refused merge");
    // the merged file exists: a second merge does not replace it without --force
    refused(&easel(&["merge", s(&shard(0)), s(&shard(1)), s(&shard(2)), "--out", s(&all)], &d), &["--force"]);

    // the merged CSV is a predictions CSV like any other
    let m = easel(&["metrics", "--predictions", s(&all), "--model", s(&model), "--json"], &d);
    let v: serde_json::Value = serde_json::from_slice(&m.stdout).unwrap();
    assert_eq!(v["summary"]["samples"], 10_000);
}

#[test]
fn a_stopped_run_resumes_without_redoing_its_rows() {
    let d = scratch("resume");
    let model = asset("fashion-mnist/model/card.json");
    let data = asset("fashion-mnist");
    let full = d.join("full.csv");
    ok(&easel(&["evaluate", "--model", s(&model), "--data", s(&data), "--out", s(&full), "--no-cache", "--device", "cpu"], &d));
    // what a kill leaves: 4000 whole rows and a torn one, and the record of the work
    let text = std::fs::read_to_string(&full).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut partial = lines[..4001].join("\n");
    partial.push('\n');
    partial.push_str(&lines[4001][..lines[4001].len() / 2]);
    let out = d.join("again.csv");
    std::fs::write(d.join("again.csv.partial"), partial).unwrap();
    let mut rec = record(&full);
    rec["complete"] = false.into();
    rec["rows"] = 0.into();
    std::fs::write(d.join("again.csv.partial.json"), serde_json::to_vec(&rec).unwrap()).unwrap();
    let err = ok(&easel(&["evaluate", "--model", s(&model), "--data", s(&data), "--out", s(&out), "--no-cache", "--device", "cpu"], &d));
    assert!(err.contains("kept 4000 rows, evaluated the other 6000"), "{err}");
    assert_same_predictions(&out, &full);
    assert!(!d.join("again.csv.partial").exists() && !d.join("again.csv.partial.json").exists());
    // finished work is not redone; other work is not overwritten without --force
    let err = ok(&easel(&["evaluate", "--model", s(&model), "--data", s(&data), "--out", s(&out), "--no-cache", "--device", "cpu"], &d));
    assert!(err.contains("nothing to do"), "{err}");
    refused(
        &easel(&["evaluate", "--model", s(&model), "--data", s(&data), "--shard", "1/2", "--out", s(&out), "--no-cache", "--device", "cpu"], &d),
        &["--force"],
    );
    // a partial run of other work is not taken over
    std::fs::write(d.join("x.csv.partial"), lines[..10].join("\n") + "\n").unwrap();
    rec["shard"] = serde_json::json!({"index": 1, "count": 2});
    std::fs::write(d.join("x.csv.partial.json"), serde_json::to_vec(&rec).unwrap()).unwrap();
    let x = d.join("x.csv");
    refused(
        &easel(&["evaluate", "--model", s(&model), "--data", s(&data), "--out", s(&x), "--no-cache", "--device", "cpu"], &d),
        &["another model, data or shard", "--force"],
    );
}

#[test]
fn a_class_folder_streams_and_shards_like_an_idx_set() {
    let d = scratch("folder");
    let model = asset("fashion-mnist/model/card.json");
    let folder = d.join("images");
    ok(&easel(&["export", "--data", s(&asset("fashion-mnist")), "--per-class", "25", "--out", s(&folder)], &d));
    let single = d.join("single.csv");
    ok(&easel(&["evaluate", "--model", s(&model), "--data", s(&folder), "--out", s(&single), "--no-cache", "--device", "cpu", "--batch-size", "16"], &d));
    assert_eq!(record(&single)["total"], 250);
    for i in 0..2 {
        let out = d.join(format!("part-{i}.csv"));
        ok(&easel(
            &[
                "evaluate",
                "--model",
                s(&model),
                "--data",
                s(&folder),
                "--shard",
                &format!("{i}/2"),
                "--out",
                s(&out),
                "--no-cache",
                "--device",
                "cpu",
                "--batch-size",
                "16",
            ],
            &d,
        ));
    }
    let all = d.join("all.csv");
    ok(&easel(&["merge", s(&d.join("part-1.csv")), s(&d.join("part-0.csv")), "--out", s(&all)], &d));
    assert_same_predictions(&all, &single);
    // the folder's paths are its files, class folder by class folder
    let p = Predictions::read_csv(&single, None).unwrap();
    assert!(p.paths.iter().all(|f| Path::new(f).is_file()));
    assert_eq!(p.labels.windows(2).filter(|w| w[0] != w[1]).count(), 9, "one block of rows per class folder");
}

/// The number after `easel: peak memory` on stderr, in MiB.
fn peak_mib(stderr: &str) -> f64 {
    let at = stderr.find("peak memory ").expect("evaluate prints its peak memory") + "peak memory ".len();
    stderr[at..].split_whitespace().next().unwrap().parse().unwrap()
}

/// Probabilities by (image index in the test set) from a folder evaluation whose files are
/// named `<copy>-<index>.png` or `<index>.png`.
fn by_index(csv: &Path) -> Vec<(usize, Vec<f32>)> {
    let p = Predictions::read_csv(csv, None).unwrap();
    let probs = p.probs.unwrap();
    p.paths
        .iter()
        .zip(probs)
        .map(|(path, row)| {
            let stem = Path::new(path).file_stem().unwrap().to_string_lossy().into_owned();
            (stem.rsplit('-').next().unwrap().parse().unwrap(), row)
        })
        .collect()
}

#[test]
#[ignore = "benchmark: writes 110,000 PNG files and evaluates 100,000 of them three times (scripts/bench-folder.sh runs it)"]
fn a_folder_of_100k_images_streams_in_bounded_memory_and_resumes_after_kill_9() {
    let d = scratch("100k");
    let model = asset("fashion-mnist/model/card.json");
    let classes = easel_core::data::fashion_classes();
    let set =
        easel_core::data::idx::load_idx_pair(&asset("fashion-mnist/t10k-images-idx3-ubyte.gz"), &asset("fashion-mnist/t10k-labels-idx1-ubyte.gz"), &classes)
            .unwrap();
    let (small, big) = (d.join("10k"), d.join("100k"));
    let started = std::time::Instant::now();
    for c in 0..10 {
        std::fs::create_dir_all(small.join(c.to_string())).unwrap();
        std::fs::create_dir_all(big.join(c.to_string())).unwrap();
    }
    for i in 0..set.len() {
        let img = image::GrayImage::from_raw(28, 28, set.image(i).pixels).unwrap();
        let l = set.labels[i].to_string();
        img.save(small.join(&l).join(format!("{i}.png"))).unwrap();
        for copy in 0..10 {
            img.save(big.join(&l).join(format!("{copy}-{i}.png"))).unwrap();
        }
    }
    eprintln!("wrote 110,000 PNG files in {:.1} s", started.elapsed().as_secs_f64());
    let eval = |data: &Path, out: &Path| {
        easel_cmd(&d).args(["evaluate", "--model", s(&model), "--data", s(data), "--out", s(out), "--no-cache", "--device", "cpu"]).output().unwrap()
    };

    let small_csv = d.join("10k.csv");
    let err = ok(&eval(&small, &small_csv));
    let peak_small = peak_mib(&err);
    let full_csv = d.join("100k-full.csv");
    let started = std::time::Instant::now();
    let err = ok(&eval(&big, &full_csv));
    let peak_big = peak_mib(&err);
    eprintln!("peak RSS: 10,000 images {peak_small:.0} MiB, 100,000 images {peak_big:.0} MiB ({:.0} s for 100,000)", started.elapsed().as_secs_f64());
    assert!(peak_big <= peak_small + 12.0, "memory grows with the folder: {peak_small} MiB for 10k, {peak_big} MiB for 100k");
    // every copy of an image has that image's probabilities
    let reference: std::collections::HashMap<usize, Vec<f32>> = by_index(&small_csv).into_iter().collect();
    let rows = by_index(&full_csv);
    assert_eq!(rows.len(), 100_000);
    let worst = rows.iter().flat_map(|(i, row)| row.iter().zip(&reference[i]).map(|(a, b)| (a - b).abs())).fold(0.0f32, f32::max);
    assert!(worst <= 1e-5, "{worst}");

    // kill -9 halfway, then run again: the written rows are kept, only the rest is evaluated
    let killed_csv = d.join("100k.csv");
    let partial = d.join("100k.csv.partial");
    let half_bytes = std::fs::metadata(&full_csv).unwrap().len() / 2;
    let mut child = easel_cmd(&d)
        .args(["evaluate", "--model", s(&model), "--data", s(&big), "--out", s(&killed_csv), "--no-cache", "--device", "cpu"])
        .stderr(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    while std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0) < half_bytes {
        assert!(std::time::Instant::now() < deadline, "the run never got halfway");
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it was killed");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let bytes = std::fs::read(&partial).unwrap();
    let whole_rows = bytes.iter().filter(|&&b| b == b'\n').count() - 1;
    eprintln!("killed after {whole_rows} whole rows ({} bytes, torn tail: {})", bytes.len(), !bytes.ends_with(b"\n"));
    assert!(!killed_csv.exists(), "the final name appears only when complete");
    let err = ok(&eval(&big, &killed_csv));
    assert!(err.contains(&format!("kept {whole_rows} rows, evaluated the other {}", 100_000 - whole_rows)), "{err}");
    eprintln!("resumed run: peak RSS {:.0} MiB", peak_mib(&err));
    assert_same_predictions(&killed_csv, &full_csv);
}
