//! What the service layer must not know, checked on the real dependency graph and the
//! real sources: no HTTP, mail transport or templates in its dependency tree, and no clock
//! but [`kura_service::Clock`] in the service and server crates.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `cargo metadata` of the workspace.
fn metadata() -> Value {
    let output = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(workspace())
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Names of the packages `root` depends on for its normal build (not dev or build),
/// transitively but not through the packages named in `through`; and its direct ones.
fn normal_dependencies(meta: &Value, root: &str, through: &[&str]) -> (BTreeSet<String>, BTreeSet<String>) {
    let names: HashMap<&str, &str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let nodes: HashMap<&str, &Value> = meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n))
        .collect();
    let normal_deps = |id: &str| -> Vec<String> {
        nodes[id]["deps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| {
                d["dep_kinds"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|k| k["kind"].is_null())
            })
            .map(|d| d["pkg"].as_str().unwrap().to_owned())
            .collect()
    };
    let root_id = names
        .iter()
        .find(|(_, name)| **name == root)
        .map(|(id, _)| *id)
        .unwrap();
    let direct: BTreeSet<String> = normal_deps(root_id)
        .iter()
        .map(|id| names[id.as_str()].to_owned())
        .collect();
    let mut seen = BTreeSet::new();
    let mut stack = normal_deps(root_id);
    while let Some(id) = stack.pop() {
        if seen.insert(id.clone()) && !through.contains(&names[id.as_str()]) {
            stack.extend(normal_deps(&id));
        }
    }
    let all = seen.iter().map(|id| names[id.as_str()].to_owned()).collect();
    (all, direct)
}

#[test]
fn the_service_layer_knows_no_http_mail_or_templates() {
    let meta = metadata();
    let (all, direct) = normal_dependencies(&meta, "kura-service", &[]);
    for forbidden in [
        "axum",
        "axum-server",
        "lettre",
        "askama",
        "tera",
        "minijinja",
        "handlebars",
    ] {
        assert!(!all.contains(forbidden), "kura-service depends on {forbidden}");
    }
    // The object-storage client (object_store's S3 support, which kura-store uses) is the
    // one path by which an HTTP client, and with it hyper and tower-http, may come in.
    let (beside_object_store, _) = normal_dependencies(&meta, "kura-service", &["object_store"]);
    for forbidden in ["hyper", "tower-http", "reqwest", "h2"] {
        assert!(
            !beside_object_store.contains(forbidden),
            "kura-service reaches {forbidden} other than through object_store"
        );
    }
    for forbidden in ["hyper", "reqwest", "tower", "tower-http", "ureq", "h2", "http"] {
        assert!(
            !direct.contains(forbidden),
            "kura-service depends directly on {forbidden}"
        );
    }
    assert!(direct.contains("kura-store"));
}

/// Lines of `.rs` files under `dir` that read a clock other than the service's.
fn clock_reads(dir: &Path, found: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            clock_reads(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("src/clock.rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            for (number, line) in text.lines().enumerate() {
                let free_now_ms = line
                    .match_indices("now_ms()")
                    .any(|(at, _)| !line[..at].ends_with('.') && !line[..at].ends_with("fn "));
                if line.contains("SystemTime::now") || line.contains("Timestamp::now") || free_now_ms {
                    found.push(format!("{}:{}: {}", path.display(), number + 1, line.trim()));
                }
            }
        }
    }
}

#[test]
fn the_clock_is_the_only_source_of_time() {
    let mut found = Vec::new();
    for krate in ["kura-service", "kura-server"] {
        clock_reads(&workspace().join("crates").join(krate).join("src"), &mut found);
    }
    assert!(
        found.is_empty(),
        "read the time through Clock instead:\n{}",
        found.join("\n")
    );
}
