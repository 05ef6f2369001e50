//! Model location and the missing-model message (one test: it sets an environment variable).

use posenc_model::fetch::{ensure_model, model_path, sha256_file, MODEL_BYTES, MODEL_FILE};

#[test]
fn missing_or_corrupt_model_says_to_fetch() {
    let dir = std::env::temp_dir().join(format!("posenc-fetch-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::env::set_var("POSENC_MODEL_DIR", &dir);
    assert_eq!(model_path().unwrap(), dir.join(MODEL_FILE));
    let err = ensure_model().unwrap_err().to_string();
    assert!(err.contains("posenc model fetch"), "{err}");

    // A file of the wrong size is rejected by its size, before any hashing.
    std::fs::write(dir.join(MODEL_FILE), b"abc").unwrap();
    let err = ensure_model().unwrap_err().to_string();
    assert!(
        err.contains("is 3 bytes") && err.contains("posenc model fetch"),
        "{err}"
    );
    // SHA-256("abc") from FIPS 180-2, appendix B.1.
    assert_eq!(
        sha256_file(&dir.join(MODEL_FILE)).unwrap(),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    // The right size with the wrong contents (a sparse file of zeros) is rejected by its checksum.
    let f = std::fs::File::create(dir.join(MODEL_FILE)).unwrap();
    f.set_len(MODEL_BYTES).unwrap();
    drop(f);
    let err = ensure_model().unwrap_err().to_string();
    assert!(
        err.contains("SHA-256") && err.contains("posenc model fetch"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
