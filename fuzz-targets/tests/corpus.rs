//! Replays every committed fuzz input through its target on stable: each file of
//! `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/`. A crash the fuzzer
//! found, once saved under `fuzz/regressions/`, is a regression test from then on.

use std::path::Path;

#[test]
fn every_corpus_and_regression_file_passes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut replayed = 0;
    for (name, target) in fuzz_targets::TARGETS {
        let mut seeds = 0;
        for dir in ["corpus", "regressions"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir).join(name)) else {
                continue;
            };
            let mut files: Vec<_> = entries.map(|e| e.expect("dir entry").path()).collect();
            files.sort();
            for file in files {
                let data = std::fs::read(&file).expect("read corpus file");
                let outcome = std::panic::catch_unwind(|| target(&data));
                assert!(outcome.is_ok(), "{name}: {} fails", file.display());
                if dir == "corpus" {
                    seeds += 1;
                }
                replayed += 1;
            }
        }
        assert!(seeds > 0, "{name} has no committed corpus");
    }
    eprintln!("replayed {replayed} files");
}
