//! Completions and man pages are generated from the clap definition and committed; this test fails
//! when they are stale and says how to regenerate them.

use super::common::repo;

#[test]
fn completions_and_man_pages_are_fresh() {
    let regenerate = std::env::var_os(etd::env_vars::ETD_REGENERATE).is_some();
    let mut stale = Vec::new();
    for (rel, bytes) in etd::cli::generate::generated_files() {
        let path = repo().join(&rel);
        if fs_err::read(&path).ok().as_deref() != Some(bytes.as_slice()) {
            if regenerate {
                fs_err::create_dir_all(path.parent().unwrap()).unwrap();
                fs_err::write(&path, &bytes).unwrap();
            }
            stale.push(rel);
        }
    }
    assert!(
        regenerate || stale.is_empty(),
        "stale generated files: {stale:?}\nregenerate with: ETD_REGENERATE=1 cargo test --locked --test tests generated"
    );
}
