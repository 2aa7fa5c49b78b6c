//! Item 1: the size of every function's `bootstrap` as `sam build` leaves it.

use crate::support::{conditions, mib, sam_build_dir, Options, Section, Verdict};
use harness::template::{str_at, Template};
use serde_yaml::Value as Yaml;

const LIMIT: u64 = 8 * 1024 * 1024;

pub fn run(options: &Options) -> Result<Section, String> {
    let mut section = Section::new(1, "Binary size");
    conditions(&mut section);
    let dir = sam_build_dir();
    let target = std::env::var_os("CARGO_TARGET_DIR").map(std::path::PathBuf::from);
    let shown = match (
        dir.strip_prefix(harness::workspace_root()),
        target.as_deref().and_then(|t| dir.strip_prefix(t).ok()),
    ) {
        (Ok(inside), _) => inside.display().to_string(),
        (_, Some(in_target)) => format!("$CARGO_TARGET_DIR/{}", in_target.display()),
        _ => dir.display().to_string(),
    };
    section.paragraph(format!(
        "The `bootstrap` of every function in `template.yaml` for x86_64, built by BuildMethod \
         `rust-cargolambda`'s command (`cargo lambda build --release`) and laid out as `sam \
         build` lays it out, in `{shown}`. Lambda runs the arm64 build in production; its size \
         differs by a few percent. Target: each ≤ 8 MiB ({LIMIT} bytes).{}",
        if options.build_note.is_empty() {
            String::new()
        } else {
            format!(" Built: {}.", options.build_note)
        }
    ));
    let template = Template::load();
    let mut rows = Vec::new();
    let mut largest: Option<(u64, String)> = None;
    let mut missing = Vec::new();
    for (id, resource) in template.resources() {
        if resource.get("Type").and_then(Yaml::as_str) != Some("AWS::Serverless::Function") {
            continue;
        }
        let id = id.as_str().unwrap_or_default().to_owned();
        let binary = str_at(&resource["Metadata"]["BuildProperties"], "Binary").to_owned();
        let path = sam_build_dir().join(&id).join("bootstrap");
        match std::fs::metadata(&path) {
            Ok(meta) => {
                let size = meta.len();
                if largest.as_ref().is_none_or(|(s, _)| size > *s) {
                    largest = Some((size, id.clone()));
                }
                rows.push(vec![
                    id,
                    format!("`{binary}`"),
                    size.to_string(),
                    mib(size),
                    crate::support::met(Some(size <= LIMIT)).to_owned(),
                ]);
            }
            Err(_) => {
                missing.push(id.clone());
                rows.push(vec![
                    id,
                    format!("`{binary}`"),
                    "not built".into(),
                    "—".into(),
                    "—".into(),
                ]);
            }
        }
    }
    section.table(&["function", "binary", "bytes", "size", "≤ 8 MiB"], &rows);
    if !missing.is_empty() {
        section.paragraph(format!(
            "Not built: {}. Run `./scripts/sam-build` (the full `./scripts/bench` does).",
            missing.join(", ")
        ));
    }
    match largest {
        Some((size, id)) => section.verdicts.push(Verdict::new(
            "largest bootstrap",
            "≤ 8 MiB each",
            format!("{} ({id})", mib(size)),
            Some(size <= LIMIT && missing.is_empty()),
        )),
        None => section.verdicts.push(Verdict::new(
            "largest bootstrap",
            "≤ 8 MiB each",
            "not built",
            None,
        )),
    }
    Ok(section)
}
