//! Workspace hygiene, checked on every test run: every crate has a description and is on the
//! map (docs/ARCHITECTURE.md), every Rust file opens with a `//!` line saying what it is for,
//! and every service folder says what lives there.

use std::path::{Path, PathBuf};

const SERVICES: [&str; 9] =
    ["chainfire", "flaredb", "iam", "plasmavmc", "prismnet", "flashdns", "fiberlb", "lightningstor", "k8shost"];

/// The workspace root of the checkout under test. Read at run time: a test binary reused from a
/// shared target directory may have been compiled in another checkout of the same tree.
fn root() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR for tests");
    Path::new(&manifest_dir).join("../..").canonicalize().unwrap()
}

/// Every crate directory: `crates/*` and service folders that have become crates.
fn crate_dirs() -> Vec<PathBuf> {
    let root = root();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root.join("crates")).unwrap().map(|e| e.unwrap().path()).collect();
    dirs.extend(SERVICES.iter().map(|s| root.join(s)));
    dirs.retain(|d| d.join("Cargo.toml").is_file());
    dirs.sort();
    dirs
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn package_name(manifest: &str) -> Option<String> {
    manifest.lines().find_map(|l| l.strip_prefix("name = ").map(|v| v.trim_matches('"').to_string()))
}

#[test]
fn every_crate_has_a_description_and_is_on_the_map() {
    let map = std::fs::read_to_string(root().join("docs/ARCHITECTURE.md")).unwrap();
    let mut problems = Vec::new();
    for dir in crate_dirs() {
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        let name = package_name(&manifest).unwrap_or_else(|| dir.display().to_string());
        if !manifest.lines().any(|l| l.starts_with("description = ")) {
            problems.push(format!("{name}: Cargo.toml has no description"));
        }
        if !map.contains(&name) {
            problems.push(format!("{name}: not mentioned in docs/ARCHITECTURE.md"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_rust_file_opens_with_a_module_doc_line() {
    let mut files = Vec::new();
    for dir in crate_dirs() {
        for sub in ["src", "tests", "benches", "examples"] {
            rust_files(&dir.join(sub), &mut files);
        }
        if dir.join("build.rs").is_file() {
            files.push(dir.join("build.rs"));
        }
    }
    assert!(files.len() > 20, "the walk found too few files: {files:?}");
    let missing: Vec<String> = files
        .iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            !text.lines().find(|l| !l.trim().is_empty()).is_some_and(|l| l.starts_with("//!"))
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(missing.is_empty(), "files without a leading `//!` line:\n{}", missing.join("\n"));
}

#[test]
fn every_service_folder_has_a_readme() {
    for service in SERVICES {
        let readme = root().join(service).join("README.md");
        assert!(readme.is_file(), "{} is missing", readme.display());
    }
}
