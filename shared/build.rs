//! Converts the API document (`openapi.yaml` at the repository root) to JSON once, at build
//! time, so the function serving it (`crate::openapi`) parses nothing at run time.

fn main() {
    // Read at run time, not with `env!`: cargo reuses a compiled build script for a clone at
    // another path that shares the target directory, and `env!` would keep the first clone's.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let source = std::path::Path::new(&manifest_dir).join("../openapi.yaml");
    println!("cargo:rerun-if-changed={}", source.display());
    let text = std::fs::read_to_string(&source)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", source.display()));
    let document: serde_json::Value = serde_yaml::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", source.display()));
    let out =
        std::path::Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("openapi.json");
    std::fs::write(&out, document.to_string())
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", out.display()));
}
