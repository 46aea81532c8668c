//! `unsafe` stays in the plugin ABI module: no other Rust file of the workspace contains the
//! keyword, every crate root but this one forbids `unsafe_code`, and every `unsafe` in the
//! ABI module has a `// SAFETY:` comment right above it.

use std::path::{Path, PathBuf};

/// Directory of the ABI module, relative to the workspace root.
const ABI_DIR: &str = "contracts/src/abi";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("contracts lives inside the workspace")
        .to_path_buf()
}

/// Collects the `.rs` files under `dir`, skipping build output and hidden directories.
fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if !name.starts_with('.') && !name.starts_with("target") {
                rust_files(&path, files);
            }
        } else if name.ends_with(".rs") {
            files.push(path);
        }
    }
}

/// Returns the code of a line without its `//` comment (a rough cut that ignores `//` inside
/// string literals, which is enough to find a keyword).
fn code_of(line: &str) -> &str {
    line.split("//").next().unwrap_or_default()
}

/// Returns whether `code` contains the keyword `unsafe` as a whole word.
fn has_unsafe_keyword(code: &str) -> bool {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    code.match_indices("unsafe").any(|(at, word)| {
        let before = code[..at].chars().next_back();
        let after = code[at + word.len()..].chars().next();
        !before.is_some_and(is_word) && !after.is_some_and(is_word)
    })
}

fn relative(path: &Path) -> String {
    path.strip_prefix(workspace_root())
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

#[test]
fn unsafe_only_in_abi_module() {
    let mut files = Vec::new();
    rust_files(&workspace_root(), &mut files);
    let mut offenders = Vec::new();
    for file in &files {
        // This test names the keyword in its own strings.
        if relative(file).starts_with(ABI_DIR)
            || file.ends_with("contracts/tests/unsafe_confined.rs")
        {
            continue;
        }
        let text = std::fs::read_to_string(file).expect("readable source");
        for (number, line) in text.lines().enumerate() {
            if has_unsafe_keyword(code_of(line)) {
                offenders.push(format!("{}:{}", relative(file), number + 1));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "`unsafe` outside {ABI_DIR}: {offenders:?}; move the code into the ABI module"
    );
}

#[test]
fn abi_unsafe_has_safety_comment() {
    let mut files = Vec::new();
    rust_files(&workspace_root().join(ABI_DIR), &mut files);
    assert!(!files.is_empty(), "no files under {ABI_DIR}");
    let mut missing = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("readable source");
        let lines: Vec<&str> = text.lines().collect();
        for (index, line) in lines.iter().enumerate() {
            if !has_unsafe_keyword(code_of(line)) {
                continue;
            }
            let comment_above = lines[..index]
                .iter()
                .rev()
                .take_while(|l| l.trim_start().starts_with("//"))
                .any(|l| l.contains("SAFETY:"));
            if !comment_above {
                missing.push(format!("{}:{}", relative(file), index + 1));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "`unsafe` without a `// SAFETY:` comment above: {missing:?}"
    );
}

#[test]
fn crate_roots_forbid_unsafe() {
    let root = workspace_root();
    let mut roots = Vec::new();
    for member in ["gateway", "plugins", "tests"] {
        let mut files = Vec::new();
        rust_files(&root.join(member), &mut files);
        roots.extend(files.into_iter().filter(|f| {
            let name = relative(f);
            name.ends_with("src/lib.rs") || name.ends_with("src/main.rs")
        }));
    }
    assert!(!roots.is_empty(), "no crate roots found");
    let missing: Vec<String> = roots
        .iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).expect("readable source");
            !text.contains("#![forbid(unsafe_code)]")
        })
        .map(|f| relative(f))
        .collect();
    assert!(
        missing.is_empty(),
        "crate roots without #![forbid(unsafe_code)]: {missing:?}"
    );

    let contracts = std::fs::read_to_string(root.join("contracts/src/lib.rs")).expect("lib.rs");
    assert!(
        contracts.contains("#![deny(unsafe_code)]"),
        "contracts must deny unsafe_code"
    );
}

#[test]
fn keyword_detection() {
    assert!(has_unsafe_keyword("let x = unsafe { f() };"));
    assert!(!has_unsafe_keyword("#![forbid(unsafe_code)]"));
    assert!(!has_unsafe_keyword(code_of("// no unsafe here")));
}
